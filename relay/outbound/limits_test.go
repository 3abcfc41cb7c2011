package outbound

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestTimeoutGives504(t *testing.T) {
	ca := newTestCA(t)
	_, url := newSwitchBSP(t, ca, "hang")
	p, m := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: url, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Timeout: 300 * time.Millisecond})
	relay := startRelay(t, p)
	start := time.Now()
	res, err := http.Get(relay.URL + "/out/bsp/x")
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if eb := decodeError(t, res, http.StatusGatewayTimeout); eb.Code != CodeTimeout || eb.Upstream != "bsp" {
		t.Fatalf("%+v", eb)
	}
	if d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("504 after %v", d)
	}
	if counterValue(t, m, "bsp", "504") != 1 {
		t.Fatal("504 not counted")
	}
}

func TestConnectionRefusedGives502(t *testing.T) {
	ca := newTestCA(t)
	p, _ := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: "https://" + closedPort(t),
		AllowPaths: []string{"/**"}, TLS: ca.clientTLS(t)})
	relay := startRelay(t, p)
	res, err := http.Get(relay.URL + "/out/bsp/x")
	if err != nil {
		t.Fatal(err)
	}
	if eb := decodeError(t, res, http.StatusBadGateway); eb.Code != CodeUnreachable {
		t.Fatalf("%+v", eb)
	}
}

func TestBodyLimit(t *testing.T) {
	ca := newTestCA(t)
	var got atomic.Int64
	bsp := &counting{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
	})}
	bspSrv := ca.startTLS(t, bsp)
	p, m := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: bspSrv.URL, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), MaxBody: 4096})
	relay := startRelay(t, p)
	post := func(body io.Reader, length int64) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, relay.URL+"/out/bsp/x", body)
		req.ContentLength = length
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Declared too large: refused before anything is sent.
	res := post(bytes.NewReader(make([]byte, 4097)), 4097)
	if eb := decodeError(t, res, http.StatusRequestEntityTooLarge); eb.Code != CodeBodyTooLarge {
		t.Fatalf("%+v", eb)
	}
	if bsp.n.Load() != 0 {
		t.Fatal("an oversized declared body reached the BSP")
	}
	// Exactly the limit passes.
	res = post(bytes.NewReader(make([]byte, 4096)), 4096)
	expectStatus(t, res, http.StatusOK)
	if got.Load() != 4096 {
		t.Fatalf("BSP got %d bytes", got.Load())
	}
	// Chunked, found too large while streaming.
	res = post(io.MultiReader(strings.NewReader(strings.Repeat("x", 10000))), -1)
	if eb := decodeError(t, res, http.StatusRequestEntityTooLarge); eb.Code != CodeBodyTooLarge {
		t.Fatalf("%+v", eb)
	}
	if got.Load() > 4096 {
		t.Fatalf("BSP got %d bytes of an oversized body", got.Load())
	}
	if counterValue(t, m, "bsp", "413") != 2 {
		t.Fatal("413 not counted")
	}
	if p.BreakerState() != "closed" {
		t.Fatal("caller errors touched the breaker")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	ca := newTestCA(t)
	release := make(chan struct{})
	var inflight atomic.Int64
	bsp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("done"))
	})
	bspSrv := ca.startTLS(t, bsp)
	p, m := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: bspSrv.URL, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Concurrency: 2})
	relay := startRelay(t, p)
	c := &http.Client{Timeout: 20 * time.Second}
	results := make(chan int, 2)
	for range 2 {
		go func() {
			res, err := c.Get(relay.URL + "/out/bsp/slow")
			if err != nil {
				results <- -1
				return
			}
			res.Body.Close()
			results <- res.StatusCode
		}()
	}
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	waitFor(t, "two requests in flight at the BSP", 10*time.Second, func() bool { return inflight.Load() == 2 })
	start := time.Now()
	res, err := c.Get(relay.URL + "/out/bsp/third")
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	eb := decodeError(t, res, http.StatusServiceUnavailable)
	if eb.Code != CodeConcurrency || eb.Upstream != "bsp" || res.Header.Get("Retry-After") == "" {
		t.Fatalf("%+v, Retry-After %q", eb, res.Header.Get("Retry-After"))
	}
	if d > time.Second {
		t.Fatalf("excess request answered after %v", d)
	}
	close(release)
	released = true
	for range 2 {
		if code := <-results; code != http.StatusOK {
			t.Fatalf("in-flight request ended with %d", code)
		}
	}
	if inflight.Load() != 2 || counterValue(t, m, "bsp", "503") != 1 {
		t.Fatalf("BSP saw %d, 503s %v", inflight.Load(), counterValue(t, m, "bsp", "503"))
	}
	// The slots are free again.
	res, err = c.Get(relay.URL + "/out/bsp/again")
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, res, http.StatusOK)
}

func TestNewRejectsBadSpecs(t *testing.T) {
	good := Spec{Name: "x", Path: "/out/x/", BaseURL: "https://bsp.example", AllowPaths: []string{"/a/*"}}
	cases := map[string]func(*Spec){
		"no name":          func(s *Spec) { s.Name = "" },
		"relative path":    func(s *Spec) { s.Path = "out/x/" },
		"unclean path":     func(s *Spec) { s.Path = "/out/../x/" },
		"no allow_paths":   func(s *Spec) { s.AllowPaths = nil },
		"bad glob":         func(s *Spec) { s.AllowPaths = []string{"/a/**/b"} },
		"ftp base":         func(s *Spec) { s.BaseURL = "ftp://bsp.example" },
		"base with query":  func(s *Spec) { s.BaseURL = "https://bsp.example/?a=1" },
		"base with user":   func(s *Spec) { s.BaseURL = "https://u:p@bsp.example" },
		"no host":          func(s *Spec) { s.BaseURL = "https:///x" },
		"connect allowed":  func(s *Spec) { s.AllowMethods = []string{"GET", "connect"} },
		"trace allowed":    func(s *Spec) { s.AllowMethods = []string{"TRACE"} },
		"negative timeout": func(s *Spec) { s.Timeout = -1 },
		"header CRLF": func(s *Spec) {
			s.Inject = []Injector{HeaderInject{Name: "X-Key", Value: "a\r\nX-Evil: 1"}}
		},
		"header bad name":  func(s *Spec) { s.Inject = []Injector{HeaderInject{Name: "X Key", Value: "a"}} },
		"header hop":       func(s *Spec) { s.Inject = []Injector{HeaderInject{Name: "Connection", Value: "a"}} },
		"empty bearer":     func(s *Spec) { s.Inject = []Injector{BearerInject{}} },
		"nil injector":     func(s *Spec) { s.Inject = []Injector{nil} },
		"basic no user":    func(s *Spec) { s.Inject = []Injector{BasicInject{Password: "p"}} },
		"oauth2 no client": func(s *Spec) { s.Inject = []Injector{OAuth2Inject{TokenURL: "https://t.example/token"}} },
		"two oauth2": func(s *Spec) {
			o := OAuth2Inject{TokenURL: "https://t.example/token", ClientID: "c"}
			s.Inject = []Injector{o, &o}
		},
	}
	for name, mut := range cases {
		s := good
		mut(&s)
		if _, err := New(s, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p, err := New(good, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := p.cur.Load().spec
	if st.Timeout != 30*time.Second || st.ConnectTimeout != 5*time.Second || st.TLSHandshakeTimeout != 10*time.Second ||
		st.MaxBody != 32<<20 || st.Concurrency != 64 || st.Breaker != (BreakerSpec{5, 30 * time.Second, 1}) ||
		st.ReplayLimit != 1<<20 {
		t.Fatalf("defaults: %+v", st)
	}
	if !p.cur.Load().methods["GET"] || !p.cur.Load().methods["POST"] || len(p.cur.Load().methods) != 2 {
		t.Fatal("default methods")
	}
	if p.Path() != "/out/x/" || p.Name() != "x" || p.BreakerState() != "closed" {
		t.Fatal("accessors")
	}
}

func TestUpstreamCutMidBody(t *testing.T) {
	ca := newTestCA(t)
	bsp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	bspSrv := ca.startTLS(t, bsp)
	p, _ := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: bspSrv.URL, AllowPaths: []string{"/**"},
		TLS: ca.clientTLS(t), Breaker: BreakerSpec{Failures: 2}})
	relay := startRelay(t, p)
	for i := 0; i < 2; i++ {
		res, err := http.Get(relay.URL + "/out/bsp/file")
		if err != nil {
			continue // cut before the buffered headers were flushed: also not a clean answer
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil {
			t.Fatalf("a cut answer read as complete (%d bytes)", n)
		}
	}
	waitFor(t, "the breaker to count both cut answers", 5*time.Second, func() bool { return p.BreakerState() == "open" })
}

func TestHostsAndMetricsRegistration(t *testing.T) {
	hosts := map[string]bool{"relay.internal": true, "10.0.0.5:8080": true}
	for h, want := range map[string]bool{"relay.internal": true, "RELAY.internal:8080": true, "10.0.0.5:8080": true,
		"10.0.0.5": false, "10.0.0.5:9090": false, "evil.example": false, "": false} {
		if hostAllowed(hosts, h) != want {
			t.Errorf("hostAllowed(%q) = %v", h, !want)
		}
	}
	reg := prometheus.NewRegistry()
	m1, m2 := NewMetrics(reg), NewMetrics(reg)
	m1.count("a", 200)
	m2.count("a", 200)
	if counterValue(t, m1, "a", "200") != 2 {
		t.Fatal("a second NewMetrics on the same registry does not share the collectors")
	}
	m1.Forget("a")
	if counterValue(t, m1, "a", "200") != 0 {
		t.Fatal("Forget kept the series")
	}
	var nilM *Metrics
	nilM.count("a", 200) // no metrics: no panic
}
