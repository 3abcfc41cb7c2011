package relay

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/h1"
)

// leanSeen is what the backend received of one request.
type leanSeen struct {
	Method, URI, Host string
	Header            http.Header
	Body              []byte
}

// leanBackendServer is a backend on 127.0.0.1 that records every request
// and answers status (with Retry-After and body when set).
type leanBackendServer struct {
	mu                     sync.Mutex
	seen                   []leanSeen
	status                 int
	retryAfter, answerBody string
	srv                    *httptest.Server
}

func newLeanBackendServer(t *testing.T, status int, retryAfter, answerBody string) *leanBackendServer {
	b := &leanBackendServer{status: status, retryAfter: retryAfter, answerBody: answerBody}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("backend reading the body: %v", err)
		}
		b.mu.Lock()
		b.seen = append(b.seen, leanSeen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), body})
		b.mu.Unlock()
		if b.retryAfter != "" {
			w.Header().Set("Retry-After", b.retryAfter)
		}
		w.WriteHeader(b.status)
		io.WriteString(w, b.answerBody)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// leanOutcome is what send returned.
type leanOutcome struct {
	res        attemptResult
	status     int
	retryAfter time.Duration
	errText    string
}

// leanDeliverer is a deliverer whose Server knows the prefix channel
// "orders" (/in/*), all that send needs of it (channelRest).
func leanDeliverer() *deliverer {
	s := &Server{}
	s.state.Store(&state{byName: map[string]*ChannelConfig{"orders": {Name: "orders", Path: "/in/*"}}})
	return &deliverer{s: s, name: "b"}
}

func leanLease() *queue.Lease {
	return &queue.Lease{Backend: "b", Attempt: 2, Event: &queue.Event{
		ID:         "0000000000000007AbCdEfGhIjKlMnOp",
		Channel:    "orders",
		Provider:   "github",
		ReceivedAt: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600)),
		Method:     "POST",
		Path:       "/in/a/b%2Fc?x=1&y=%20z",
		Header: map[string][]string{
			"X-Hub-Signature-256": {"sha256=0123abcd"},
			"Content-Type":        {"application/json"},
			"User-Agent":          {"GitHub-Hookshot/044aadd"},
			"Authorization":       {"Bearer from-the-bsp"},
			"X-Tenant":            {"from-the-event"},
			"X-Relay-Attempt":     {"99"},
			"X-Multi":             {"one", "two"},
		},
		Body: bytes.Repeat([]byte(`{"k":"0123456789abcdef"}`), 43)[:1024],
	}}
}

// sendThreeWays sends l to b on the lean path, on the net/http path
// (rt.lean nil: exchangeHTTP, client.Do over h1's RoundTrip) and on plain
// net/http (the same request over h1's net/http fallback transport).
func sendThreeWays(t *testing.T, b *BackendConfig, l *queue.Lease) (outs [3]leanOutcome, rts [3]*backendRuntime) {
	t.Helper()
	d := leanDeliverer()
	for i := range outs {
		rt, err := newBackendRuntime(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rt.lean == nil {
			t.Fatalf("%s: no lean path", b.URL)
		}
		switch i {
		case 1:
			rt.lean = nil
		case 2:
			rt.lean = nil
			rt.client.Transport = rt.client.Transport.(*h1.Transport).Fallback
		}
		var o leanOutcome
		o.res, o.status, o.retryAfter, o.errText = d.send(rt, l)
		outs[i], rts[i] = o, rt
	}
	return outs, rts
}

var leanWays = [3]string{"lean", "net/http path", "plain net/http"}

func TestLeanSendsWhatNetHTTPSends(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	srv := newLeanBackendServer(t, http.StatusOK, "", "ok")
	base := srv.srv.URL
	port := base[len("http://127.0.0.1:"):]
	ev := leanLease().Event
	for _, c := range []struct {
		name string
		b    BackendConfig
		uri  string            // request-target expected
		want map[string]string // fields expected with one value; "" = absent
	}{
		{"plain", BackendConfig{URL: base + "/deliver?k=v"}, "/deliver?k=v", map[string]string{
			"Authorization": "", "X-Relay-Attempt": "2", "X-Tenant": "from-the-event",
			"X-Relay-Event-Id": ev.ID, "X-Relay-Channel": "orders", "X-Relay-Provider": "github",
			"X-Relay-Received-At": "2024-05-06T06:08:09.123456789Z", "Webhook-Id": "",
			"User-Agent": "GitHub-Hookshot/044aadd", "Content-Type": "application/json",
			"X-Hub-Signature-256": "sha256=0123abcd", "Content-Length": "1024",
		}},
		{"pass_authorization", BackendConfig{URL: base + "/deliver", PassAuthorization: true}, "/deliver",
			map[string]string{"Authorization": "Bearer from-the-bsp"}},
		{"static headers", BackendConfig{URL: base + "/deliver", Headers: map[string]string{
			"x-tenant": "static-tenant", "X-Relay-Attempt": "static-attempt", "X-Static": "s"}}, "/deliver",
			map[string]string{"X-Tenant": "static-tenant", "X-Relay-Attempt": "static-attempt", "X-Static": "s"}},
		{"sign_secret", BackendConfig{URL: base + "/deliver", SignSecret: secret}, "/deliver",
			map[string]string{"Webhook-Id": ev.ID}},
		{"inject over static", BackendConfig{URL: base + "/deliver", PassAuthorization: true, SignSecret: secret,
			Headers: map[string]string{"X-Tenant": "static-tenant", "X-Api-Key": "static-key"},
			Inject: []InjectConfig{
				{Type: "header", Name: "x-api-key", Value: "injected-key"},
				{Type: "basic", Username: "relay", Password: "pw"},
			}}, "/deliver",
			map[string]string{"X-Api-Key": "injected-key", "Authorization": "Basic cmVsYXk6cHc=", "X-Tenant": "static-tenant"}},
		{"templated url", BackendConfig{URL: "http://127.0.0.1:" + port + "/hooks{path}{query}"}, "/hooks/a/b%2Fc?x=1&y=%20z",
			map[string]string{"X-Relay-Channel": "orders"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.b
			b.Name, b.Timeout, b.Concurrency = "b", 5*time.Second, 2
			l := leanLease()
			outs, rts := sendThreeWays(t, &b, l)
			var seen [3]leanSeen
			for i := range outs {
				if want := (leanOutcome{res: delivered, status: 200}); outs[i] != want {
					t.Errorf("%s: outcome %+v, want %+v", leanWays[i], outs[i], want)
				}
			}
			// One request per way, in turn: the backend saw three, in order.
			srv.mu.Lock()
			all := srv.seen
			srv.seen = nil
			srv.mu.Unlock()
			if len(all) != 3 {
				t.Fatalf("backend received %d requests, want 3", len(all))
			}
			copy(seen[:], all)
			for i, s := range seen {
				if s.Method != "POST" || s.URI != c.uri || s.Host != base[len("http://"):] || !bytes.Equal(s.Body, l.Event.Body) {
					t.Errorf("%s: %s %s Host %q, body of %d bytes (same: %v); want POST %s Host %q",
						leanWays[i], s.Method, s.URI, s.Host, len(s.Body), bytes.Equal(s.Body, l.Event.Body), c.uri, base[len("http://"):])
				}
				for k, v := range c.want {
					if got := s.Header.Get(k); got != v || v != "" && len(s.Header[k]) != 1 {
						t.Errorf("%s: %s = %q, want %q", leanWays[i], k, s.Header[k], v)
					}
				}
				if got := s.Header["X-Multi"]; !reflect.DeepEqual(got, []string{"one", "two"}) {
					t.Errorf("%s: X-Multi = %q", leanWays[i], got)
				}
				if b.SignSecret != "" {
					// The timestamp is each attempt's own: the signature must
					// be the one of that timestamp.
					ts, err := strconv.ParseInt(s.Header.Get("Webhook-Timestamp"), 10, 64)
					if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
						t.Errorf("%s: Webhook-Timestamp %q", leanWays[i], s.Header.Get("Webhook-Timestamp"))
					}
					if got, want := s.Header.Get("Webhook-Signature"), rts[i].signer.Sign(l.Event.ID, time.Unix(ts, 0), l.Event.Body); got != want {
						t.Errorf("%s: Webhook-Signature %q, want %q", leanWays[i], got, want)
					}
					s.Header.Del("Webhook-Timestamp")
					s.Header.Del("Webhook-Signature")
				}
			}
			for i := 1; i < len(seen); i++ {
				if !reflect.DeepEqual(seen[0].Header, seen[i].Header) {
					t.Errorf("headers differ:\n%s: %v\n%s: %v", leanWays[0], seen[0].Header, leanWays[i], seen[i].Header)
				}
			}
		})
	}
}

// TestLeanOutcomes: the lean path classifies an answer as the net/http
// path does.
func TestLeanOutcomes(t *testing.T) {
	for _, c := range []struct {
		status     int
		retryAfter string
		body       string
		want       leanOutcome
	}{
		{503, "3", "busy", leanOutcome{retryable, 503, 3 * time.Second, `backend answered 503 "busy"`}},
		{200, "", "ok", leanOutcome{delivered, 200, 0, ""}},
		{404, "", "  no such hook \n", leanOutcome{permanent, 404, 0, `backend answered 404 "no such hook"`}},
	} {
		srv := newLeanBackendServer(t, c.status, c.retryAfter, c.body)
		b := &BackendConfig{Name: "b", URL: srv.srv.URL + "/deliver", Timeout: 5 * time.Second, Concurrency: 2}
		outs, _ := sendThreeWays(t, b, leanLease())
		for i, o := range outs {
			if o != c.want {
				t.Errorf("%d: %s: %+v, want %+v", c.status, leanWays[i], o, c.want)
			}
		}
	}
}
