package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is a net/http server on 127.0.0.1 that counts the TCP
// connections it accepted and closed.
type countingServer struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// rawServer accepts connections on 127.0.0.1 and runs serve on each; it
// counts them and records each request head it reads with readRequest.
type rawServer struct {
	ln     net.Listener
	accept atomic.Int64
	wg     sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(n int64, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.accept.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

// readRequest reads one request (head and Content-Length body) and
// returns its raw bytes; nil at EOF.
func readRequest(br *bufio.Reader) []byte {
	var raw []byte
	n := 0
	for {
		line, err := br.ReadString('\n')
		raw = append(raw, line...)
		if err != nil {
			return nil
		}
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil
	}
	return append(raw, body...)
}

func post(t *testing.T, tr http.RoundTripper, url, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return tr.RoundTrip(req)
}

// readAll reads and closes the body of resp.
// mustPost is post for a request that must get an answer.
func mustPost(t *testing.T, tr http.RoundTripper, url, body string) *http.Response {
	t.Helper()
	resp, err := post(t, tr, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// settleGoroutines waits until the goroutine count is at most want.
func settleGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// captureServer answers every request with an empty 200 and keeps its
// raw bytes, in order of arrival.
func captureServer(t *testing.T) (*rawServer, func() [][]byte) {
	var mu sync.Mutex
	var got [][]byte
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for {
			raw := readRequest(br)
			if raw == nil {
				return
			}
			mu.Lock()
			got = append(got, raw)
			mu.Unlock()
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	return s, func() [][]byte { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}
