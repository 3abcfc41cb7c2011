package inject

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCompileRefusesBadSpecs(t *testing.T) {
	for name, sp := range map[string]Spec{
		"header name":        Header{Name: "X Key", Value: "v"},
		"header ctl":         Header{Name: "X-Key", Value: "a\r\nX-Evil: 1"},
		"header hop":         Header{Name: "Connection", Value: "close"},
		"basic no user":      Basic{Password: "p"},
		"bearer empty":       Bearer{},
		"oauth2 no client":   OAuth2{TokenURL: "https://t.example/token"},
		"oauth2 query":       OAuth2{TokenURL: "https://t.example/token?x=1", ClientID: "c"},
		"jwt algorithm":      JWT{Algorithm: "none", Secret: "s"},
		"jwt no secret":      JWT{Algorithm: "HS256"},
		"jwt no key":         JWT{Algorithm: "RS256"},
		"jwt bad key":        JWT{Algorithm: "ES256", PrivateKey: []byte("not pem")},
		"jwt reserved claim": JWT{Algorithm: "HS256", Secret: "s", Claims: map[string]string{"exp": "1"}},
		"hmac no secret":     HMAC{},
		"hmac algorithm":     HMAC{Secret: "s", Algorithm: "md5"},
		"hmac encoding":      HMAC{Secret: "s", Encoding: "base32"},
		"hmac prefix ctl":    HMAC{Secret: "s", Prefix: func() *string { v := "a\nb"; return &v }()},
		"iam missing":        HuaweiIAM{IAMURL: "https://iam.example", Domain: "d", Username: "u"},
		"iam url":            HuaweiIAM{IAMURL: "iam.example", Domain: "d", Username: "u", Password: "pw"},
		"nil":                nil,
	} {
		if _, err := Compile("backend \"x\"", []Spec{sp}, nil, nil, 0); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "a\r\nX-Evil") {
			t.Errorf("%s: error quotes the value: %v", name, err)
		}
	}
	o := OAuth2{TokenURL: "https://t.example/token", ClientID: "c"}
	if _, err := Compile("u", []Spec{o, &o}, nil, nil, 0); err == nil {
		t.Error("two oauth2 blocks accepted")
	}
}

// TestApplyEachTypeAsAReceiverChecksIt sends through Transport to a real
// server that verifies every credential the way a platform would.
func TestApplyEachTypeAsAReceiverChecksIt(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	empty := ""

	cases := []struct {
		name  string
		spec  Spec
		check func(r *http.Request, body []byte) error
	}{
		{"header replaces", Header{Name: "x-api-key", Value: "k1"}, func(r *http.Request, _ []byte) error {
			if v := r.Header.Values("X-Api-Key"); len(v) != 1 || v[0] != "k1" {
				return fmt.Errorf("X-Api-Key %q", v)
			}
			return nil
		}},
		{"basic", Basic{Username: "AC1", Password: "pw:with:colons"}, func(r *http.Request, _ []byte) error {
			if u, p, ok := r.BasicAuth(); !ok || u != "AC1" || p != "pw:with:colons" {
				return fmt.Errorf("basic %q %q", u, p)
			}
			return nil
		}},
		{"bearer", Bearer{Token: "tok", Expires: time.Now().Add(time.Hour)}, func(r *http.Request, _ []byte) error {
			if r.Header.Get("Authorization") != "Bearer tok" {
				return errors.New(r.Header.Get("Authorization"))
			}
			return nil
		}},
		{"jwt RS256 in a custom header, bare", JWT{Algorithm: "RS256", PrivateKey: rsaPEM, Header: "X-Token", Scheme: "", TTL: time.Minute,
			Claims: map[string]string{"iss": "relay"}}, func(r *http.Request, _ []byte) error {
			c := jwt.MapClaims{}
			_, err := jwt.ParseWithClaims(r.Header.Get("X-Token"), c, func(*jwt.Token) (any, error) { return &rsaKey.PublicKey, nil },
				jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("relay"), jwt.WithExpirationRequired())
			return err
		}},
		{"jwt ES256", JWT{Algorithm: "ES256", PrivateKey: ecPEM, Scheme: "Bearer"}, func(r *http.Request, _ []byte) error {
			raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			_, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return &ecKey.PublicKey, nil }, jwt.WithValidMethods([]string{"ES256"}))
			return err
		}},
		{"jwt HS512", JWT{Algorithm: "HS512", Secret: "s512", Scheme: "Bearer"}, func(r *http.Request, _ []byte) error {
			raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			_, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return []byte("s512"), nil }, jwt.WithValidMethods([]string{"HS512"}))
			return err
		}},
		{"hmac sha1 base64 no prefix", HMAC{Secret: "sec", Header: "X-Signature", Algorithm: "sha1", Encoding: "base64", Prefix: &empty},
			func(r *http.Request, body []byte) error {
				m := hmac.New(sha1.New, []byte("sec"))
				m.Write(body)
				if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); r.Header.Get("X-Signature") != want {
					return fmt.Errorf("signature %q, want %q", r.Header.Get("X-Signature"), want)
				}
				return nil
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got atomic.Int32
			var failure atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if err := tc.check(r, body); err != nil {
					failure.Store(err.Error())
					w.WriteHeader(401)
					return
				}
				got.Add(1)
			}))
			defer srv.Close()
			set, err := Compile("backend \"t\"", []Spec{tc.spec}, nil, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: &Transport{Base: http.DefaultTransport, Set: set}}
			req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(`{"a":"hallö"}`)))
			req.Header.Set("X-Api-Key", "from-the-caller")
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || got.Load() != 1 {
				t.Fatalf("status %d: %v", res.StatusCode, failure.Load())
			}
			if req.Header.Get("Authorization") != "" || req.Header.Get("X-Api-Key") != "from-the-caller" {
				t.Error("Transport modified the caller's request")
			}
		})
	}
}

func TestExpiredCredentialIsNotSent(t *testing.T) {
	set, err := Compile("backend \"x\"", []Spec{Header{Name: "X-Key", Value: "v", Expires: time.Now().Add(-time.Minute)}}, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	_, err = set.Apply(context.Background(), h, nil)
	var ee *ExpiredError
	if !errors.Is(err, ErrExpired) || !errors.As(err, &ee) || !strings.Contains(err.Error(), `inject "header" X-Key`) {
		t.Fatalf("err = %v", err)
	}
	if h.Get("X-Key") != "" {
		t.Error("an expired value was set")
	}
	if ex := set.Expiries(); len(ex) != 1 || ex[0].Name != `inject "header" X-Key` {
		t.Errorf("expiries %v", ex)
	}
}

// TestIAMLoginCachedSharedAndRenewedAfter401: many concurrent attempts
// share one login; a 401 drops the token and Transport replays once.
func TestIAMLoginCachedSharedAndRenewedAfter401(t *testing.T) {
	var logins atomic.Int32
	var mu sync.Mutex
	valid := map[string]bool{}
	iam := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v3/auth/tokens" || !bytes.Contains(b, []byte(`"scope":{"domain":{"name":"acme"}}`)) ||
			!bytes.Contains(b, []byte(`"methods":["password"]`)) {
			w.WriteHeader(400)
			return
		}
		time.Sleep(20 * time.Millisecond) // let concurrent callers pile up
		tok := fmt.Sprintf("tok-%d", logins.Add(1))
		mu.Lock()
		valid[tok] = true
		mu.Unlock()
		w.Header().Set("X-Subject-Token", tok)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"token":{"expires_at":%q}}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
	}))
	defer iam.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := valid[r.Header.Get("X-Auth-Token")]
		mu.Unlock()
		if !ok {
			w.WriteHeader(401)
		}
	}))
	defer api.Close()
	set, err := Compile("upstream \"koo\"", []Spec{HuaweiIAM{IAMURL: iam.URL, Domain: "acme", Username: "u", Password: "pw"}}, nil, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &Transport{Base: http.DefaultTransport, Set: set}}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := c.Post(api.URL, "application/json", strings.NewReader(`{}`))
			if err == nil {
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("status %d", res.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	if logins.Load() != 1 || set.TokenFetches() != 1 {
		t.Fatalf("logins %d, want 1", logins.Load())
	}
	mu.Lock()
	clear(valid)
	mu.Unlock()
	res, err := c.Post(api.URL, "application/json", strings.NewReader(`{"again":1}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || logins.Load() != 2 {
		t.Fatalf("after a 401: status %d, logins %d", res.StatusCode, logins.Load())
	}
	// A reload with the same settings keeps the token: no new login.
	set2, _ := Compile("upstream \"koo\"", []Spec{HuaweiIAM{IAMURL: iam.URL, Domain: "acme", Username: "u", Password: "pw"}}, set, nil, time.Second)
	if _, err := set2.Apply(context.Background(), http.Header{}, nil); err != nil || logins.Load() != 2 {
		t.Fatalf("reload: %v, logins %d", err, logins.Load())
	}
	// A failed login wraps ErrTokenEndpoint and never quotes the password.
	bad, _ := Compile("u", []Spec{HuaweiIAM{IAMURL: iam.URL + "/nope", Domain: "acme", Username: "u", Password: "pw-Secret-1"}}, nil, nil, time.Second)
	_, err = bad.Apply(context.Background(), http.Header{}, nil)
	if !errors.Is(err, ErrTokenEndpoint) || strings.Contains(err.Error(), "pw-Secret-1") {
		t.Fatalf("err = %v", err)
	}
}

func TestProxySetting(t *testing.T) {
	for _, ok := range []string{"", "env", "http://proxy:3128", "http://u:p@proxy:3128", "https://proxy:443/"} {
		if _, err := Proxy(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"socks5://proxy:1080", "proxy:3128", "http://u:Secret-9@/", "http://proxy:3128/path", "ftp://x"} {
		_, err := Proxy(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "Secret-9") {
			t.Errorf("%q: error quotes the setting: %v", bad, err)
		}
	}
	f, _ := Proxy("http://u:p@proxy.dmz:3128")
	u, _ := f(httptestRequest("https://graph.facebook.com/v21.0/x"))
	if u == nil || u.Host != "proxy.dmz:3128" || u.User.Username() != "u" {
		t.Errorf("proxy for https target: %v", u)
	}
}

func httptestRequest(target string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, target, nil)
	return r
}
