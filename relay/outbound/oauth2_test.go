package outbound

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tokenServer is a client-credentials token endpoint on loopback.
type tokenServer struct {
	id, secret string
	expiresIn  atomic.Int64 // seconds
	fail       atomic.Bool
	n          atomic.Int64

	mu     sync.Mutex
	expiry map[string]time.Time // issued token → expiry
	issued []time.Time
	scopes []string
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ts.fail.Load() {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	id, secret, ok := r.BasicAuth()
	if r.Method != http.MethodPost || r.PostFormValue("grant_type") != "client_credentials" ||
		!ok || id != ts.id || secret != ts.secret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	n := ts.n.Add(1)
	tok := fmt.Sprintf("tok-%d", n)
	exp := ts.expiresIn.Load()
	ts.mu.Lock()
	ts.expiry[tok] = time.Now().Add(time.Duration(exp) * time.Second)
	ts.issued = append(ts.issued, time.Now())
	ts.scopes = strings.Fields(r.PostFormValue("scope"))
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": exp})
}

// tokenBSP accepts only unexpired, unrevoked tokens of the token server.
type tokenBSP struct {
	ts      *tokenServer
	n       atomic.Int64
	expired atomic.Int64 // requests that carried an expired token
	revoked sync.Map     // token → true
	mu      sync.Mutex
	bodies  []string
	tokens  []string
}

func (b *tokenBSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.n.Add(1)
	body, _ := io.ReadAll(r.Body)
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	b.bodies = append(b.bodies, string(body))
	b.tokens = append(b.tokens, tok)
	b.mu.Unlock()
	b.ts.mu.Lock()
	exp, ok := b.ts.expiry[tok]
	b.ts.mu.Unlock()
	if _, rev := b.revoked.Load(tok); !ok || rev {
		http.Error(w, `{"error":"invalid token"}`, http.StatusUnauthorized)
		return
	}
	if time.Now().After(exp) {
		b.expired.Add(1)
		http.Error(w, `{"error":"expired token"}`, http.StatusUnauthorized)
		return
	}
	_, _ = w.Write([]byte("ok " + tok))
}

type oauthRig struct {
	ts    *tokenServer
	bsp   *tokenBSP
	p     *Proxy
	spec  Spec
	relay string
}

func newOAuthRig(t *testing.T, expiresIn int64, mut func(*Spec)) *oauthRig {
	t.Helper()
	ca := newTestCA(t)
	ts := &tokenServer{id: "client-1", secret: "s3cret", expiry: map[string]time.Time{}}
	ts.expiresIn.Store(expiresIn)
	tsSrv := ca.startTLS(t, ts)
	bsp := &tokenBSP{ts: ts}
	bspSrv := ca.startTLS(t, bsp)
	spec := Spec{Name: "sinch", Path: "/out/sinch/", BaseURL: bspSrv.URL, AllowPaths: []string{"/**"},
		AllowMethods: []string{"GET", "POST"}, TLS: ca.clientTLS(t),
		Inject: []Injector{OAuth2Inject{TokenURL: tsSrv.URL + "/oauth2/token", ClientID: "client-1",
			ClientSecret: "s3cret", Scopes: []string{"messages", "media"}}}}
	if mut != nil {
		mut(&spec)
	}
	p, _ := newProxy(t, spec)
	relay := startRelay(t, p)
	return &oauthRig{ts: ts, bsp: bsp, p: p, spec: spec, relay: relay.URL + "/out/sinch"}
}

func (rig *oauthRig) post(t *testing.T, path string, body io.Reader, length int64) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, rig.relay+path, body)
	req.ContentLength = length
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestOAuth2TokenFetchedOnceAndReused(t *testing.T) {
	rig := newOAuthRig(t, 3600, nil)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				res, err := http.Get(rig.relay + "/x")
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || string(b) != "ok tok-1" {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d calls failed", bad.Load())
	}
	if n := rig.ts.n.Load(); n != 1 || rig.p.TokenFetches() != 1 {
		t.Fatalf("token endpoint hit %d times for 40 calls, want 1", n)
	}
	rig.ts.mu.Lock()
	scopes := strings.Join(rig.ts.scopes, " ")
	rig.ts.mu.Unlock()
	if scopes != "messages media" {
		t.Fatalf("scopes %q", scopes)
	}
}

func TestOAuth2RefreshedBeforeExpiry(t *testing.T) {
	// A 2-second token: refreshed from 1.6s on (a fifth of its life early),
	// in the background, so that no call ever carries an expired token.
	rig := newOAuthRig(t, 2, nil)
	deadline := time.Now().Add(8 * time.Second)
	calls := 0
	for rig.ts.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("token fetched %d times in 8s of calls", rig.ts.n.Load())
		}
		if code, body := rig.post(t, "/x", strings.NewReader("{}"), 2); code != 200 {
			t.Fatalf("call %d: %d %q", calls, code, body)
		}
		calls++
		time.Sleep(20 * time.Millisecond)
	}
	rig.ts.mu.Lock()
	firstRefresh := rig.ts.issued[1].Sub(rig.ts.issued[0])
	rig.ts.mu.Unlock()
	t.Logf("%d calls, first refresh after %v", calls, firstRefresh)
	if firstRefresh < time.Second || firstRefresh > 2*time.Second {
		t.Fatalf("first refresh after %v, want between 1s and the 2s expiry", firstRefresh)
	}
	if rig.bsp.expired.Load() != 0 {
		t.Fatalf("%d calls carried an expired token", rig.bsp.expired.Load())
	}
	if int(rig.bsp.n.Load()) != calls {
		t.Fatalf("BSP saw %d requests for %d calls (retries?)", rig.bsp.n.Load(), calls)
	}
}

func TestOAuth2UnauthorizedRefreshesAndRetriesOnce(t *testing.T) {
	rig := newOAuthRig(t, 3600, func(s *Spec) { s.ReplayLimit = 4096 })
	if code, body := rig.post(t, "/x", strings.NewReader("first"), 5); code != 200 || body != "ok tok-1" {
		t.Fatalf("%d %q", code, body)
	}
	// The BSP revokes tok-1: one 401, one refresh, one replay with the same body.
	rig.bsp.revoked.Store("tok-1", true)
	payload := strings.Repeat("p", 3000)
	if code, body := rig.post(t, "/x", strings.NewReader(payload), int64(len(payload))); code != 200 || body != "ok tok-2" {
		t.Fatalf("%d %q", code, body)
	}
	if rig.ts.n.Load() != 2 || rig.bsp.n.Load() != 3 {
		t.Fatalf("token fetches %d, BSP requests %d; want 2 and 3", rig.ts.n.Load(), rig.bsp.n.Load())
	}
	rig.bsp.mu.Lock()
	if rig.bsp.bodies[1] != payload || rig.bsp.bodies[2] != payload || rig.bsp.tokens[1] != "tok-1" || rig.bsp.tokens[2] != "tok-2" {
		t.Fatalf("replay: tokens %v, bodies equal %v %v", rig.bsp.tokens, rig.bsp.bodies[1] == payload, rig.bsp.bodies[2] == payload)
	}
	rig.bsp.mu.Unlock()
	// A chunked body that fits the replay limit is replayed too.
	rig.bsp.revoked.Store("tok-2", true)
	if code, body := rig.post(t, "/x", io.MultiReader(strings.NewReader("chunked")), -1); code != 200 || body != "ok tok-3" {
		t.Fatalf("%d %q", code, body)
	}
	if rig.ts.n.Load() != 3 || rig.bsp.n.Load() != 5 {
		t.Fatalf("token fetches %d, BSP requests %d; want 3 and 5", rig.ts.n.Load(), rig.bsp.n.Load())
	}
	// The new token is reused.
	if code, _ := rig.post(t, "/x", nil, 0); code != 200 || rig.ts.n.Load() != 3 {
		t.Fatalf("%d, fetches %d", code, rig.ts.n.Load())
	}

	// Still refused after the refresh: the 401 goes to the caller, exactly
	// one retry.
	rig.bsp.revoked.Store("tok-3", true)
	rig.bsp.revoked.Store("tok-4", true)
	if code, _ := rig.post(t, "/x", strings.NewReader("x"), 1); code != 401 {
		t.Fatalf("status %d, want the BSP's 401", code)
	}
	if rig.ts.n.Load() != 4 || rig.bsp.n.Load() != 8 {
		t.Fatalf("token fetches %d, BSP requests %d; want 4 and 8", rig.ts.n.Load(), rig.bsp.n.Load())
	}

	// A body above the replay limit is streamed and not retried (tok-4, kept
	// after the failed replay, is refused); the token is dropped, so the
	// next call fetches a new one.
	big := bytes.Repeat([]byte("b"), 10000)
	if code, _ := rig.post(t, "/x", io.MultiReader(bytes.NewReader(big)), -1); code != 401 {
		t.Fatalf("status %d, want the BSP's 401", code)
	}
	if rig.ts.n.Load() != 4 || rig.bsp.n.Load() != 9 {
		t.Fatalf("token fetches %d, BSP requests %d; want 4 and 9 (no retry)", rig.ts.n.Load(), rig.bsp.n.Load())
	}
	if code, body := rig.post(t, "/x", strings.NewReader("x"), 1); code != 200 || body != "ok tok-5" {
		t.Fatalf("after a dropped token: %d %q", code, body)
	}
	rig.bsp.mu.Lock()
	if rig.bsp.bodies[8] != string(big) {
		t.Fatal("the streamed body arrived changed")
	}
	rig.bsp.mu.Unlock()
	if rig.p.BreakerState() != "closed" {
		t.Fatal("401s touched the breaker")
	}
}

func TestOAuth2TokenEndpointFailure(t *testing.T) {
	rig := newOAuthRig(t, 3600, nil)
	rig.ts.fail.Store(true)
	res, err := http.Get(rig.relay + "/x")
	if err != nil {
		t.Fatal(err)
	}
	if eb := decodeError(t, res, http.StatusBadGateway); eb.Code != CodeTokenEndpoint {
		t.Fatalf("%+v", eb)
	}
	if rig.bsp.n.Load() != 0 {
		t.Fatal("request sent without a token")
	}
	rig.ts.fail.Store(false)
	if code, body := rig.post(t, "/x", nil, 0); code != 200 || body != "ok tok-1" {
		t.Fatalf("%d %q", code, body)
	}
}

func TestOAuth2CacheSurvivesReload(t *testing.T) {
	rig := newOAuthRig(t, 3600, nil)
	if code, _ := rig.post(t, "/x", nil, 0); code != 200 {
		t.Fatal(code)
	}
	// Same oauth2 settings, other paths and a new TLS config: token kept.
	s := rig.spec
	s.AllowPaths = []string{"/x", "/y"}
	s.TLS = s.TLS.Clone()
	if err := rig.p.Update(s); err != nil {
		t.Fatal(err)
	}
	if code, body := rig.post(t, "/y", nil, 0); code != 200 || body != "ok tok-1" || rig.ts.n.Load() != 1 {
		t.Fatalf("%d %q, fetches %d", code, body, rig.ts.n.Load())
	}
	// A rotated client secret: a new token.
	rig.ts.mu.Lock()
	rig.ts.secret = "rotated"
	rig.ts.mu.Unlock()
	o := s.Inject[0].(OAuth2Inject)
	o.ClientSecret = "rotated"
	s.Inject = []Injector{o}
	if err := rig.p.Update(s); err != nil {
		t.Fatal(err)
	}
	if code, body := rig.post(t, "/y", nil, 0); code != 200 || body != "ok tok-2" || rig.ts.n.Load() != 2 {
		t.Fatalf("%d %q, fetches %d", code, body, rig.ts.n.Load())
	}
}
