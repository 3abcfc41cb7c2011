package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const post = "POST /cb HTTP/1.1\r\nHost: relay.example\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bc\"}\n"

// The fast path answers every request exactly as net/http alone does
// (status, fields, body, whether the connection closes), serving the plain
// ones itself and handing the rest over; via lists, answer by answer, which
// server must have answered.
func TestSameAnswersAsNetHTTP(t *testing.T) {
	fast, _, _ := fastServer(t, http.HandlerFunc(echo), nil)
	std := stdServer(t, http.HandlerFunc(echo))
	big := strings.Repeat("x", 100<<10)
	cases := []struct {
		name, raw string
		via       []string
		// the fast path says Connection: close where net/http closes
		// without saying so
		saysClose bool
	}{
		{"plain callback", post, []string{"fast"}, false},
		{"three pipelined", post + post + post, []string{"fast", "fast", "fast"}, false},
		{"lowercase names, spaces around values", "POST /cb HTTP/1.1\r\nhost:  relay.example \r\ncontent-length:3\r\nx-hub-signature-256: \tsha256=ab \t\r\n\r\nabc", []string{"fast"}, false},
		{"repeated field keeps its order", "POST /cb HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\nContent-Length: 0\r\n\r\n", []string{"fast"}, false},
		{"odd but valid names", "POST /cb HTTP/1.1\r\nHost: h\r\nX_Odd-nAME: v\r\nx-a-B: w\r\nContent-Length: 0\r\n\r\n", []string{"fast"}, false},
		{"empty value", "POST /cb HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n", []string{"fast"}, false},
		{"query and escapes", "POST /cb%2Fx/y?a=1&b=%20&c HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz", []string{"fast"}, false},
		{"leading zeros in the length", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 0003\r\n\r\nabc", []string{"fast"}, false},
		{"connection close", "POST /cb HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 1\r\n\r\nz" + post, []string{"fast"}, false},
		{"connection keep-alive, close", "POST /cb HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nz", []string{"fast"}, false},
		{"large body", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 102400\r\n\r\n" + big + post, []string{"fast", "fast"}, false},
		{"unread small body is read past", "POST /noread HTTP/1.1\r\nHost: h\r\nContent-Length: 102400\r\n\r\n" + big + post, []string{"fast", "fast"}, false},
		{"status without body", "POST /status/204 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n" + post, []string{"fast", "fast"}, false},
		{"status 304", "POST /status/304 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n" + post, []string{"fast", "fast"}, false},
		{"unknown status", "POST /status/599 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", []string{"fast"}, false},
		{"sniffed content type", "POST /plain HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", []string{"fast"}, false},
		{"no content length", "POST /cb HTTP/1.1\r\nHost: h\r\n\r\n" + post, []string{"net/http", "net/http"}, false},
		{"chunked", "POST /cb HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + post, []string{"net/http", "net/http"}, false},
		{"length and chunked (smuggling)", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + post, []string{"net/http", "net/http"}, false},
		{"callback then chunked", post + "POST /cb HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", []string{"fast", "net/http"}, false},
		{"two equal lengths", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz", []string{"net/http"}, false},
		{"two different lengths", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nzz", nil, false},
		{"signed length", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nz", nil, false},
		{"hex length", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 0x1\r\n\r\nz", nil, false},
		{"expect continue", "POST /cb HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz", []string{"", "net/http"}, false},
		{"HTTP/1.0", "POST /cb HTTP/1.0\r\nHost: h\r\nContent-Length: 1\r\n\r\nz", []string{"net/http"}, false},
		{"GET", "GET /cb HTTP/1.1\r\nHost: h\r\n\r\n" + post, []string{"net/http", "net/http"}, false},
		{"HEAD", "HEAD /cb HTTP/1.1\r\nHost: h\r\n\r\n", []string{"net/http"}, false},
		{"callback then unclaimed path", post + "POST /unclaimed HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz" + post, []string{"fast", "net/http", "net/http"}, false},
		{"unclaimed path", "POST /unclaimed HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz" + post, []string{"net/http", "net/http"}, false},
		{"absolute form", "POST http://h/cb HTTP/1.1\r\nHost: other\r\nContent-Length: 1\r\n\r\nz", []string{"net/http"}, false},
		{"pragma", "POST /cb HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", []string{"net/http"}, false},
		{"upgrade", "POST /cb HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n", []string{"net/http"}, false},
		{"obs-fold", "POST /cb HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"space before colon", "POST /cb HTTP/1.1\r\nHost: h\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"bare LF", "POST /cb HTTP/1.1\nHost: h\nContent-Length: 1\n\nz", nil, false},
		{"bare LF inside", "POST /cb HTTP/1.1\r\nHost: h\nX-A: 1\r\nContent-Length: 1\r\n\r\nz", nil, false},
		{"control byte in a value", "POST /cb HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"missing host", "POST /cb HTTP/1.1\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"two hosts", "POST /cb HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"bad host", "POST /cb HTTP/1.1\r\nHost: a b\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"non-ASCII path", "POST /cb/\xc3\xa9 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", []string{"net/http"}, false},
		{"double space", "POST  /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"garbage after a callback", post + "BLAH\r\n\r\n", []string{"fast", ""}, false},
		{"head over the buffer", "POST /cb HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\nContent-Length: 0\r\n\r\n", []string{"net/http"}, false},
		{"head over net/http's limit", "POST /cb HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\nContent-Length: 0\r\n\r\n", nil, false},
		{"short body", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", []string{"fast"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := exchange(t, std, tc.raw)
			got := exchange(t, fast, tc.raw)
			if len(got) != len(want) {
				t.Fatalf("%d answers, net/http gives %d", len(got), len(want))
			}
			for i := range got {
				if tc.saysClose && got[i].close && !want[i].close {
					got[i].close = false
					got[i].header.Del("Connection")
				}
				if g, w := got[i].comparable(), want[i].comparable(); g != w {
					t.Errorf("answer %d:\n%s\nnet/http:\n%s", i, g, w)
				}
				if i < len(tc.via) {
					if by := got[i].header.Get("X-Served-By"); by != tc.via[i] {
						t.Errorf("answer %d served by %q, want %q", i, by, tc.via[i])
					}
				}
			}
			if tc.via != nil && len(got) != len(tc.via) {
				t.Errorf("%d answers, want %d", len(got), len(tc.via))
			}
		})
	}
}

// A body the handler leaves unread beyond what is worth reading past
// closes the connection after the answer, and nothing after it is served.
func TestUnreadLargeBodyCloses(t *testing.T) {
	addr, _, _ := fastServer(t, http.HandlerFunc(echo), nil)
	raw := "POST /noread HTTP/1.1\r\nHost: h\r\nContent-Length: 400000\r\n\r\n" + strings.Repeat("x", 400000) + post
	got := exchange(t, addr, raw)
	if len(got) != 1 || !got[0].close || got[0].status != 200 {
		t.Fatalf("got %d answers (first: %+v), want one that closes the connection", len(got), got)
	}
}

// ReadTimeout bounds a request from its first byte (a head that never
// ends, a body that stalls); IdleTimeout bounds the wait for the next one.
func TestTimeouts(t *testing.T) {
	addr, _, _ := fastServer(t, http.HandlerFunc(echo), func(s *Server) {
		s.ReadTimeout, s.IdleTimeout = 300*time.Millisecond, 600*time.Millisecond
	})
	for _, tc := range []struct {
		name, raw string
		within    time.Duration
	}{
		{"head that never ends", "POST /cb HTTP/1.1\r\nHost: h\r\nX-Slow: ", 2 * time.Second},
		{"body that stalls", "POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc", 2 * time.Second},
		{"idle after a request", post, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			io.WriteString(c, tc.raw)
			if !waitClosed(c, tc.within) {
				t.Fatalf("connection still open after %s", tc.within)
			}
			if el := time.Since(start); el < 250*time.Millisecond {
				t.Errorf("closed after %s, before the timeout", el)
			}
		})
	}
}

// Shutdown closes idle connections at once, lets a request in progress
// finish (its answer says Connection: close) and then returns; Serve
// returns http.ErrServerClosed.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, ErrorLog: quietLog()}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, post)
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first answer: %v %v", resp, err)
	}

	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, strings.Replace(post, "/cb", "/slow", 1))
	<-entered

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	if !waitClosed(idle, 2*time.Second) {
		t.Fatal("idle connection not closed by Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("answer during shutdown: %+v %v; want 200 with Connection: close", resp, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
}

// A panicking handler costs its connection, not the server.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	addr, _, _ := fastServer(t, http.HandlerFunc(echo), nil)
	got := exchange(t, addr, strings.Replace(post, "/cb", "/panic", 1)+post)
	if len(got) != 0 {
		t.Fatalf("%d answers after a panic, want the connection closed", len(got))
	}
	if got := exchange(t, addr, post); len(got) != 1 || got[0].status != 200 {
		t.Fatalf("next connection: %+v", got)
	}
}

// The handler sees the client's address and a context that lives as long
// as the request.
func TestRequestContextAndAddress(t *testing.T) {
	var remote atomic.Value
	var ctxErr atomic.Value
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote.Store(r.RemoteAddr)
		ctxErr.Store(errString(r.Context().Err()))
	})
	addr, _, _ := fastServer(t, h, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, post)
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatal(err)
	}
	if got, want := remote.Load(), c.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %v, want %v", got, want)
	}
	if e := ctxErr.Load(); e != "" {
		t.Errorf("context done during the handler")
	}
}
