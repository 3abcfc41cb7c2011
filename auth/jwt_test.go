package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

type testKeySet struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	ec384    *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
	rsaPEM   []byte // PKIX "PUBLIC KEY"
	rsaPKCS1 []byte // "RSA PUBLIC KEY"
	ecPEM    []byte
	edCert   []byte // self-signed certificate for the Ed25519 key
}

var testKeys = sync.OnceValues(func() (*testKeySet, error) {
	k := &testKeySet{}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	var edPub ed25519.PublicKey
	if edPub, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	pkix1 := func(pub any) ([]byte, error) {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
	}
	if k.rsaPEM, err = pkix1(&k.rsa.PublicKey); err != nil {
		return nil, err
	}
	if k.ecPEM, err = pkix1(&k.ec.PublicKey); err != nil {
		return nil, err
	}
	k.rsaPKCS1 = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "webhook signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, edPub, k.ed)
	if err != nil {
		return nil, err
	}
	k.edCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return k, nil
})

func keys(t testing.TB) *testKeySet {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwksFor builds a JWKS document for the test keys.
func jwksFor(k *testKeySet) []byte {
	pad := func(b []byte, n int) []byte { return append(make([]byte, n-len(b)), b...) }
	ecPub := k.ec.PublicKey
	point, _ := ecPub.Bytes() // 0x04 || X || Y
	doc := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": b64u(k.rsa.N.Bytes()), "e": b64u(big.NewInt(int64(k.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "crv": "P-256", "alg": "ES256", "x": b64u(pad(point[1:33], 32)), "y": b64u(pad(point[33:], 32))},
		{"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": b64u(k.ed.Public().(ed25519.PublicKey))},
		{"kty": "oct", "kid": "sym", "k": b64u([]byte("never-used-as-hmac-key"))},
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": b64u(k.rsa.N.Bytes()), "e": "AQAB"},
	}}
	b, _ := json.Marshal(doc)
	return b
}

// rawToken assembles a token from a header and claims, signed by sign.
func rawToken(header, claims map[string]any, sign func(string) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64u(h) + "." + b64u(c)
	return input + "." + b64u(sign(input))
}

func hs256(key []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

func jwtReq(t testing.TB, token string, body []byte) *Request {
	t.Helper()
	return newRequest(t, "https://r.example/jwt?x=1", hdr("Authorization", "Bearer "+token), body)
}

var jwtNow = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

func claimsAt(now time.Time) map[string]any {
	return map[string]any{"iss": "Vonage", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "j1"}
}

func TestJWTHMAC(t *testing.T) {
	body := []byte(`{"message_uuid":"abc"}`)
	now := jwtNow
	v := must[*JWT](t)(NewJWT(JWTConfig{
		Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{"", "old-sig-secret", "new-sig-secret"},
		Issuer: "Vonage", Leeway: 30 * time.Second, PayloadHash: true, Now: func() time.Time { return now },
	}))
	claims := claimsAt(now)
	claims["payload_hash"] = PayloadHash(body)
	good := must[string](t)(SignJWT("HS256", "new-sig-secret", claims))

	wantPass(t, v.Verify(jwtReq(t, good, body)))
	t.Run("rotation", func(t *testing.T) {
		wantPass(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", []byte("old-sig-secret"), claims)), body)))
	})
	t.Run("empty secret ignored", func(t *testing.T) {
		tok := rawToken(map[string]any{"alg": "HS256", "typ": "JWT"}, claims, hs256(nil))
		wantReason(t, v.Verify(jwtReq(t, tok, body)), ReasonBadSignature)
	})
	t.Run("wrong key", func(t *testing.T) {
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "other", claims)), body)), ReasonBadSignature)
	})
	t.Run("tampered body", func(t *testing.T) {
		wantReason(t, v.Verify(jwtReq(t, good, []byte(`{"message_uuid":"abd"}`))), ReasonBadClaims)
		wantReason(t, v.Verify(jwtReq(t, good, nil)), ReasonBadClaims)
	})
	t.Run("tampered claims", func(t *testing.T) {
		parts := strings.Split(good, ".")
		c2 := claimsAt(now)
		c2["payload_hash"] = PayloadHash([]byte("evil"))
		cj, _ := json.Marshal(c2)
		wantReason(t, v.Verify(jwtReq(t, parts[0]+"."+b64u(cj)+"."+parts[2], []byte("evil"))), ReasonBadSignature)
	})
	t.Run("other algorithm", func(t *testing.T) {
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS512", "new-sig-secret", claims)), body)), ReasonBadSignature)
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("RS256", keys(t).rsa, claims)), body)), ReasonBadSignature)
	})
	t.Run("alg none", func(t *testing.T) {
		for _, alg := range []string{"none", "None", "NONE"} {
			tok := rawToken(map[string]any{"alg": alg, "typ": "JWT"}, claims, func(string) []byte { return nil })
			wantReason(t, v.Verify(jwtReq(t, tok, body)), ReasonBadSignature)
		}
		if _, err := SignJWT("none", nil, claims); err == nil {
			t.Fatal("SignJWT none: want error")
		}
	})
	t.Run("expired", func(t *testing.T) {
		c := claimsAt(now.Add(-10 * time.Minute))
		c["payload_hash"] = PayloadHash(body)
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "new-sig-secret", c)), body)), ReasonExpired)
		// Within the leeway.
		c = claimsAt(now.Add(-5*time.Minute - 20*time.Second))
		c["payload_hash"] = PayloadHash(body)
		wantPass(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "new-sig-secret", c)), body)))
	})
	t.Run("issued in the future", func(t *testing.T) {
		c := claimsAt(now.Add(2 * time.Minute))
		c["payload_hash"] = PayloadHash(body)
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "new-sig-secret", c)), body)), ReasonClockSkew)
	})
	t.Run("not before", func(t *testing.T) {
		c := claimsAt(now)
		c["payload_hash"] = PayloadHash(body)
		c["nbf"] = now.Add(time.Hour).Unix()
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "new-sig-secret", c)), body)), ReasonBadClaims)
	})
	t.Run("issuer", func(t *testing.T) {
		c := claimsAt(now)
		c["payload_hash"] = PayloadHash(body)
		c["iss"] = "Nexmo"
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "new-sig-secret", c)), body)), ReasonBadClaims)
	})
	t.Run("payload_hash not a string", func(t *testing.T) {
		c := claimsAt(now)
		c["payload_hash"] = 42
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "new-sig-secret", c)), body)), ReasonBadClaims)
	})
	t.Run("missing and malformed", func(t *testing.T) {
		wantReason(t, v.Verify(newRequest(t, "https://r.example/jwt", nil, body)), ReasonMissing)
		wantReason(t, v.Verify(newRequest(t, "https://r.example/jwt", hdr("Authorization", good), body)), ReasonMalformed)
		wantReason(t, v.Verify(newRequest(t, "https://r.example/jwt", hdr("Authorization", "Basic "+good), body)), ReasonMalformed)
		wantReason(t, v.Verify(newRequest(t, "https://r.example/jwt", hdr("Authorization", "Bearer "), body)), ReasonMalformed)
		wantReason(t, v.Verify(jwtReq(t, "a.b.c", body)), ReasonMalformed)
		wantReason(t, v.Verify(jwtReq(t, good+".x", body)), ReasonMalformed)
	})
}

func TestJWTRequireExpAudienceURLHash(t *testing.T) {
	now := jwtNow
	v := must[*JWT](t)(NewJWT(JWTConfig{
		Header: "X-Token", Algorithms: []string{"HS384"}, Secrets: []string{"s3cr3t"},
		Audience: "edgerelay", RequireExp: true, URLHash: true, Now: func() time.Time { return now },
	}))
	req := func(tok string) *Request {
		return newRequest(t, "https://r.example/mb?a=1&b=2", hdr("X-Token", tok), nil)
	}
	c := map[string]any{"aud": "edgerelay", "exp": now.Add(time.Minute).Unix(), "url_hash": URLHash("https://r.example/mb?a=1&b=2")}
	wantPass(t, v.Verify(req(must[string](t)(SignJWT("HS384", "s3cr3t", c)))))

	c2 := map[string]any{"aud": "edgerelay", "url_hash": c["url_hash"]}
	wantReason(t, v.Verify(req(must[string](t)(SignJWT("HS384", "s3cr3t", c2)))), ReasonBadClaims)
	c3 := map[string]any{"aud": "other", "exp": c["exp"], "url_hash": c["url_hash"]}
	wantReason(t, v.Verify(req(must[string](t)(SignJWT("HS384", "s3cr3t", c3)))), ReasonBadClaims)
	c4 := map[string]any{"aud": "edgerelay", "exp": c["exp"], "url_hash": URLHash("https://r.example/mb?a=1&b=3")}
	wantReason(t, v.Verify(req(must[string](t)(SignJWT("HS384", "s3cr3t", c4)))), ReasonBadClaims)
	c5 := map[string]any{"aud": "edgerelay", "exp": c["exp"]}
	wantReason(t, v.Verify(req(must[string](t)(SignJWT("HS384", "s3cr3t", c5)))), ReasonBadClaims)
}

func TestJWTPublicKeys(t *testing.T) {
	k := keys(t)
	now := jwtNow
	nowf := func() time.Time { return now }
	claims := claimsAt(now)

	t.Run("RS256 and PS256 from PEM", func(t *testing.T) {
		for _, pemKey := range [][]byte{k.rsaPEM, k.rsaPKCS1} {
			v := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"RS256", "PS256"}, PublicKeys: [][]byte{pemKey}, Now: nowf}))
			wantPass(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("RS256", k.rsa, claims)), nil)))
			wantPass(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("PS256", k.rsa, claims)), nil)))
			other := must[*rsa.PrivateKey](t)(rsa.GenerateKey(rand.Reader, 2048))
			wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("RS256", other, claims)), nil)), ReasonBadSignature)
			wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("RS512", k.rsa, claims)), nil)), ReasonBadSignature)
		}
	})
	t.Run("alg confusion", func(t *testing.T) {
		// An HS256 token whose HMAC key is the RSA public key's PEM bytes.
		for _, pubBytes := range [][]byte{k.rsaPEM, k.rsaPKCS1, k.rsa.N.Bytes()} {
			tok := must[string](t)(SignJWT("HS256", pubBytes, claims))
			v := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"RS256"}, PublicKeys: [][]byte{k.rsaPEM}, Now: nowf}))
			wantReason(t, v.Verify(jwtReq(t, tok, nil)), ReasonBadSignature)
			// Even when HS256 is accepted too, only the configured secrets are HMAC keys.
			w := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256", "RS256"}, Secrets: []string{"real-secret"},
				PublicKeys: [][]byte{k.rsaPEM}, JWKS: jwksFor(k), Now: nowf}))
			wantReason(t, w.Verify(jwtReq(t, tok, nil)), ReasonBadSignature)
			wantPass(t, w.Verify(jwtReq(t, must[string](t)(SignJWT("RS256", k.rsa, claims)), nil)))
			wantPass(t, w.Verify(jwtReq(t, must[string](t)(SignJWT("HS256", "real-secret", claims)), nil)))
		}
		// The JWKS "oct" key is never used as an HMAC secret.
		w := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256", "ES256"}, Secrets: []string{"real-secret"}, JWKS: jwksFor(k), Now: nowf}))
		tok := rawToken(map[string]any{"alg": "HS256", "kid": "sym"}, claims, hs256([]byte("never-used-as-hmac-key")))
		wantReason(t, w.Verify(jwtReq(t, tok, nil)), ReasonBadSignature)
	})
	t.Run("ES256 and EdDSA", func(t *testing.T) {
		v := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"ES256", "EdDSA"}, PublicKeys: [][]byte{k.ecPEM, k.edCert}, Now: nowf}))
		wantPass(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("ES256", k.ec, claims)), nil)))
		wantPass(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("EdDSA", k.ed, claims)), nil)))
		wantReason(t, v.Verify(jwtReq(t, must[string](t)(SignJWT("ES384", k.ec384, claims)), nil)), ReasonBadSignature)
	})
	t.Run("JWKS by kid", func(t *testing.T) {
		v := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"RS256", "ES256", "EdDSA"}, JWKS: jwksFor(k), Now: nowf}))
		sign := func(alg string, key any, kid string) string {
			tok, err := jwtSignKid(alg, key, kid, claims)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		wantPass(t, v.Verify(jwtReq(t, sign("RS256", k.rsa, "rsa-1"), nil)))
		wantPass(t, v.Verify(jwtReq(t, sign("ES256", k.ec, "ec-1"), nil)))
		wantPass(t, v.Verify(jwtReq(t, sign("EdDSA", k.ed, "ed-1"), nil)))
		wantPass(t, v.Verify(jwtReq(t, sign("EdDSA", k.ed, ""), nil)))
		wantReason(t, v.Verify(jwtReq(t, sign("RS256", k.rsa, "ec-1"), nil)), ReasonBadSignature)
		wantReason(t, v.Verify(jwtReq(t, sign("RS256", k.rsa, "unknown"), nil)), ReasonBadSignature)
	})
}

func TestNewJWTErrors(t *testing.T) {
	k := keys(t)
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.rsa)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	cases := []struct {
		c    JWTConfig
		want string
	}{
		{JWTConfig{Secrets: []string{"s"}}, "jwt: algorithms are required"},
		{JWTConfig{Algorithms: []string{"none"}, Secrets: []string{"s"}}, `jwt: algorithm "none" is never accepted`},
		{JWTConfig{Algorithms: []string{"HS999"}, Secrets: []string{"s"}}, `jwt: algorithm "HS999" not supported`},
		{JWTConfig{Algorithms: []string{"HS256"}, Secrets: []string{""}}, "jwt: HS algorithms need at least one non-empty secret"},
		{JWTConfig{Algorithms: []string{"RS256"}, Secrets: []string{"s"}, PublicKeys: [][]byte{k.rsaPEM}}, "jwt: secrets are given but no HS algorithm is accepted"},
		{JWTConfig{Algorithms: []string{"HS256"}, Secrets: []string{"s"}, PublicKeys: [][]byte{k.rsaPEM}}, "jwt: public keys are given but no RS, PS, ES or EdDSA algorithm is accepted"},
		{JWTConfig{Algorithms: []string{"RS256"}}, "jwt: algorithm RS256 has no matching public key"},
		{JWTConfig{Algorithms: []string{"ES384"}, PublicKeys: [][]byte{k.ecPEM}}, "jwt: algorithm ES384 has no matching public key"},
		{JWTConfig{Algorithms: []string{"RS256"}, PublicKeys: [][]byte{privPEM}}, `jwt: public key 1: pem block "PRIVATE KEY" is not a public key or certificate`},
		{JWTConfig{Algorithms: []string{"RS256"}, PublicKeys: [][]byte{[]byte("not pem")}}, "jwt: public key 1: no PEM public key or certificate found"},
		{JWTConfig{Algorithms: []string{"RS256"}, JWKS: []byte(`{"keys":[]}`)}, "jwt: jwks: no usable signing key"},
		{JWTConfig{Algorithms: []string{"RS256"}, JWKS: []byte(`{`)}, "jwt: jwks: not a JWKS document"},
		{JWTConfig{Algorithms: []string{"ES256"}, JWKS: []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`)}, "jwt: jwks: key 1"},
	}
	for _, c := range cases {
		_, err := NewJWT(c.c)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("NewJWT(%v) = %v, want prefix %q", c.c.Algorithms, err, c.want)
		}
	}
}

// jwtSignKid signs claims with a kid header, through golang-jwt.
func jwtSignKid(alg string, key any, kid string, claims map[string]any) (string, error) {
	tok, err := SignJWT(alg, key, claims)
	if err != nil || kid == "" {
		return tok, err
	}
	return signWithHeader(alg, key, map[string]any{"alg": alg, "typ": "JWT", "kid": kid}, claims)
}
