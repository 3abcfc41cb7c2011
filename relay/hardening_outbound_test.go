package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeBSP records every request it receives.
type fakeBSP struct {
	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newFakeBSP(t *testing.T) *fakeBSP {
	t.Helper()
	b := &fakeBSP{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, r.Clone(r.Context()))
		b.mu.Unlock()
		w.WriteHeader(200)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *fakeBSP) got() []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Request(nil), b.reqs...)
}

// rawStatus sends one request line as written (nothing cleans it on the
// way) and returns the status.
func rawStatus(t *testing.T, addr, method, target string, header string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: relay.internal\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", method, target, header)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

const callerJWTSecret = "caller-jwt-secret-0123456789abcdef"

func outboundHardeningRelay(t *testing.T, bsp *fakeBSP) string {
	t.Helper()
	cfg := fmt.Sprintf(`
data_dir = "./data"
listener "internal" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
upstream "bsp" {
  listener      = "internal"
  path          = "/out/bsp/"
  base_url      = "%s/api"
  allow_paths   = ["/media/**"]
  allow_methods = ["GET", "POST"]
  inject "header" {
    name  = "Authorization"
    value = "App injected-bsp-key"
  }
  caller_auth "jwt" {
    header     = "X-Caller-Token"
    algorithms = ["HS256"]
    secrets    = [%q]
  }
}
`, bsp.srv.URL, callerJWTSecret)
	r := startRelay(t, cfg)
	return r.s.ListenerAddr("internal")
}

func callerToken(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "crm", "iat": time.Now().Unix()}).SignedString([]byte(callerJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestOutboundPathTricksNeverReachTheBSP sends the path-parameter,
// double-encoding and overlong UTF-8 forms of "..", which a lenient BSP
// server would resolve outside the allow-list, and checks that the fake BSP
// receives none of them while the allowed path arrives re-encoded from its
// checked segments.
func TestOutboundPathTricksNeverReachTheBSP(t *testing.T) {
	bsp := newFakeBSP(t)
	addr := outboundHardeningRelay(t, bsp)
	tokHeader := "X-Caller-Token: Bearer " + callerToken(t) + "\r\n"
	for _, target := range []string{
		"/out/bsp/media/..;/..;/..;/admin/keys",
		"/out/bsp/media/..;/admin/keys",
		"/out/bsp/media/x;jsessionid=1",
		"/out/bsp/media/%3b/x",
		"/out/bsp/media/%252e%252e/%252e%252e/admin/keys",
		"/out/bsp/media/%25",
		"/out/bsp/media/%c0%ae%c0%ae/%c0%ae%c0%ae/admin/keys",
		"/out/bsp/media/%e0%80%ae%e0%80%ae/admin",
		"/out/bsp/media/%ff",
	} {
		if st := rawStatus(t, addr, "GET", target, tokHeader); st != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", target, st)
		}
	}
	if n := len(bsp.got()); n != 0 {
		t.Fatalf("the BSP received %d refused requests: %s", n, bsp.got()[0].RequestURI)
	}
	// Allowed: forwarded with the path rebuilt from the decoded segments.
	if st := rawStatus(t, addr, "GET", "/out/bsp/media/%41b/./c%40d/x/../caf%c3%a9?q=%2e%2e", tokHeader); st != 200 {
		t.Fatalf("allowed path: %d", st)
	}
	g := bsp.got()
	if len(g) != 1 || g[0].RequestURI != "/api/media/Ab/c@d/caf%C3%A9?q=%2e%2e" {
		t.Fatalf("the BSP received %v", g)
	}
}

// TestOutboundCallerCredentialsStayAtTheRelay: the caller's jwt (in the
// header caller_auth reads), its cookie, a method override and forwarding
// headers never reach the BSP; the injected key and allow-listed headers do.
func TestOutboundCallerCredentialsStayAtTheRelay(t *testing.T) {
	bsp := newFakeBSP(t)
	addr := outboundHardeningRelay(t, bsp)
	tok := callerToken(t)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/out/bsp/media/upload", strings.NewReader(`{"x":1}`))
	req.Header.Set("X-Caller-Token", "Bearer "+tok)
	req.Header.Set("Cookie", "session=caller-cookie-secret")
	req.Header.Set("X-HTTP-Method-Override", "DELETE")
	req.Header.Set("X-Method-Override", "DELETE")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-For", "10.9.9.9")
	req.Header.Set("X-Internal-Debug", "1")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "idem-1")
	req.Header.Set("X-Request-Id", "req-1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	g := bsp.got()
	if len(g) != 1 {
		t.Fatalf("BSP received %d requests", len(g))
	}
	h := g[0].Header
	for k, vv := range h {
		for _, v := range vv {
			if strings.Contains(v, tok) || strings.Contains(v, "caller-cookie-secret") {
				t.Errorf("the caller's credential reached the BSP in %s", k)
			}
		}
	}
	for _, k := range []string{"X-Caller-Token", "Cookie", "X-Http-Method-Override", "X-Method-Override", "X-Forwarded-Host", "X-Forwarded-For", "X-Internal-Debug"} {
		if v, ok := h[k]; ok {
			t.Errorf("%s reached the BSP: %q", k, v)
		}
	}
	if g[0].Method != http.MethodPost {
		t.Errorf("method %s", g[0].Method)
	}
	want := map[string]string{"Authorization": "App injected-bsp-key", "Content-Type": "application/json", "Idempotency-Key": "idem-1", "X-Request-Id": "req-1"}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("BSP header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	// Without the caller's token: refused, nothing sent.
	if st := rawStatus(t, addr, "GET", "/out/bsp/media/x", ""); st != http.StatusUnauthorized {
		t.Errorf("no caller token: %d", st)
	}
	if len(bsp.got()) != 1 {
		t.Errorf("an unauthenticated call reached the BSP")
	}
}
