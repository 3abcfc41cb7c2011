package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustDest(t *testing.T, raw string) Dest {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DestOf(u)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sortedFields lists h as Send takes it: names sorted, values in order.
func sortedFields(h http.Header) []Field {
	var fs []Field
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			fs = append(fs, Field{k, v})
		}
	}
	return fs
}

// sendAndRoundTrip sends the same POST once through RoundTrip and once
// through Send and returns the two requests as the server read them.
func sendAndRoundTrip(t *testing.T, h http.Header) (viaRoundTrip, viaSend []byte) {
	t.Helper()
	s, got := captureServer(t)
	target := s.URL() + "/p?q=1"
	body := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header = h.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	r := &Request{Method: http.MethodPost, Dest: mustDest(t, target), Fields: sortedFields(h), Body: body}
	if rep, err := tr.Send(r, nil); err != nil || rep.Status != 200 {
		t.Fatalf("Send: %+v, %v", rep, err)
	}
	g := got()
	if len(g) != 2 {
		t.Fatalf("server read %d requests, want 2", len(g))
	}
	return g[0], g[1]
}

var parityHeader = http.Header{
	"Accept":           {"text/plain", "application/json"},
	"Content-Type":     {"application/json"},
	"X-Relay-Event-Id": {"evt_1"},
	"X-Trim":           {"  padded value\t"},
}

// TestSendWireMatchesRoundTrip: Send writes the bytes RoundTrip writes
// (and so net/http, see wire_test.go), Go's default User-Agent included.
func TestSendWireMatchesRoundTrip(t *testing.T) {
	rt, sd := sendAndRoundTrip(t, parityHeader)
	if !bytes.Equal(rt, sd) {
		t.Fatalf("Send differs from RoundTrip:\nRoundTrip:\n%s\nSend:\n%s", rt, sd)
	}
	if !bytes.Contains(sd, []byte("\r\nUser-Agent: Go-http-client/1.1\r\n")) ||
		!bytes.Contains(sd, []byte("\r\nX-Trim: padded value\r\n")) {
		t.Fatalf("request not as expected:\n%s", sd)
	}
}

// TestSendUserAgentFieldWireMatchesRoundTrip: a User-Agent field goes
// where RoundTrip and net/http put it, right after Host.
func TestSendUserAgentFieldWireMatchesRoundTrip(t *testing.T) {
	for _, ua := range []string{"Relay/1.0", ""} { // "": no User-Agent line at all
		h := parityHeader.Clone()
		h["User-Agent"] = []string{ua}
		if rt, sd := sendAndRoundTrip(t, h); !bytes.Equal(rt, sd) {
			t.Errorf("User-Agent %q: Send differs from RoundTrip:\nRoundTrip:\n%s\nSend:\n%s", ua, rt[:bytes.Index(rt, []byte("\r\n\r\n"))], sd[:bytes.Index(sd, []byte("\r\n\r\n"))])
		}
	}
}

// TestSendFields: a User-Agent field replaces the default; Host,
// Content-Length, Transfer-Encoding and Trailer fields are left out; an
// invalid name or value fails Send before anything is written.
func TestSendFields(t *testing.T) {
	s, got := captureServer(t)
	dest := mustDest(t, s.URL()+"/f")
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	send := func(fs ...Field) error {
		_, err := tr.Send(&Request{Method: "POST", Dest: dest, Fields: fs, Body: []byte("body")}, nil)
		return err
	}
	if err := send(Field{"User-Agent", "Relay/1.0"}); err != nil {
		t.Fatal(err)
	}
	if err := send(Field{"Content-Length", "99"}, Field{"Host", "evil.example"},
		Field{"Trailer", "X-Sum"}, Field{"Transfer-Encoding", "chunked"}, Field{"X-A", "1"}); err != nil {
		t.Fatal(err)
	}
	if err := send(Field{"X-A", "1"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]Field{{{"Bad Name", "v"}}, {{"X-A", "1"}, {"X-Bad", "a\nb"}}} {
		if err := send(bad...); err == nil {
			t.Fatalf("no error for %q", bad)
		}
	}
	g := got()
	if len(g) != 3 {
		t.Fatalf("server read %d requests, want 3: the invalid ones must not be written", len(g))
	}
	if ua := string(g[0]); strings.Count(ua, "User-Agent:") != 1 || !strings.Contains(ua, "\r\nUser-Agent: Relay/1.0\r\n") {
		t.Fatalf("with a User-Agent field:\n%s", ua)
	}
	if !bytes.Equal(g[1], g[2]) {
		t.Fatalf("Host/Content-Length/Trailer/Transfer-Encoding fields were written:\n%s\nwant:\n%s", g[1], g[2])
	}
}

// TestSendEncodeFields: the request line and the fields Send adds itself.
func TestSendEncodeFields(t *testing.T) {
	d := Dest{Addr: "h:80", Host: "h", Target: "/t"}
	for _, c := range []struct {
		r    Request
		want string
	}{
		{Request{Dest: d}, "GET /t HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"},
		{Request{Method: "POST", Dest: d}, "POST /t HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\r\n"},
		{Request{Method: "DELETE", Dest: d, Body: []byte("xy"), Fields: []Field{{"X-B", " 2 "}, {"X-A", "1"}}},
			"DELETE /t HTTP/1.1\r\nHost: h\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 2\r\nX-B: 2\r\nX-A: 1\r\n\r\nxy"},
	} {
		e := &encoder{}
		b, _, err := e.encodeFields(&c.r)
		if err != nil || string(b) != c.want {
			t.Fatalf("%+v: %q, %v; want %q", c.r, b, err, c.want)
		}
	}
	if _, _, err := (&encoder{}).encodeFields(&Request{Method: "BAD METHOD", Dest: d}); err == nil {
		t.Fatal("no error for an invalid method")
	}
}

// TestSendReply: status, Retry-After and the snippet are kept, the rest of
// the body is read, and the connection is reused after a Content-Length,
// a chunked and an empty answer.
func TestSendReply(t *testing.T) {
	long := bytes.Repeat([]byte("abcdefghij"), 100) // 1000 bytes
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/503":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(long)
		case "/chunked":
			io.WriteString(w, "part1;")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2;")
			w.(http.Flusher).Flush()
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for _, c := range []struct {
		path, retry, snippet string
		status               int
	}{
		{"/503", "7", string(long[:256]), 503},
		{"/chunked", "", "part1;part2;", 200},
		{"/204", "", "", 204},
	} {
		for i := 0; i < 2; i++ {
			r := &Request{Method: "POST", Dest: mustDest(t, s.URL+c.path), Body: []byte("event")}
			rep, err := tr.Send(r, make([]byte, 256))
			if err != nil {
				t.Fatalf("%s: %v", c.path, err)
			}
			if rep.Status != c.status || rep.RetryAfter != c.retry || string(rep.Snippet) != c.snippet {
				t.Fatalf("%s: reply %d %q %q, want %d %q %q", c.path, rep.Status, rep.RetryAfter, rep.Snippet, c.status, c.retry, c.snippet)
			}
			if n := s.opened.Load(); n != 1 {
				t.Fatalf("%s, send %d: %d connections, want 1 reused", c.path, i, n)
			}
		}
	}
}

// TestSendLongBodyClosesConnection: a body of exactly the snippet plus
// discardLimit is read and the connection reused; one byte more and the
// status still stands but the connection is not reused.
func TestSendLongBodyClosesConnection(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := 256 + discardLimit
		if r.URL.Path == "/long" {
			n += 1 << 10
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(make([]byte, n))
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i, c := range []struct {
		path   string
		opened int64
	}{{"/exact", 1}, {"/exact", 1}, {"/long", 1}, {"/exact", 2}} {
		rep, err := tr.Send(&Request{Method: "POST", Dest: mustDest(t, s.URL+c.path)}, make([]byte, 256))
		if err != nil || rep.Status != 200 || len(rep.Snippet) != 256 {
			t.Fatalf("send %d (%s): %d, %d bytes, %v", i, c.path, rep.Status, len(rep.Snippet), err)
		}
		if n := s.opened.Load(); n != c.opened {
			t.Fatalf("send %d (%s): %d connections, want %d", i, c.path, n, c.opened)
		}
	}
}

// TestSendDeadline: a backend that never answers fails Send with the
// deadline's error soon after it; a deadline already past dials nothing.
func TestSendDeadline(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		readRequest(br)
		readRequest(br) // until the client hangs up
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	dest := mustDest(t, s.URL())
	start := time.Now()
	_, err := tr.Send(&Request{Method: "POST", Dest: dest, Deadline: start.Add(200 * time.Millisecond)}, nil)
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("err %v after %s, want the deadline's error after about 200ms", err, d)
	}
	_, err = tr.Send(&Request{Method: "POST", Dest: dest, Deadline: time.Now().Add(-time.Second)}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v for a past deadline", err)
	}
	if n := s.accept.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: nothing dialed for a past deadline", n)
	}
}

// TestSendIdleCloseRetried: a pooled connection the backend closed after
// its answer fails the next Send before any byte; it is sent again on a
// new connection, and the backend gets each request once.
func TestSendIdleCloseRetried(t *testing.T) {
	var requests atomic.Int64
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if readRequest(br) != nil {
			requests.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	r := &Request{Method: "POST", Dest: mustDest(t, s.URL()), Body: []byte("x")}
	for i := 0; i < 2; i++ {
		if rep, err := tr.Send(r, nil); err != nil || rep.Status != 200 {
			t.Fatalf("send %d: %+v, %v", i, rep, err)
		}
		time.Sleep(50 * time.Millisecond) // the close reaches the client
	}
	if a, n := s.accept.Load(), requests.Load(); a != 2 || n != 2 {
		t.Fatalf("%d connections, %d requests; want 2 and 2", a, n)
	}
}

// TestSendNoRetryOnFreshConnection: a new connection closed without an
// answer fails Send; nothing is sent again.
func TestSendNoRetryOnFreshConnection(t *testing.T) {
	var requests atomic.Int64
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if readRequest(br) != nil {
			requests.Add(1) // read, never answered
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	if _, err := tr.Send(&Request{Method: "POST", Dest: mustDest(t, s.URL())}, nil); err == nil {
		t.Fatal("no error from a backend closing without an answer")
	}
	if a, n := s.accept.Load(), requests.Load(); a != 1 || n != 1 {
		t.Fatalf("%d connections, %d requests; want 1 and 1", a, n)
	}
}

// TestDestOf: address, Host and target as net/http derives them; what
// Send does not handle is refused.
func TestDestOf(t *testing.T) {
	for raw, want := range map[string]Dest{
		"http://127.0.0.1:8080/a/b?x=y": {"127.0.0.1:8080", "127.0.0.1:8080", "/a/b?x=y"},
		"http://example.com":            {"example.com:80", "example.com", "/"},
		"http://[fe80::1%25eth0]:80/":   {"[fe80::1%eth0]:80", "[fe80::1]:80", "/"},
		"http://bücher.example/x":       {"bücher.example:80", "xn--bcher-kva.example", "/x"},
	} {
		if got := mustDest(t, raw); got != want {
			t.Errorf("DestOf(%s) = %+v, want %+v", raw, got, want)
		}
	}
	for _, raw := range []string{"http://user:pw@example.com/", "https://example.com/", "http:///nohost"} {
		u, _ := url.Parse(raw)
		if d, err := DestOf(u); err == nil {
			t.Errorf("DestOf(%s) = %+v, want an error", raw, d)
		}
	}
}
