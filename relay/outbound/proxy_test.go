package outbound

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edgerelay/edgerelay/auth"
)

// seenRequest is what the fake BSP recorded of a request.
type seenRequest struct {
	Method, Path, RawPath, RawQuery, Host, Proto string
	Header                                       http.Header
	Body                                         []byte
}

// recordingBSP records every request and answers with a fixed response.
type recordingBSP struct {
	mu   sync.Mutex
	seen []seenRequest

	status int
	header http.Header
	body   []byte
	// trailer is sent after the body when set.
	trailer http.Header
}

func (b *recordingBSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.seen = append(b.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Proto,
		r.Header.Clone(), body})
	b.mu.Unlock()
	for k, vv := range b.header {
		w.Header()[k] = vv
	}
	for k := range b.trailer {
		w.Header().Add("Trailer", k)
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body)
	for k, vv := range b.trailer {
		w.Header()[k] = vv
	}
}

func (b *recordingBSP) last(t *testing.T) seenRequest {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		t.Fatal("the BSP saw no request")
	}
	return b.seen[len(b.seen)-1]
}

func TestForwardInjectsCredentialsAndPreservesTheExchange(t *testing.T) {
	ca := newTestCA(t)
	respBody := make([]byte, 300<<10)
	_, _ = rand.Read(respBody)
	bsp := &recordingBSP{
		status: http.StatusCreated,
		header: http.Header{
			"Content-Type": {"application/octet-stream"},
			"X-Bsp-Trace":  {"abc"},
			"Set-Cookie":   {"a=1", "b=2"},
			"X-Multi":      {"one", "two"},
		},
		body:    respBody,
		trailer: http.Header{"X-Checksum": {"sha-of-body"}},
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			testForward(t, ca, bsp, ca.startTLSProto(t, bsp, proto == "HTTP/2.0"), proto)
		})
	}
}

func testForward(t *testing.T, ca *testCA, bsp *recordingBSP, bspSrv *httptest.Server, proto string) {
	respBody := bsp.body

	cases := []struct {
		name   string
		inject []Injector
		want   map[string]string
	}{
		{"header", []Injector{HeaderInject{Name: "Authorization", Value: "App infobip-key"}},
			map[string]string{"Authorization": "App infobip-key"}},
		{"custom header", []Injector{&HeaderInject{Name: "X-Api-Key", Value: "k1"}},
			map[string]string{"X-Api-Key": "k1", "Authorization": ""}},
		{"basic", []Injector{BasicInject{Username: "AC123", Password: "pw:with:colons"}},
			map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("AC123:pw:with:colons"))}},
		{"bearer", []Injector{BearerInject{Token: "EAAG-meta", Expires: time.Now().Add(48 * time.Hour)}},
			map[string]string{"Authorization": "Bearer EAAG-meta"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, m := newProxy(t, Spec{
				Name:       "bsp",
				Path:       "/out/bsp/",
				BaseURL:    bspSrv.URL + "/base%20path/v1",
				AllowPaths: []string{"/whatsapp/1/message/*", "/media/**"},
				TLS:        ca.clientTLS(t),
				Inject:     tc.inject,
				// Beyond the default allow-list, by configuration.
				ForwardHeaders: []string{"x-custom"},
			})
			relay := startRelay(t, p)
			reqBody := bytes.Repeat([]byte("payload-"), 5000)
			req, _ := http.NewRequest(http.MethodPost,
				relay.URL+"/out/bsp/whatsapp/1/message/te%20xt?b=2&a=%20x&a=y", bytes.NewReader(reqBody))
			req.Header.Set("Authorization", "Bearer caller-secret")
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "per-connection")
			req.Header.Set("Proxy-Authorization", "Basic cHJveHk6cHc=")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Add("X-Custom", "a")
			req.Header.Add("X-Custom", "b")
			req.Header.Set("Content-Type", "application/json")
			res, err := noRedirectClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()

			// The request as the BSP saw it.
			s := bsp.last(t)
			if s.Proto != proto {
				t.Errorf("BSP spoke %s, want %s", s.Proto, proto)
			}
			if s.Method != http.MethodPost || s.Path != "/base path/v1/whatsapp/1/message/te xt" ||
				s.RawQuery != "b=2&a=%20x&a=y" {
				t.Errorf("BSP saw %s %q ?%q", s.Method, s.Path, s.RawQuery)
			}
			if s.Host != strings.TrimPrefix(bspSrv.URL, "https://") {
				t.Errorf("BSP saw Host %q", s.Host)
			}
			for k, v := range tc.want {
				if g := s.Header.Get(k); g != v {
					t.Errorf("BSP header %s = %q, want %q", k, g, v)
				}
			}
			for _, h := range []string{"X-Hop", "Proxy-Authorization", "Upgrade", "Connection"} {
				if v := s.Header.Get(h); v != "" {
					t.Errorf("hop-by-hop header %s reached the BSP: %q", h, v)
				}
			}
			if strings.Contains(strings.Join(s.Header.Values("Authorization"), ","), "caller-secret") {
				t.Error("the caller's Authorization reached the BSP")
			}
			if g := s.Header.Values("X-Custom"); len(g) != 2 || g[0] != "a" || g[1] != "b" {
				t.Errorf("X-Custom = %q", g)
			}
			if s.Header.Get("Content-Type") != "application/json" || !bytes.Equal(s.Body, reqBody) {
				t.Errorf("body or content type changed on the way")
			}
			if s.Header.Get("User-Agent") != "Go-http-client/1.1" {
				// The test client's User-Agent passes through unchanged.
				t.Errorf("User-Agent = %q", s.Header.Get("User-Agent"))
			}

			// The answer as the caller saw it.
			if res.StatusCode != http.StatusCreated || !bytes.Equal(got, respBody) {
				t.Fatalf("answer %d, %d bytes; want 201 and the BSP's %d bytes", res.StatusCode, len(got), len(respBody))
			}
			for k, vv := range bsp.header {
				if g := res.Header.Values(k); strings.Join(g, "|") != strings.Join(vv, "|") {
					t.Errorf("answer header %s = %q, want %q", k, g, vv)
				}
			}
			if res.Trailer.Get("X-Checksum") != "sha-of-body" {
				t.Errorf("trailer X-Checksum = %q", res.Trailer.Get("X-Checksum"))
			}
			var hist dto.Metric
			if err := m.Duration.WithLabelValues("bsp").(prometheus.Histogram).Write(&hist); err != nil ||
				hist.GetHistogram().GetSampleCount() != 1 {
				t.Errorf("upstream_request_duration_seconds samples = %d (%v)", hist.GetHistogram().GetSampleCount(), err)
			}
			if v := counterValue(t, m, "bsp", "201"); v != 1 {
				t.Errorf("upstream_requests_total{code=201} = %v", v)
			}
		})
	}
}

func TestRedirectIsReturnedNotFollowed(t *testing.T) {
	ca := newTestCA(t)
	decoy := &counting{}
	decoySrv := httptest.NewServer(decoy)
	t.Cleanup(decoySrv.Close)
	bsp := &counting{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, decoySrv.URL+"/elsewhere", http.StatusFound)
	})}
	bspSrv := ca.startTLS(t, bsp)
	p, _ := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: bspSrv.URL,
		AllowPaths: []string{"/**"}, TLS: ca.clientTLS(t)})
	relay := startRelay(t, p)
	res, err := noRedirectClient().Get(relay.URL + "/out/bsp/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != decoySrv.URL+"/elsewhere" {
		t.Fatalf("got %d Location %q, want the BSP's 302 as is", res.StatusCode, res.Header.Get("Location"))
	}
	if bsp.n.Load() != 1 || decoy.n.Load() != 0 {
		t.Fatalf("bsp saw %d, decoy saw %d requests; want 1 and 0", bsp.n.Load(), decoy.n.Load())
	}
}

func TestTLSRequiresTheTrustStore(t *testing.T) {
	ca := newTestCA(t)
	bsp := &counting{}
	bspSrv := ca.startTLS(t, bsp)
	other := newTestCA(t)
	// Trusting another CA: the handshake fails, 502, nothing delivered.
	p, _ := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: bspSrv.URL,
		AllowPaths: []string{"/**"}, TLS: other.clientTLS(t)})
	relay := startRelay(t, p)
	res, err := http.Get(relay.URL + "/out/bsp/x")
	if err != nil {
		t.Fatal(err)
	}
	if eb := decodeError(t, res, http.StatusBadGateway); eb.Code != CodeUnreachable {
		t.Fatalf("code = %q", eb.Code)
	}
	if bsp.n.Load() != 0 {
		t.Fatal("a request reached a BSP whose certificate is not trusted")
	}
	// TLS 1.0/1.1 asked for is raised to 1.2.
	cfg := ca.clientTLS(t)
	cfg.MinVersion = 0x0301
	tr := newTransport(cfg, time.Second, time.Second, 1)
	if tr.TLSClientConfig.MinVersion != 0x0303 || cfg.MinVersion != 0x0301 {
		t.Fatalf("MinVersion = %x (caller's config %x)", tr.TLSClientConfig.MinVersion, cfg.MinVersion)
	}
}

func TestCallerAuth(t *testing.T) {
	ca := newTestCA(t)
	bsp := &recordingBSP{status: 200}
	bspSrv := ca.startTLS(t, bsp)
	v, err := auth.NewHeader(auth.HeaderConfig{Name: "X-Relay-Key", Values: []string{"internal-key"}})
	if err != nil {
		t.Fatal(err)
	}
	p, m := newProxy(t, Spec{Name: "bsp", Path: "/out/bsp/", BaseURL: bspSrv.URL,
		AllowPaths: []string{"/**"}, TLS: ca.clientTLS(t),
		CallerAuth: []auth.Verifier{v}, StripHeaders: []string{"x-relay-key"},
		Inject: []Injector{HeaderInject{Name: "Authorization", Value: "App k"}}})
	relay := startRelay(t, p)

	for _, key := range []string{"", "wrong"} {
		req, _ := http.NewRequest(http.MethodGet, relay.URL+"/out/bsp/x", nil)
		if key != "" {
			req.Header.Set("X-Relay-Key", key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if eb := decodeError(t, res, http.StatusUnauthorized); eb.Code != CodeUnauthorized {
			t.Fatalf("code = %q", eb.Code)
		}
	}
	if len(bsp.seen) != 0 {
		t.Fatal("an unauthenticated call reached the BSP")
	}
	req, _ := http.NewRequest(http.MethodGet, relay.URL+"/out/bsp/x", nil)
	req.Header.Set("X-Relay-Key", "internal-key")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status = %d", res.StatusCode)
	}
	if s := bsp.last(t); s.Header.Get("X-Relay-Key") != "" || s.Header.Get("Authorization") != "App k" {
		t.Fatalf("BSP saw X-Relay-Key %q, Authorization %q", s.Header.Get("X-Relay-Key"), s.Header.Get("Authorization"))
	}
	if counterValue(t, m, "bsp", "401") != 2 {
		t.Fatal("401s not counted")
	}
}

// TestLargeBodiesStream sends a 96 MiB upload and fetches a 96 MiB download
// through the relay and checks the heap did not grow with the body.
func TestLargeBodiesStream(t *testing.T) {
	const size = 96 << 20
	ca := newTestCA(t)
	var mu sync.Mutex
	var gotSum []byte
	var gotN int64
	bsp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "video/mp4")
			_, _ = io.Copy(w, &patternReader{n: size})
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		mu.Lock()
		gotSum, gotN = h.Sum(nil), n
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	bspSrv := ca.startTLS(t, bsp)
	p, _ := newProxy(t, Spec{Name: "media", Path: "/out/media/", BaseURL: bspSrv.URL,
		AllowPaths: []string{"/media/**"}, AllowMethods: []string{"GET", "POST"},
		TLS: ca.clientTLS(t), MaxBody: 128 << 20, Timeout: 2 * time.Minute,
		Inject: []Injector{BearerInject{Token: "t"}}})
	relay := startRelay(t, p)
	// Far below the body size: a quarter of it. Under -race, sync.Pool
	// discards buffers on purpose and TotalAlloc counts each re-allocation
	// (about 40 MiB over the 96 MiB of TLS records written here), so the
	// TotalAlloc bound is half the body there; HeapInuse keeps a quarter.
	allocBound := int64(size / 4)
	if raceEnabled {
		allocBound = size / 2
	}
	want := sha256.New()
	_, _ = io.Copy(want, &patternReader{n: size})
	wantSum := want.Sum(nil)

	measure := func(f func()) (totalAlloc, heapInuse int64) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return int64(after.TotalAlloc - before.TotalAlloc), int64(after.HeapInuse) - int64(before.HeapInuse)
	}

	alloc, inuse := measure(func() {
		req, _ := http.NewRequest(http.MethodPost, relay.URL+"/out/media/media/upload", &patternReader{n: size})
		req.ContentLength = size
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("upload status %d", res.StatusCode)
		}
	})
	mu.Lock()
	if gotN != size || !bytes.Equal(gotSum, wantSum) {
		t.Fatalf("BSP received %d bytes with another hash", gotN)
	}
	mu.Unlock()
	t.Logf("upload of %d MiB: TotalAlloc +%.1f MiB, HeapInuse %+.1f MiB", size>>20,
		float64(alloc)/(1<<20), float64(inuse)/(1<<20))
	if alloc > allocBound || inuse > size/4 {
		t.Fatalf("upload grew the heap: TotalAlloc +%d, HeapInuse %+d for a %d-byte body", alloc, inuse, size)
	}

	alloc, inuse = measure(func() {
		res, err := http.Get(relay.URL + "/out/media/media/file.mp4")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, res.Body)
		res.Body.Close()
		if err != nil || n != size || !bytes.Equal(h.Sum(nil), wantSum) {
			t.Fatalf("download: %d bytes, err %v, hash match %v", n, err, bytes.Equal(h.Sum(nil), wantSum))
		}
	})
	t.Logf("download of %d MiB: TotalAlloc +%.1f MiB, HeapInuse %+.1f MiB", size>>20,
		float64(alloc)/(1<<20), float64(inuse)/(1<<20))
	if alloc > allocBound || inuse > size/4 {
		t.Fatalf("download grew the heap: TotalAlloc +%d, HeapInuse %+d for a %d-byte body", alloc, inuse, size)
	}
}
