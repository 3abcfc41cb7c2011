package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKeepAliveOneConnection(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d bytes", len(b))
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 200; i++ {
		resp, err := post(t, tr, s.URL+"/events", strings.Repeat("x", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, want := readAll(t, resp), fmt.Sprintf("got %d bytes", i); got != want {
			t.Fatalf("request %d: body %q, want %q", i, got, want)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("200 sequential requests used %d TCP connections, want 1", n)
	}
}

func TestConcurrentRequestsBoundedConnections(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})
	tr := &Transport{MaxIdlePerHost: 8}
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("event"))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					errs <- fmt.Errorf("body %q", b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := s.opened.Load(); n > 4 {
		t.Fatalf("4 concurrent senders opened %d connections, want at most 4", n)
	}
}

func TestChunkedBody(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 5; i++ {
			fmt.Fprintf(w, "part %d;", i)
			w.(http.Flusher).Flush() // each write its own chunk
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp := mustPost(t, tr, s.URL, "x")
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.ContentLength != -1 {
			t.Fatalf("TransferEncoding %q, ContentLength %d: not read as chunked", resp.TransferEncoding, resp.ContentLength)
		}
		if got := readAll(t, resp); got != "part 0;part 1;part 2;part 3;part 4;" {
			t.Fatalf("body %q", got)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("chunked responses read to the end left %d connections, want 1 reused", n)
	}
}

func TestChunkedWithExtensionsAndTrailer(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Checksum: 1\r\n\r\n")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 2; i++ {
		resp := mustPost(t, tr, s.URL(), "x")
		if got := readAll(t, resp); got != "hello world" {
			t.Fatalf("body %q", got)
		}
	}
	if n := s.accept.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestCloseDelimitedBody(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		if readRequest(br) != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 2; i++ {
		resp := mustPost(t, tr, s.URL(), "x")
		if !resp.Close || resp.ContentLength != -1 {
			t.Fatalf("Close %v, ContentLength %d for a body delimited by the close", resp.Close, resp.ContentLength)
		}
		if got := readAll(t, resp); got != "until the end" {
			t.Fatalf("body %q", got)
		}
	}
	if n := s.accept.Load(); n != 2 {
		t.Fatalf("%d connections for 2 close-delimited responses, want 2", n)
	}
}

func TestConnectionCloseHonoured(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("bye"))
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp := mustPost(t, tr, s.URL, "x")
		if !resp.Close {
			t.Fatal("resp.Close false with Connection: close")
		}
		if got := readAll(t, resp); got != "bye" {
			t.Fatalf("body %q", got)
		}
	}
	if n := s.opened.Load(); n != 3 {
		t.Fatalf("%d connections for 3 responses with Connection: close, want 3", n)
	}
	if n := len(tr.idle[strings.TrimPrefix(s.URL, "http://")]); n != 0 {
		t.Fatalf("%d connections pooled after Connection: close", n)
	}
}

func TestInformationalResponsesSkipped(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"+
				"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 2; i++ {
		resp := mustPost(t, tr, s.URL(), "x")
		if resp.StatusCode != 201 || resp.Status != "201 Created" || resp.Header.Get("Link") != "" {
			t.Fatalf("status %q, Link %q: the 1xx responses were not skipped", resp.Status, resp.Header.Get("Link"))
		}
		if got := readAll(t, resp); got != "done" {
			t.Fatalf("body %q", got)
		}
	}
	if n := s.accept.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestNoBodyResponses(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "1234")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for _, c := range []struct{ method, path string }{{"HEAD", "/head"}, {"POST", "/204"}, {"GET", "/304"}, {"HEAD", "/head"}} {
		req, _ := http.NewRequest(c.method, s.URL+c.path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		if c.method == "HEAD" && resp.ContentLength != 1234 {
			t.Fatalf("HEAD: ContentLength %d, want the header's 1234", resp.ContentLength)
		}
		if got := readAll(t, resp); got != "" {
			t.Fatalf("%s %s: body %q", c.method, c.path, got)
		}
	}
	if n := s.opened.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: a body-less response must leave the connection reusable", n)
	}
}

func TestUnreadBodyClosesConnection(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("y", 10000)))
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	resp := mustPost(t, tr, s.URL, "x")
	buf := make([]byte, 10)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	resp = mustPost(t, tr, s.URL, "x")
	if got := readAll(t, resp); len(got) != 10000 {
		t.Fatalf("body of %d bytes", len(got))
	}
	resp = mustPost(t, tr, s.URL, "x")
	readAll(t, resp)
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: one dropped with its body unread, one reused after a full read", n)
	}
}

// TestIdleCloseRetriedOnce: the backend closes a kept-alive connection
// after its answer; the next request, sent on that pooled connection,
// fails before any response byte and is sent again on a new one.
func TestIdleCloseRetriedOnce(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		raw := readRequest(br)
		if raw == nil {
			return
		}
		mu.Lock()
		bodies = append(bodies, string(raw[len(raw)-7:]))
		mu.Unlock()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// Closed without Connection: close, as an idle timeout does.
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 5; i++ {
		resp, err := post(t, tr, s.URL(), fmt.Sprintf("event-%d", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		readAll(t, resp)
		// Let the close reach the client before the next request.
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"event-0", "event-1", "event-2", "event-3", "event-4"}; fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Fatalf("backend received %q, want %q (each exactly once)", bodies, want)
	}
	if n := s.accept.Load(); n != 5 {
		t.Fatalf("%d connections, want 5", n)
	}
}

// TestNoRetryOnFreshConnection: a new connection that fails is not retried.
func TestNoRetryOnFreshConnection(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		readRequest(br) // read, never answered
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	if _, err := post(t, tr, s.URL(), "x"); err == nil {
		t.Fatal("no error from a backend closing without an answer")
	}
	if n := s.accept.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: nothing retried on a fresh connection", n)
	}
}

// TestNoRetryAfterResponseBytes: a pooled connection that fails after the
// first byte of a response is not retried.
func TestNoRetryAfterResponseBytes(t *testing.T) {
	s := newRawServer(t, func(n int64, c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 200 O") // cut short
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	resp := mustPost(t, tr, s.URL(), "x")
	readAll(t, resp)
	if _, err := post(t, tr, s.URL(), "x"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v, want an unexpected EOF", err)
	}
	if n := s.accept.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: nothing retried after part of a response", n)
	}
}

func TestTimeoutHonoured(t *testing.T) {
	release := make(chan struct{})
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "10")
			w.Write([]byte("12345"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := &Transport{}
	defer tr.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/head", strings.NewReader("x"))
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the 200ms deadline returned after %s", d)
	}

	// Cancellation while the body is read.
	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, http.MethodPost, s.URL+"/body", strings.NewReader("x"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel2)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "12345" || !errors.Is(err, context.Canceled) {
		t.Fatalf("read %q, err %v; want 12345 then the context's cancellation", b, err)
	}
	if n := len(tr.idle[strings.TrimPrefix(s.URL, "http://")]); n != 0 {
		t.Fatalf("%d connections pooled after a cancelled exchange", n)
	}
}

func TestDialTimeoutAndRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := &Transport{}
	if _, err := post(t, tr, "http://"+addr, "x"); err == nil {
		t.Fatal("no error from a dead port")
	}
}

func TestOversizedHeaderRefused(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		readRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		for i := 0; i < 100; i++ {
			fmt.Fprintf(c, "X-Filler-%d: %s\r\n", i, strings.Repeat("f", 1000))
		}
		io.WriteString(c, "Content-Length: 0\r\n\r\n")
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	_, err := post(t, tr, s.URL(), "x")
	if !errors.Is(err, ErrHeaderTooLarge) || !strings.Contains(err.Error(), "65536") {
		t.Fatalf("err %v, want ErrHeaderTooLarge naming the 65536-byte bound", err)
	}

	// One header line longer than the read buffer, within the bound, is fine.
	s2 := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		readRequest(br)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Long: %s\r\nContent-Length: 2\r\n\r\nok", strings.Repeat("l", 20000))
	})
	resp := mustPost(t, tr, s2.URL(), "x")
	if len(resp.Header.Get("X-Long")) != 20000 || readAll(t, resp) != "ok" {
		t.Fatal("a 20 KB header line was not read whole")
	}
}

func TestMalformedResponsesRefused(t *testing.T) {
	for name, raw := range map[string]string{
		"status line":         "HTTP/1.1 2OO OK\r\n\r\n",
		"not http":            "SSH-2.0-OpenSSH\r\n\r\n",
		"conflicting lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"negative length":     "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
		"transfer coding":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
		"folded header":       "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
		"space before colon":  "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
		"101":                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
				readRequest(br)
				io.WriteString(c, raw)
			})
			tr := &Transport{}
			if resp, err := post(t, tr, s.URL(), "x"); err == nil {
				resp.Body.Close()
				t.Fatalf("%q accepted", raw)
			}
		})
	}
}

func TestCloseIdleConnections(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	fb := &countingFallback{}
	tr := &Transport{Fallback: fb}
	resp := mustPost(t, tr, s.URL, "x")
	readAll(t, resp)
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for s.closed.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.closed.Load(); n != 1 {
		t.Fatalf("server saw %d connections closed after CloseIdleConnections, want 1", n)
	}
	if fb.closeIdle != 1 {
		t.Fatal("CloseIdleConnections not passed on to the fallback")
	}
}

func TestIdleTimeout(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	tr := &Transport{IdleTimeout: 50 * time.Millisecond}
	resp := mustPost(t, tr, s.URL, "x")
	readAll(t, resp)
	deadline := time.Now().Add(5 * time.Second)
	for s.closed.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.closed.Load(); n != 1 {
		t.Fatalf("an idle connection past IdleTimeout was not closed")
	}
	resp = mustPost(t, tr, s.URL, "x")
	readAll(t, resp)
	if n := s.opened.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestMaxIdlePerHost(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	tr := &Transport{MaxIdlePerHost: 2}
	defer tr.CloseIdleConnections()
	var resps []*http.Response
	for i := 0; i < 5; i++ { // five exchanges open at once: five connections
		resp := mustPost(t, tr, s.URL, "x")
		resps = append(resps, resp)
	}
	for _, r := range resps {
		readAll(t, r)
	}
	if n := len(tr.idle[strings.TrimPrefix(s.URL, "http://")]); n != 2 {
		t.Fatalf("%d idle connections kept, want MaxIdlePerHost 2", n)
	}
}

type countingFallback struct {
	calls, closeIdle int
}

func (f *countingFallback) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls++
	return &http.Response{StatusCode: 299, Body: http.NoBody, Request: req}, nil
}

func (f *countingFallback) CloseIdleConnections() { f.closeIdle++ }

func TestFallback(t *testing.T) {
	fb := &countingFallback{}
	tr := &Transport{Fallback: fb}
	unknown := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", io.NopCloser(strings.NewReader("x")))
		req.ContentLength = -1
		return req
	}
	withTE := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", strings.NewReader("x"))
		req.TransferEncoding = []string{"chunked"}
		return req
	}
	upgrade := func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
		req.Header.Set("Upgrade", "websocket")
		return req
	}
	https := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1:1/", strings.NewReader("x"))
		return req
	}
	for i, mk := range []func() *http.Request{unknown, withTE, upgrade, https} {
		resp, err := tr.RoundTrip(mk())
		if err != nil || resp.StatusCode != 299 {
			t.Fatalf("case %d: not handed to the fallback (%v)", i, err)
		}
		if _, err := (&Transport{}).RoundTrip(mk()); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("case %d without a fallback: err %v, want ErrUnsupported", i, err)
		}
	}
	if fb.calls != 4 {
		t.Fatalf("fallback called %d times, want 4", fb.calls)
	}
}

func TestBodyLengthMismatchRefused(t *testing.T) {
	tr := &Transport{}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", strings.NewReader("abc"))
	req.ContentLength = 5
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Fatalf("err %v for a body shorter than ContentLength", err)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", strings.NewReader("abcdef"))
	req.ContentLength = 5
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("err %v for a body longer than ContentLength", err)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", nil)
	req.Header.Set("X-Bad", "a\r\nInjected: 1")
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("a header value with CRLF was sent")
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	})
	before := settleGoroutines(0)
	tr := &Transport{MaxIdlePerHost: 4}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("x"))
				if resp, err := tr.RoundTrip(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	// Pooled connections hold no goroutine on the client side: only the
	// server's per-connection goroutines are alive now.
	pooled := len(tr.idle[strings.TrimPrefix(s.URL, "http://")])
	if n := settleGoroutines(before + pooled); n > before+pooled {
		t.Fatalf("%d goroutines with %d pooled connections, want at most %d (server's only)", n, pooled, before+pooled)
	}
	for i := 0; i < 5; i++ { // timed out exchanges
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/slow", strings.NewReader("x"))
		if _, err := tr.RoundTrip(req); err == nil {
			t.Fatal("no timeout")
		}
		cancel()
	}
	tr.CloseIdleConnections()
	if n := settleGoroutines(before); n > before {
		t.Fatalf("%d goroutines after CloseIdleConnections, %d before", n, before)
	}
}

func TestBytesPastFramedEndCloseConnection(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := 0; i < 2; i++ {
		resp, err := post(t, tr, s.URL(), "x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Fatalf("body %q", got)
		}
	}
	if n := s.accept.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: a connection with bytes past the answer is not reused", n)
	}
}
