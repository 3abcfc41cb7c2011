package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Secrets of the inject test; none may appear in a log line.
const (
	secBasic    = "aicc-Basic-Pw-5k2"
	secHeader   = "hdr-Secret-Key-8x1"
	secBearer   = "bearer-Secret-Tok-3q9"
	secJWT      = "kore-Client-Secret-JWT-7m4"
	secHMAC     = "meta-App-Secret-HMAC-2w6"
	secOAuth    = "oauth-Client-Secret-4r8"
	secIAM      = "iam-Password-Secret-9z3"
	secProxyPwd = "proxy-Pw-Secret-1t5"
)

func ecKeyFile(t *testing.T, dir string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(k)
	f := filepath.Join(dir, "jwt-es256.pem")
	os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	return k, f
}

// TestBackendInjectEachTypeCheckedByTheReceiver delivers the same callbacks
// to one backend per inject type; each receiving handler checks the
// credential the way that platform would and answers 401 otherwise (which
// would turn the delivery into a dead letter).
func TestBackendInjectEachTypeCheckedByTheReceiver(t *testing.T) {
	dir := t.TempDir()
	plat := newPlatform(t, false)
	iam := newFakeIAM(t, "relay-iam", secIAM, "acme-domain", "ap-southeast-1")
	oauth := newFakeOAuth2(t, "relay-client", secOAuth)
	ecKey, ecFile := ecKeyFile(t, dir)

	var jtiMu sync.Mutex
	jtis := map[string]bool{}
	checkJWT := func(method jwt.SigningMethod, key any) func(*http.Request, []byte) error {
		return func(r *http.Request, _ []byte) error {
			raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok {
				return fmt.Errorf("no bearer JWT")
			}
			claims := jwt.MapClaims{}
			tok, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return key, nil },
				jwt.WithValidMethods([]string{method.Alg()}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
			if err != nil || !tok.Valid {
				return fmt.Errorf("jwt: %v", err)
			}
			if claims["appId"] != "cs-kore-app-1" || claims["sub"] != "relay" {
				return fmt.Errorf("claims %v", claims)
			}
			iat, _ := claims["iat"].(float64)
			exp, _ := claims["exp"].(float64)
			if exp-iat != 120 {
				return fmt.Errorf("exp - iat = %v, want ttl 120", exp-iat)
			}
			jti, _ := claims["jti"].(string)
			jtiMu.Lock()
			defer jtiMu.Unlock()
			if jti == "" || jtis[jti] {
				return fmt.Errorf("jti %q missing or reused", jti)
			}
			jtis[jti] = true
			return nil
		}
	}
	plat.handle("basic", func(r *http.Request, _ []byte) error {
		u, p, ok := r.BasicAuth()
		if !ok || u != "relay" || p != secBasic {
			return fmt.Errorf("basic %q", r.Header.Get("Authorization"))
		}
		return nil
	})
	plat.handle("header", func(r *http.Request, _ []byte) error {
		if v := r.Header.Values("X-Api-Key"); len(v) != 1 || v[0] != secHeader {
			return fmt.Errorf("X-Api-Key %q (the BSP's value must be replaced, not added to)", v)
		}
		if r.Header.Get("Authorization") != "" {
			return fmt.Errorf("the BSP's Authorization was forwarded")
		}
		return nil
	})
	plat.handle("bearer", func(r *http.Request, _ []byte) error {
		if r.Header.Get("Authorization") != "Bearer "+secBearer {
			return fmt.Errorf("bearer %q", r.Header.Get("Authorization"))
		}
		return nil
	})
	plat.handle("jwths", checkJWT(jwt.SigningMethodHS256, []byte(secJWT)))
	plat.handle("jwtes", checkJWT(jwt.SigningMethodES256, &ecKey.PublicKey))
	plat.handle("hmac", func(r *http.Request, body []byte) error {
		m := hmac.New(sha256.New, []byte(secHMAC))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		if got := r.Header.Values("X-Hub-Signature-256"); len(got) != 1 || !hmac.Equal([]byte(got[0]), []byte(want)) {
			return fmt.Errorf("signature %q over %d bytes", got, len(body))
		}
		return nil
	})
	plat.handle("oauth", func(r *http.Request, _ []byte) error { return oauth.check(r) })
	plat.handle("iam", func(r *http.Request, _ []byte) error { return iam.check(r) })
	plat.handle("static", func(r *http.Request, _ []byte) error {
		if r.Header.Get("X-Tenant") != "acme" || r.Header.Get("Authorization") != "BSP-Token xyz" {
			return fmt.Errorf("headers/pass_authorization: X-Tenant %q Authorization %q", r.Header.Get("X-Tenant"), r.Header.Get("Authorization"))
		}
		return nil
	})

	os.Setenv("INJ_TEST_IAM_PASSWORD", secIAM)
	t.Cleanup(func() { os.Unsetenv("INJ_TEST_IAM_PASSWORD") })
	cfg := fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "bsp" {
  listener   = "public"
  path       = "/hooks/bsp"
  provider   = "generic"
  auth "none" {}
  ordering   = "none"
  forward_to = ["basic", "header", "bearer", "jwths", "jwtes", "hmac", "oauth", "iam", "static"]
}
backend "basic" {
  url = "%[1]s/basic/in"
  inject "basic" {
    username = "relay"
    password = %[2]q
  }
}
backend "header" {
  url = "%[1]s/header/in"
  inject "header" {
    name  = "X-Api-Key"
    value = %[3]q
  }
}
backend "bearer" {
  url = "%[1]s/bearer/in"
  inject "bearer" {
    token   = %[4]q
    expires = "2099-01-01"
  }
}
backend "jwths" {
  url = "%[1]s/jwths/in"
  inject "jwt" {
    algorithm = "HS256"
    secret    = %[5]q
    claims    = { appId = "cs-kore-app-1", sub = "relay" }
    ttl       = "2m"
  }
}
backend "jwtes" {
  url = "%[1]s/jwtes/in"
  inject "jwt" {
    algorithm        = "ES256"
    private_key_file = %[6]q
    claims           = { appId = "cs-kore-app-1", sub = "relay" }
    ttl              = "2m"
  }
}
backend "hmac" {
  url = "%[1]s/hmac/in"
  inject "hmac" {
    secret = %[7]q
  }
}
backend "oauth" {
  url = "%[1]s/oauth/in"
  inject "oauth2" {
    token_url     = "%[8]s/token"
    client_id     = "relay-client"
    client_secret = %[9]q
  }
}
backend "iam" {
  url = "%[1]s/iam/in"
  inject "huawei_iam" {
    iam_url  = %[10]q
    domain   = "acme-domain"
    username = "relay-iam"
    password = env("INJ_TEST_IAM_PASSWORD")
    project  = "ap-southeast-1"
  }
}
backend "static" {
  url                = "%[1]s/static/in"
  headers            = { "X-Tenant" = "acme" }
  pass_authorization = true
}
`, plat.srv.URL, secBasic, secHeader, secBearer, secJWT, ecFile, secHMAC, oauth.srv.URL, secOAuth, iam.srv.URL)
	tr := startRelayIn(t, dir, cfg)

	const n = 4
	for i := range n {
		body := []byte(fmt.Sprintf(`{"id":"evt-%d","text":"hallö %d"}`, i, i))
		req, _ := http.NewRequest(http.MethodPost, tr.base+"/hooks/bsp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", "from-the-bsp")
		req.Header.Set("Authorization", "BSP-Token xyz")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("callback %d: status %d", i, res.StatusCode)
		}
	}
	segs := []string{"basic", "header", "bearer", "jwths", "jwtes", "hmac", "oauth", "iam", "static"}
	waitFor(t, 15*time.Second, "every backend to accept every delivery", func() bool {
		for _, s := range segs {
			if plat.passed(s) < n {
				return false
			}
		}
		return true
	})
	if f := plat.failures(); len(f) > 0 {
		t.Fatalf("receivers refused deliveries: %v", f)
	}
	if got := iam.logins.Load(); got != 1 {
		t.Errorf("IAM logins = %d for %d deliveries, want 1", got, n)
	}
	if got := oauth.fetches.Load(); got != 1 {
		t.Errorf("oauth2 tokens fetched = %d, want 1", got)
	}

	// A 401 to the IAM token: one more login, the delivery still succeeds
	// within its attempt.
	iam.revokeAll()
	res := post(t, tr.base+"/hooks/bsp", []byte(`{"id":"after-revoke"}`), "")
	if res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	waitFor(t, 10*time.Second, "delivery after the IAM token was refused", func() bool { return plat.passed("iam") == n+1 })
	if got := iam.logins.Load(); got != 2 {
		t.Errorf("IAM logins after a 401 = %d, want 2", got)
	}
	if bad := iam.bad.Load(); bad != 0 {
		t.Errorf("IAM saw %d malformed logins", bad)
	}
	if f := plat.failures(); len(f["iam"]) != 1 {
		t.Errorf("the IAM backend refused %d attempts, want exactly the one with the revoked token: %v", len(f["iam"]), f)
	}
	assertNoSecretInLogs(t, tr.logs.String(), secBasic, secHeader, secBearer, secJWT, secHMAC, secOAuth, secIAM)
}

func assertNoSecretInLogs(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, s) {
					t.Errorf("a log line carries a secret: %s", line)
				}
			}
		}
	}
}

// TestUpstreamInjectsJWTAndHMAC: an upstream takes the same inject blocks;
// the BSP verifies a fresh JWT and an HMAC over the exact bytes it got.
func TestUpstreamInjectsJWTAndHMAC(t *testing.T) {
	plat := newPlatform(t, false)
	plat.handle("api", func(r *http.Request, body []byte) error {
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return []byte(secJWT), nil },
			jwt.WithValidMethods([]string{"HS384"}), jwt.WithExpirationRequired()); err != nil {
			return fmt.Errorf("jwt: %v", err)
		}
		m := hmac.New(sha256.New, []byte(secHMAC))
		m.Write(body)
		if got := r.Header.Get("X-Signature"); got != base64.StdEncoding.EncodeToString(m.Sum(nil)) {
			return fmt.Errorf("hmac %q over %d bytes", got, len(body))
		}
		return nil
	})
	tr := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
upstream "bsp" {
  listener    = "public"
  path        = "/out/bsp/"
  base_url    = "%s/api"
  allow_paths = ["/**"]
  inject "jwt" {
    algorithm = "HS384"
    secret    = %q
  }
  inject "hmac" {
    secret   = %q
    header   = "X-Signature"
    encoding = "base64"
    prefix   = ""
  }
}
`, plat.srv.URL, secJWT, secHMAC))
	body := bytes.Repeat([]byte(`{"to":"4915","text":"hallö"}`), 400)
	for i := range 3 {
		res, err := http.Post(tr.base+"/out/bsp/v1/messages", "application/json", bytes.NewReader(body[:len(body)-i]))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("call %d: %d %v", i, res.StatusCode, plat.failures())
		}
	}
	if plat.passed("api") != 3 {
		t.Fatalf("passed %d: %v", plat.passed("api"), plat.failures())
	}
	assertNoSecretInLogs(t, tr.logs.String(), secJWT, secHMAC)
}
