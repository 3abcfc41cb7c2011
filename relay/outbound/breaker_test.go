package outbound

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// switchBSP answers according to its mode and counts requests.
type switchBSP struct {
	n    atomic.Int64
	mode atomic.Value // "ok", "500", "404", "hang"
}

func (b *switchBSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.n.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	switch b.mode.Load().(string) {
	case "500":
		http.Error(w, "bsp down", http.StatusInternalServerError)
	case "404":
		http.Error(w, "no such thing", http.StatusNotFound)
	case "429":
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case "hang":
		<-r.Context().Done()
		panic(http.ErrAbortHandler) // no answer at all, like a stuck BSP
	default:
		_, _ = w.Write([]byte("ok"))
	}
}

func newSwitchBSP(t *testing.T, ca *testCA, mode string) (*switchBSP, string) {
	t.Helper()
	b := &switchBSP{}
	b.mode.Store(mode)
	srv := ca.startTLS(t, b)
	return b, srv.URL
}

func call(t *testing.T, c *http.Client, url string) (*http.Response, time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := c.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	return res, time.Since(start)
}

func expectStatus(t *testing.T, res *http.Response, want int) {
	t.Helper()
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("status %d, want %d (body %q)", res.StatusCode, want, b)
	}
}

// expectFastFail checks breaker refusals: 503, Retry-After, JSON naming the
// upstream, and a median latency under 5ms over a round of n calls. On a
// loaded machine a round may be slowed by scheduling alone, so up to three
// rounds are measured and the best median counts. It returns the last
// Retry-After seen.
func expectFastFail(t *testing.T, c *http.Client, url, upstream string, n int) int {
	t.Helper()
	retry := 0
	best := time.Hour
	for round := 0; round < 3 && best >= 5*time.Millisecond; round++ {
		var lat []time.Duration
		for range n {
			res, d := call(t, c, url)
			lat = append(lat, d)
			ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Fatalf("Retry-After %q", res.Header.Get("Retry-After"))
			}
			retry = ra
			eb := decodeError(t, res, http.StatusServiceUnavailable)
			if eb.Code != CodeBreakerOpen || eb.Upstream != upstream || eb.Breaker != "open" || eb.RetryAfter != ra {
				t.Fatalf("breaker refusal body %+v", eb)
			}
		}
		slices.Sort(lat)
		median := lat[len(lat)/2]
		best = min(best, median)
		t.Logf("fast-fail latency: median %v, max %v over %d calls", median, lat[len(lat)-1], n)
	}
	if best > 5*time.Millisecond {
		t.Fatalf("median fast-fail latency %v, want < 5ms", best)
	}
	return retry
}

func TestBreakerOpensOn5xxFailsFastAndRecovers(t *testing.T) {
	ca := newTestCA(t)
	bsp, url := newSwitchBSP(t, ca, "500")
	p, m := newProxy(t, Spec{Name: "infobip", Path: "/out/infobip/", BaseURL: url, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Breaker: BreakerSpec{Failures: 3, OpenFor: 1500 * time.Millisecond}})
	relay := startRelay(t, p)
	c := &http.Client{Timeout: 10 * time.Second}
	target := relay.URL + "/out/infobip/x"

	for i := 0; i < 3; i++ {
		res, _ := call(t, c, target)
		expectStatus(t, res, http.StatusInternalServerError) // the BSP's own answer
	}
	if bsp.n.Load() != 3 || p.BreakerState() != "open" || gaugeValue(t, m, "infobip") != 2 {
		t.Fatalf("after 3 failures: bsp %d, breaker %s, gauge %v", bsp.n.Load(), p.BreakerState(), gaugeValue(t, m, "infobip"))
	}
	if ra := expectFastFail(t, c, target, "infobip", 15); ra != 1 && ra != 2 {
		t.Fatalf("Retry-After %d for a 1.5s open_for", ra)
	}
	if bsp.n.Load() != 3 {
		t.Fatalf("the BSP was contacted while the breaker was open: %d", bsp.n.Load())
	}

	// After open_for, one probe goes through; still failing: open again.
	waitFor(t, "half-open", 3*time.Second, func() bool { return p.BreakerState() == "half-open" })
	if gaugeValue(t, m, "infobip") != 1 {
		t.Fatal("gauge not half-open")
	}
	res, _ := call(t, c, target)
	expectStatus(t, res, http.StatusInternalServerError)
	if bsp.n.Load() != 4 || p.BreakerState() != "open" {
		t.Fatalf("failed probe: bsp %d, breaker %s", bsp.n.Load(), p.BreakerState())
	}
	res, _ = call(t, c, target)
	if eb := decodeError(t, res, http.StatusServiceUnavailable); eb.Breaker != "open" {
		t.Fatalf("after the failed probe: %+v", eb)
	}

	// The BSP recovers: the next probe closes the breaker and calls flow.
	bsp.mode.Store("ok")
	waitFor(t, "half-open again", 3*time.Second, func() bool { return p.BreakerState() == "half-open" })
	for i := 0; i < 5; i++ {
		res, _ := call(t, c, target)
		expectStatus(t, res, http.StatusOK)
	}
	if bsp.n.Load() != 9 || p.BreakerState() != "closed" || gaugeValue(t, m, "infobip") != 0 {
		t.Fatalf("after recovery: bsp %d, breaker %s", bsp.n.Load(), p.BreakerState())
	}
	if counterValue(t, m, "infobip", "503") < 16 || counterValue(t, m, "infobip", "500") != 4 {
		t.Fatalf("counters 503=%v 500=%v", counterValue(t, m, "infobip", "503"), counterValue(t, m, "infobip", "500"))
	}
}

func TestBreakerOpensOnTimeouts(t *testing.T) {
	ca := newTestCA(t)
	bsp, url := newSwitchBSP(t, ca, "hang")
	p, _ := newProxy(t, Spec{Name: "meta", Path: "/out/meta/", BaseURL: url, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Timeout: 200 * time.Millisecond,
		Breaker: BreakerSpec{Failures: 2, OpenFor: 20 * time.Second}})
	relay := startRelay(t, p)
	c := &http.Client{Timeout: 10 * time.Second}
	target := relay.URL + "/out/meta/v21.0/123/messages"
	for i := 0; i < 2; i++ {
		res, d := call(t, c, target)
		if eb := decodeError(t, res, http.StatusGatewayTimeout); eb.Code != CodeTimeout || eb.Upstream != "meta" {
			t.Fatalf("timeout body %+v", eb)
		}
		if d < 200*time.Millisecond || d > 5*time.Second {
			t.Fatalf("504 after %v, want about the 200ms timeout", d)
		}
	}
	// A timeout may strike before the request reached the BSP's handler
	// (connect and handshake count too), so count from here.
	seen := bsp.n.Load()
	if seen > 2 {
		t.Fatalf("the BSP saw %d requests for 2 calls", seen)
	}
	if ra := expectFastFail(t, c, target, "meta", 15); ra < 19 || ra > 20 {
		t.Fatalf("Retry-After %d, want the ~20s left", ra)
	}
	if bsp.n.Load() != seen {
		t.Fatalf("the BSP saw %d requests while the breaker was open", bsp.n.Load()-seen)
	}
}

func TestBreakerIgnores4xx(t *testing.T) {
	ca := newTestCA(t)
	bsp, url := newSwitchBSP(t, ca, "404")
	p, _ := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: url, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Breaker: BreakerSpec{Failures: 2}})
	relay := startRelay(t, p)
	c := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 6; i++ {
		if i == 3 {
			bsp.mode.Store("429")
		}
		res, _ := call(t, c, relay.URL+"/out/bsp/x")
		want := http.StatusNotFound
		if i >= 3 {
			want = http.StatusTooManyRequests
		}
		expectStatus(t, res, want)
	}
	if p.BreakerState() != "closed" || bsp.n.Load() != 6 {
		t.Fatalf("breaker %s after 4xx answers, bsp saw %d", p.BreakerState(), bsp.n.Load())
	}
}

func TestBreakerIgnoresCallerCancellation(t *testing.T) {
	ca := newTestCA(t)
	bsp, url := newSwitchBSP(t, ca, "hang")
	p, m := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: url, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Timeout: 30 * time.Second, Breaker: BreakerSpec{Failures: 2}})
	relay := startRelay(t, p)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, relay.URL+"/out/bsp/x", nil)
		res, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			res.Body.Close()
			t.Fatalf("call %d answered %d while the BSP hangs", i, res.StatusCode)
		}
	}
	waitFor(t, "the relay to account the cancelled calls", 10*time.Second, func() bool {
		return counterValue(t, m, "bsp", "499") == 5
	})
	if p.BreakerState() != "closed" {
		t.Fatalf("caller cancellations opened the breaker: %s", p.BreakerState())
	}
	bsp.mode.Store("ok")
	before := bsp.n.Load()
	res, _ := call(t, &http.Client{Timeout: 10 * time.Second}, relay.URL+"/out/bsp/x")
	expectStatus(t, res, http.StatusOK)
	if bsp.n.Load() != before+1 {
		t.Fatalf("bsp saw %d more", bsp.n.Load()-before)
	}
}

func TestUpdateKeepsOrResetsTheBreaker(t *testing.T) {
	ca := newTestCA(t)
	bsp, url := newSwitchBSP(t, ca, "500")
	spec := Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: url, AllowPaths: []string{"/a/*"},
		TLS: ca.clientTLS(t), Breaker: BreakerSpec{Failures: 1, OpenFor: time.Minute},
		Inject: []Injector{BearerInject{Token: "old", Expires: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)}}}
	p, _ := newProxy(t, spec)
	relay := startRelay(t, p)
	c := &http.Client{Timeout: 10 * time.Second}
	res, _ := call(t, c, relay.URL+"/out/bsp/a/x")
	expectStatus(t, res, http.StatusInternalServerError)
	if p.BreakerState() != "open" {
		t.Fatal("breaker not open")
	}
	if ex := p.Expiries(); len(ex) != 1 || !ex[0].At.Equal(spec.Inject[0].(BearerInject).Expires) || ex[0].Name == "" {
		t.Fatalf("Expiries() = %+v", ex)
	}

	// New secrets and paths, same breaker settings: still open.
	s2 := spec
	s2.AllowPaths = []string{"/b/*"}
	s2.TLS = ca.clientTLS(t)
	s2.Inject = []Injector{BearerInject{Token: "new"}}
	if err := p.Update(s2); err != nil {
		t.Fatal(err)
	}
	if p.BreakerState() != "open" || len(p.Expiries()) != 0 {
		t.Fatalf("after reload: breaker %s, expiries %v", p.BreakerState(), p.Expiries())
	}
	res, _ = call(t, c, relay.URL+"/out/bsp/a/x")
	if eb := decodeError(t, res, http.StatusForbidden); eb.Code != CodePathNotAllowed {
		t.Fatalf("old path after reload: %+v", eb)
	}
	// Changed breaker settings: a new, closed breaker.
	s3 := s2
	s3.Breaker.Failures = 3
	if err := p.Update(s3); err != nil {
		t.Fatal(err)
	}
	bsp.mode.Store("ok")
	if p.BreakerState() != "closed" {
		t.Fatalf("breaker %s after its settings changed", p.BreakerState())
	}
	res, _ = call(t, c, relay.URL+"/out/bsp/b/x")
	expectStatus(t, res, http.StatusOK)

	// Invalid updates are refused whole.
	bad := s3
	bad.AllowPaths = nil
	if err := p.Update(bad); err == nil {
		t.Fatal("empty allow_paths accepted")
	}
	bad = s3
	bad.Name = "other"
	if err := p.Update(bad); err == nil {
		t.Fatal("rename accepted")
	}
	res, _ = call(t, c, relay.URL+"/out/bsp/b/x")
	expectStatus(t, res, http.StatusOK)
}
