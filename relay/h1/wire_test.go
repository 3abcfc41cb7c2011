package h1

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// wireRequests are built like the relay's deliveries: event headers with
// several values, X-Relay-* fields, a signature, a path sent as written.
func wireRequests(base string) []*http.Request {
	mk := func(method, target, body string, h http.Header) *http.Request {
		req, err := http.NewRequest(method, base+target, strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		if body == "" {
			req.Body = http.NoBody
		}
		for k, v := range h {
			req.Header[k] = v
		}
		return req
	}
	event := strings.Repeat(`{"id":"evt_1","type":"invoice.paid","data":{"amount":1234}}`, 20)
	reqs := []*http.Request{
		mk("POST", "/events", event, http.Header{
			"Content-Type":        {"application/json"},
			"X-Relay-Event-Id":    {"01J8ZQ4Y3V6N7"},
			"X-Relay-Channel":     {"stripe"},
			"X-Relay-Attempt":     {"3"},
			"X-Relay-Received-At": {"2026-12-02T10:58:08.123456789Z"},
			"Webhook-Signature":   {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
			"Accept":              {"text/plain", "application/json"},
			"X-Trim":              {"  padded value\t"},
			"User-Agent":          {"Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
		}),
		mk("PUT", "/a/b?x=1&y=%20", "", http.Header{"X-Empty": {""}}),
		mk("GET", "/", "", http.Header{"User-Agent": {""}}),
		mk("DELETE", "/items/7", "", nil),
		mk("PATCH", "/p", "{}", http.Header{"Authorization": {"Bearer abc"}, "Host": {"ignored.example"}}),
	}
	// A path sent exactly as the provider wrote it.
	raw := mk("POST", "/", "x", nil)
	raw.URL = &url.URL{Scheme: "http", Host: raw.URL.Host, Opaque: "/hooks/a%2Fb;v=1"}
	reqs = append(reqs, raw)
	host := mk("POST", "/", "y", nil)
	host.Host = "backend.internal:8443"
	reqs = append(reqs, host)
	closing := mk("POST", "/c", "z", nil)
	closing.Close = true
	reqs = append(reqs, closing)
	return reqs
}

// TestWireBytesMatchNetHTTP: every request goes out byte for byte as
// net/http's Transport writes it.
func TestWireBytesMatchNetHTTP(t *testing.T) {
	s, captured := captureServer(t)
	std := &http.Transport{DisableCompression: true}
	defer std.CloseIdleConnections()
	lean := &Transport{}
	defer lean.CloseIdleConnections()
	for i := range wireRequests(s.URL()) {
		for _, tr := range []http.RoundTripper{std, lean} {
			resp, err := tr.RoundTrip(wireRequests(s.URL())[i])
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		got := captured()
		if len(got) != 2*(i+1) {
			t.Fatalf("request %d: server read %d requests", i, len(got))
		}
		want, have := got[2*i], got[2*i+1]
		if !bytes.Equal(want, have) {
			t.Fatalf("request %d differs from net/http's:\nnet/http:\n%s\nh1:\n%s", i, want, have)
		}
	}
}

// TestServerSeesSameRequest: a net/http server sees the same method,
// target, Host, headers and body from both transports.
func TestServerSeesSameRequest(t *testing.T) {
	type seen struct {
		Method, RequestURI, Host string
		Header                   http.Header
		Body                     []byte
		ContentLength            int64
	}
	var mu sync.Mutex
	var got []seen
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Host, r.Header, b, r.ContentLength})
		mu.Unlock()
	})
	std := &http.Transport{DisableCompression: true}
	defer std.CloseIdleConnections()
	lean := &Transport{}
	defer lean.CloseIdleConnections()
	n := len(wireRequests(s.URL))
	for i := 0; i < n; i++ {
		for _, tr := range []http.RoundTripper{std, lean} {
			resp, err := tr.RoundTrip(wireRequests(s.URL)[i])
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	for i := 0; i < n; i++ {
		if !reflect.DeepEqual(got[2*i], got[2*i+1]) {
			t.Fatalf("request %d seen differently:\nnet/http: %+v\nh1:       %+v", i, got[2*i], got[2*i+1])
		}
	}
	if !bytes.Contains(got[0].Body, []byte("invoice.paid")) || got[0].Header.Get("X-Trim") != "padded value" {
		t.Fatalf("first request not as built: %+v", got[0])
	}
}
