package auth

import "github.com/golang-jwt/jwt/v5"

// signWithHeader signs claims with extra header fields.
func signWithHeader(alg string, key any, header, claims map[string]any) (string, error) {
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims(claims))
	for k, v := range header {
		t.Header[k] = v
	}
	return t.SignedString(key)
}
