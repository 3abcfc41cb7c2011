package relay

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

const testSecret = "e2e-meta-app-secret"

// recorder is a backend that records what it receives.
type recorder struct {
	mu     sync.Mutex
	reqs   []recorded
	status atomic.Int32 // answer; 0 = 200
	fail   func(r recorded) int
	srv    *httptest.Server
}

type recorded struct {
	Header http.Header
	Body   []byte
	Method string
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rc := &recorder{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := recorded{Header: r.Header.Clone(), Body: body, Method: r.Method}
		if rc.fail != nil {
			if st := rc.fail(rec); st != 0 {
				w.WriteHeader(st)
				return
			}
		}
		if st := rc.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, rec)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *recorder) got() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

type testRelay struct {
	s    *Server
	file string
	base string // http://listener
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRelay writes cfg into a new directory and runs a Server on it.
func startRelay(t *testing.T, cfg string) *testRelay {
	t.Helper()
	return startRelayIn(t, t.TempDir(), cfg)
}

// startRelayIn writes cfg as dir/relay.hcl (beside the files it names)
// and runs a Server on it until the test ends.
func startRelayIn(t *testing.T, dir, cfg string) *testRelay {
	t.Helper()
	file := filepath.Join(dir, "relay.hcl")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, diags := LoadConfig(file)
	if diags.HasErrors() {
		t.Fatalf("config:\n%s", FormatDiagnostics(diags))
	}
	logs := &syncBuffer{}
	s, err := New(c, Options{LogOutput: logs, ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &testRelay{s: s, file: file, base: "http://" + s.ListenerAddr("public"), logs: logs}
}

func metaConfig(backends ...string) string {
	cfg := `
data_dir = "./data"
log { level = "debug" }
listener "public" {
  address  = "127.0.0.1:0"
  max_body = "4KiB"
}
admin { address = "127.0.0.1:0" }
channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" { secrets = ["` + testSecret + `"] }
  verify_token = "vt-123"
  forward_to = [%s]
}
`
	var names []string
	for i, b := range backends {
		name := fmt.Sprintf("b%d", i)
		names = append(names, `"`+name+`"`)
		cfg += fmt.Sprintf(`
backend %q {
  url = %q
  timeout = "2s"
  concurrency = 8
  retry {
    initial = "20ms"
    max     = "200ms"
  }
  breaker {
    failures = 1000
    open_for = "100ms"
  }
}
`, name, b)
	}
	return fmt.Sprintf(cfg, strings.Join(names, ", "))
}

func metaBody(id, from string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"K\u00e4the"},"wa_id":"` + from + `"}],"messages":[{"from":"` + from + `","id":"` + id + `","timestamp":"1700000000","text":{"body":"hall\u00f6"},"type":"text"}]},"field":"messages"}]}]}`)
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func post(t *testing.T, url string, body []byte, sig string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	req.Header.Set("Authorization", "Bearer must-not-be-forwarded")
	req.Header.Set("Cookie", "c=must-not-be-forwarded")
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Callbacks on a plain listener take the fast path; a request it does
// not serve (here the Meta verification GET) moves its connection to
// net/http, counted in edgerelay_http_handoffs_total, and is answered as
// before.
func TestCallbacksTakeTheFastPath(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	for i := range 3 {
		body := metaBody(fmt.Sprintf("wamid.fast%d", i), "4915100000007")
		if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
			t.Fatalf("callback %d: %d", i, resp.StatusCode)
		}
	}
	handoffs := func() string {
		for _, line := range strings.Split(scrape(t, r), "\n") {
			if strings.HasPrefix(line, `edgerelay_http_handoffs_total{listener="public"}`) {
				return line
			}
		}
		return ""
	}
	if got := handoffs(); got != `edgerelay_http_handoffs_total{listener="public"} 0` {
		t.Fatalf("after three callbacks: %q, want no handoff", got)
	}
	resp, err := http.Get(r.base + "/hooks/meta?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=42")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "42" {
		t.Fatalf("verification GET: %d %q", resp.StatusCode, b)
	}
	if got := handoffs(); got != `edgerelay_http_handoffs_total{listener="public"} 1` {
		t.Fatalf("after the GET: %q, want one handoff", got)
	}
	waitFor(t, 5*time.Second, "deliveries", func() bool { return len(be.got()) == 3 })
}

func TestRoundTripByteIdentical(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL+"/events"))
	body := metaBody("wamid.round-trip", "4915112345678")
	before := time.Now().UTC()
	resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(be.got()) == 1 })
	got := be.got()[0]
	if !bytes.Equal(got.Body, body) {
		t.Fatalf("body changed:\n%s\n%s", got.Body, body)
	}
	h := got.Header
	if h.Get("Content-Type") != "application/json" || h.Get("X-Custom") != "kept" || h.Get("X-Hub-Signature-256") != "" {
		t.Errorf("original headers not kept: %v", h)
	}
	if h.Get("Authorization") != "" || h.Get("Cookie") != "" {
		t.Errorf("credentials forwarded: %v", h)
	}
	if h.Get("X-Relay-Event-Id") == "" || h.Get("X-Relay-Channel") != "meta" || h.Get("X-Relay-Provider") != "meta" || h.Get("X-Relay-Attempt") != "1" {
		t.Errorf("relay headers wrong: %v", h)
	}
	at, err := time.Parse(time.RFC3339Nano, h.Get("X-Relay-Received-At"))
	if err != nil || at.Before(before.Add(-time.Second)) || !strings.HasSuffix(h.Get("X-Relay-Received-At"), "Z") || len(h.Get("X-Relay-Received-At")) != len("2006-01-02T15:04:05.000000000Z") {
		t.Errorf("X-Relay-Received-At %q: %v", h.Get("X-Relay-Received-At"), err)
	}
}

func TestAuthFailuresNeverDelivered(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	body := metaBody("wamid.forged", "4915100000001")
	other := metaBody("wamid.other", "4915100000001")
	// Meta signs the escaped bytes: the same JSON with decoded unicode is a different body.
	decoded := bytes.ReplaceAll(body, []byte(`\u00e4`), []byte("ä"))
	cases := map[string]struct {
		body []byte
		sig  string
	}{
		"missing":       {body, ""},
		"wrong secret":  {body, sign("not-the-secret", body)},
		"other body":    {body, sign(testSecret, other)},
		"re-serialised": {decoded, sign(testSecret, body)},
		"garbage":       {body, "sha256=zz"},
		"no prefix":     {body, strings.TrimPrefix(sign(testSecret, body), "sha256=")},
	}
	for name, c := range cases {
		resp := post(t, r.base+"/hooks/meta", c.body, c.sig)
		if resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}
	// The JSON body is exactly {"error":"unauthorized"}.
	req, _ := http.NewRequest("POST", r.base+"/hooks/meta", bytes.NewReader(body))
	resp, _ := http.DefaultClient.Do(req)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != `{"error":"unauthorized"}` {
		t.Errorf("401 body %q", b)
	}
	// A good one afterwards proves the pipeline was live all along.
	post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	waitFor(t, 5*time.Second, "the authentic delivery", func() bool { return len(be.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(be.got()); n != 1 {
		t.Fatalf("%d deliveries, want only the authentic one", n)
	}
	logs := r.logs.String()
	if strings.Contains(logs, testSecret) || strings.Contains(logs, "must-not-be-forwarded") {
		t.Fatal("a secret or credential reached the log")
	}
	if !strings.Contains(logs, `"reason":"bad_signature"`) || !strings.Contains(logs, `"reason":"missing_credentials"`) {
		t.Errorf("log lacks failure reasons:\n%s", logs)
	}
}

func TestStatusCodes(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	do := func(method, path string, body []byte) int {
		req, _ := http.NewRequest(method, r.base+path, bytes.NewReader(body))
		if body != nil {
			req.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do("POST", "/nope", []byte("x")); c != 404 {
		t.Errorf("unknown path: %d", c)
	}
	if c := do("DELETE", "/nope", nil); c != 404 {
		t.Errorf("unknown path, other method: %d", c)
	}
	if c := do("PUT", "/hooks/meta", []byte("x")); c != 405 {
		t.Errorf("wrong method: %d", c)
	}
	exact := bytes.Repeat([]byte("a"), 4096)
	if c := do("POST", "/hooks/meta", exact); c != 200 {
		t.Errorf("body of exactly max_body: %d", c)
	}
	if c := do("POST", "/hooks/meta", append(exact, 'a')); c != 413 {
		t.Errorf("body over max_body: %d", c)
	}
	// Chunked (no Content-Length) over the limit.
	req, _ := http.NewRequest("POST", r.base+"/hooks/meta", io.MultiReader(bytes.NewReader(exact), strings.NewReader("more")))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked over max_body: %d", resp.StatusCode)
	}
	// Meta's verification handshake.
	get := func(q string) (int, string) {
		resp, err := http.Get(r.base + "/hooks/meta" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if c, b := get("?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=1158201444"); c != 200 || b != "1158201444" {
		t.Errorf("handshake: %d %q", c, b)
	}
	if c, _ := get("?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"); c != 403 {
		t.Errorf("bad token: %d", c)
	}
	if c, _ := get(""); c != 400 {
		t.Errorf("GET without hub params: %d", c)
	}
	time.Sleep(50 * time.Millisecond)
	for _, g := range be.got() {
		if !bytes.Equal(g.Body, exact) {
			t.Errorf("something other than the accepted body was delivered: %d bytes", len(g.Body))
		}
	}
}

func TestBackendDownThenUp(t *testing.T) {
	be := newRecorder(t)
	be.status.Store(503)
	r := startRelay(t, metaConfig(be.srv.URL))
	const n = 50
	for i := range n {
		body := metaBody(fmt.Sprintf("wamid.down-%d", i), fmt.Sprintf("49151%05d", i%7))
		if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	time.Sleep(300 * time.Millisecond) // several failed rounds
	be.status.Store(0)
	waitFor(t, 10*time.Second, "all deliveries after recovery", func() bool { return len(be.got()) == n })
	retried := 0
	for _, g := range be.got() {
		if g.Header.Get("X-Relay-Attempt") != "1" {
			retried++
		}
	}
	if retried == 0 {
		t.Error("no delivery carries an attempt number above 1")
	}
}

func TestDeadBackendDoesNotHoldLiveOne(t *testing.T) {
	live := newRecorder(t)
	dead := newRecorder(t)
	dead.srv.Close() // connection refused
	r := startRelay(t, metaConfig(dead.srv.URL, live.srv.URL))
	const n = 100
	start := time.Now()
	for i := range n {
		body := metaBody(fmt.Sprintf("wamid.fan-%d", i), "4915199999999")
		post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	}
	waitFor(t, 5*time.Second, "live backend gets everything", func() bool { return len(live.got()) == n })
	t.Logf("live backend got %d events in %s while the other is down", n, time.Since(start).Round(time.Millisecond))
	st := r.s.Queue().Stats()["b0"]
	if st.Pending+st.InFlight != n {
		t.Errorf("dead backend should still hold all %d deliveries, stats %+v", n, st)
	}
}

func TestDeadLetterAndReplay(t *testing.T) {
	be := newRecorder(t)
	var reject atomic.Bool
	reject.Store(true)
	be.fail = func(recorded) int {
		if reject.Load() {
			return 400
		}
		return 0
	}
	r := startRelay(t, metaConfig(be.srv.URL))
	body := metaBody("wamid.poison", "4915100000002")
	post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	admin := "http://" + r.s.AdminAddr()
	var list struct {
		DeadLetters []struct {
			EventID  string `json:"event_id"`
			Backend  string `json:"backend"`
			Attempts int    `json:"attempts"`
		} `json:"dead_letters"`
	}
	waitFor(t, 5*time.Second, "dead letter", func() bool {
		resp, err := http.Get(admin + "/api/v1/deadletters")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&list)
		return len(list.DeadLetters) == 1
	})
	if list.DeadLetters[0].Attempts != 1 || list.DeadLetters[0].Backend != "b0" {
		t.Fatalf("a 400 must dead-letter at once: %+v", list.DeadLetters[0])
	}
	reject.Store(false)
	resp, err := http.Post(admin+"/api/v1/deadletters/"+list.DeadLetters[0].EventID+"/replay", "application/json", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("replay: %v %v", err, resp)
	}
	waitFor(t, 5*time.Second, "replayed delivery", func() bool { return len(be.got()) == 1 })
	g := be.got()[0]
	if g.Header.Get("X-Relay-Attempt") != "1" || g.Header.Get("X-Relay-Event-Id") != list.DeadLetters[0].EventID || !bytes.Equal(g.Body, body) {
		t.Errorf("replayed delivery wrong: attempt %s id %s", g.Header.Get("X-Relay-Attempt"), g.Header.Get("X-Relay-Event-Id"))
	}
}

func TestOrderingUnderRandomFailures(t *testing.T) {
	be := newRecorder(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	be.fail = func(recorded) int {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() < 0.3 {
			return 500
		}
		return 0
	}
	r := startRelay(t, metaConfig(be.srv.URL))
	const senders, perSender = 8, 25
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				body := metaBody(fmt.Sprintf("wamid.s%d-%03d", s, i), fmt.Sprintf("4917000000%02d", s))
				req, _ := http.NewRequest("POST", r.base+"/hooks/meta", bytes.NewReader(body))
				req.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("post: %v", err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "all ordered deliveries", func() bool { return len(be.got()) == senders*perSender })
	next := map[string]int{}
	for _, g := range be.got() {
		var sender string
		var seq int
		s := string(g.Body)
		i := strings.Index(s, `"id":"wamid.s`)
		fmt.Sscanf(s[i+len(`"id":"wamid.s`):], "%d-%d", new(int), &seq)
		j := strings.Index(s, `"from":"`)
		sender = s[j+8 : j+20]
		if seq != next[sender] {
			t.Fatalf("sender %s: got message %d, expected %d (out of order)", sender, seq, next[sender])
		}
		next[sender]++
	}
}

func TestDuplicateDeliveredOnce(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	body := metaBody("wamid.dup", "4915100000003")
	for range 3 {
		if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
			t.Fatalf("duplicate must still get 200, got %d", resp.StatusCode)
		}
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(be.got()) >= 1 })
	time.Sleep(200 * time.Millisecond)
	if n := len(be.got()); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}

func TestReloadChangesSecret(t *testing.T) {
	be := newRecorder(t)
	cfg := metaConfig(be.srv.URL)
	r := startRelay(t, cfg)
	body := metaBody("wamid.reload-1", "4915100000004")
	if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	// A keep-alive connection opened before the reload must survive it.
	os.WriteFile(r.file, []byte(strings.Replace(cfg, testSecret, "rotated-secret", 1)), 0o600)
	if err := r.s.Reload(); err != nil {
		t.Fatal(err)
	}
	body2 := metaBody("wamid.reload-2", "4915100000004")
	if resp := post(t, r.base+"/hooks/meta", body2, sign(testSecret, body2)); resp.StatusCode != 401 {
		t.Errorf("old secret after reload: %d", resp.StatusCode)
	}
	if resp := post(t, r.base+"/hooks/meta", body2, sign("rotated-secret", body2)); resp.StatusCode != 200 {
		t.Errorf("new secret after reload: %d", resp.StatusCode)
	}
	waitFor(t, 5*time.Second, "both deliveries", func() bool { return len(be.got()) == 2 })

	// A change that cannot be live is refused whole; the old config stays.
	os.WriteFile(r.file, []byte(strings.Replace(strings.Replace(cfg, testSecret, "third", 1), `data_dir = "./data"`, `data_dir = "./elsewhere"`, 1)), 0o600)
	if err := r.s.Reload(); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("data_dir change not refused: %v", err)
	}
	if resp := post(t, r.base+"/hooks/meta", body, sign("rotated-secret", body)); resp.StatusCode != 200 {
		t.Errorf("old config must stay after a refused reload: %d", resp.StatusCode)
	}
	// An invalid file is refused too.
	os.WriteFile(r.file, []byte("data_dir = \n"), 0o600)
	if err := r.s.Reload(); err == nil {
		t.Fatal("invalid file accepted")
	}
	if !strings.Contains(r.logs.String(), "reload refused") {
		t.Error("refusal not logged")
	}
	if strings.Contains(r.logs.String(), "rotated-secret") {
		t.Error("secret in log")
	}
}

func TestBackendSignatureVerifies(t *testing.T) {
	be := newRecorder(t)
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	cfg := strings.Replace(metaConfig(be.srv.URL), "  concurrency = 8\n", "  concurrency = 8\n  sign { secret = \""+secret+"\" }\n", 1)
	r := startRelay(t, cfg)
	body := metaBody("wamid.signed", "4915100000005")
	post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(be.got()) == 1 })
	g := be.got()[0]
	if g.Header.Get("webhook-id") != g.Header.Get("X-Relay-Event-Id") {
		t.Errorf("webhook-id %q != X-Relay-Event-Id %q", g.Header.Get("webhook-id"), g.Header.Get("X-Relay-Event-Id"))
	}
	v, err := auth.NewStandardWebhooks(auth.StandardWebhooksConfig{Secrets: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(&auth.Request{Header: g.Header, Body: g.Body}); err != nil {
		t.Fatalf("backend cannot verify the relay's signature: %v", err)
	}
}

func TestMetricsExposed(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	body := metaBody("wamid.metrics", "4915100000006")
	post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	post(t, r.base+"/hooks/meta", body, sign("not-the-secret", body))
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(be.got()) == 1 })
	// The backend has the event before the relay has read its answer and committed the
	// acknowledgement, which the delivery and queue series count: read the metrics once the
	// acknowledgement is in (or the time is up, and the checks below say what is missing).
	var b []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + r.s.AdminAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `edgerelay_queue_store_skipped_total 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{
		`edgerelay_requests_total{channel="meta",status="200"} 1`,
		`edgerelay_requests_total{channel="meta",status="401"} 1`,
		`edgerelay_auth_failures_total{channel="meta",reason="bad_signature"} 1`,
		`edgerelay_delivery_attempts_total{backend="b0",result="delivered"} 1`,
		`edgerelay_queue_depth{backend="b0"} 0`,
		`edgerelay_backend_breaker_state{backend="b0"} 0`,
		`edgerelay_delivery_duration_seconds_count{backend="b0"} 1`,
		`edgerelay_queue_syncs_total`,
		// Delivered at once: the event never left the journal for the store.
		`edgerelay_queue_store_skipped_total 1`,
		`edgerelay_queue_max_bytes `,
		`edgerelay_queue_live_bytes `,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + r.s.AdminAddr() + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", p, err, resp)
		}
		resp.Body.Close()
	}
}
