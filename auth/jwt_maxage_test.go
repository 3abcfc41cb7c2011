package auth

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWTMaxAge(t *testing.T) {
	const secret = "vonage-signature-secret-0123456789"
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	v, err := NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{secret}, Leeway: 30 * time.Second,
		MaxAge: 5 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(claims jwt.MapClaims) *Request {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return &Request{Header: http.Header{"Authorization": {"Bearer " + s}}}
	}
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   Reason
	}{
		{"fresh", jwt.MapClaims{"iat": now.Add(-time.Minute).Unix()}, ""},
		{"at max_age plus leeway", jwt.MapClaims{"iat": now.Add(-5*time.Minute - 30*time.Second).Unix()}, ""},
		{"two years old, no exp", jwt.MapClaims{"iat": now.AddDate(-2, 0, 0).Unix()}, ReasonClockSkew},
		{"old with a far exp", jwt.MapClaims{"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(time.Hour).Unix()}, ReasonClockSkew},
		{"no iat", jwt.MapClaims{"sub": "x"}, ReasonBadClaims},
	}
	for _, tc := range cases {
		err := v.Verify(tok(tc.claims))
		if got := Reason(""); err != nil {
			got = ReasonOf(err)
			if got != tc.want {
				t.Errorf("%s: reason %s (%v), want %q", tc.name, got, err, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s: accepted, want %s", tc.name, tc.want)
		}
	}
	// Without max_age the two-year-old token passes (the old behaviour).
	v0, _ := NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{secret}, Now: func() time.Time { return now }})
	if err := v0.Verify(tok(jwt.MapClaims{"iat": now.AddDate(-2, 0, 0).Unix()})); err != nil {
		t.Errorf("max_age 0 must not bound iat: %v", err)
	}
	if _, err := NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{secret}, MaxAge: -time.Second}); err == nil {
		t.Error("negative max_age accepted")
	}
}
