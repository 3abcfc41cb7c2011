package h1server

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echo answers what it was asked, as JSON, so that two servers can be
// compared request by request. Paths steer it:
//
//	/noread...       leaves the body unread
//	/status/NNN      answers NNN
//	/plain           writes a body with no Content-Type (sniffed)
//	/unclaimed...    is not claimed by the fast path (see fastServer)
//	/panic           panics
func echo(w http.ResponseWriter, r *http.Request) {
	via := "fast"
	if r.Context().Value(http.ServerContextKey) != nil {
		via = "net/http"
	}
	w.Header().Set("X-Served-By", via)
	switch {
	case r.URL.Path == "/panic":
		panic("boom")
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		w.WriteHeader(code)
		io.WriteString(w, "status body")
		return
	case r.URL.Path == "/plain":
		io.WriteString(w, "<html><body>plain</body></html>")
		return
	}
	var b []byte
	var err error
	if !strings.HasPrefix(r.URL.Path, "/noread") {
		b, err = io.ReadAll(r.Body)
	}
	hdr := r.Header.Clone()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method, "uri": r.RequestURI, "url": r.URL.String(), "path": r.URL.Path, "rawq": r.URL.RawQuery,
		"proto": r.Proto, "host": r.Host, "header": hdr, "cl": r.ContentLength, "close": r.Close,
		"te": r.TransferEncoding, "body": string(b), "bodyErr": errString(err),
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "error"
}

// fastServer starts the fast path on 127.0.0.1 with net/http serving what
// it hands off; it returns the address and the server.
func fastServer(t testing.TB, h http.Handler, tune func(*Server)) (string, *Server, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Handler: h,
		Claim:   func(r *http.Request) bool { return !strings.HasPrefix(r.URL.Path, "/unclaimed") },
	}
	if tune != nil {
		tune(s)
	}
	hs := &http.Server{Handler: h, ReadTimeout: s.ReadTimeout, WriteTimeout: s.WriteTimeout, IdleTimeout: s.IdleTimeout,
		ErrorLog: quietLog()}
	s.ErrorLog = quietLog()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	go hs.Serve(s.Handoff())
	t.Cleanup(func() {
		s.Close()
		hs.Close()
		select {
		case err := <-served:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ln.Addr().String(), s, hs
}

// stdServer is the reference: net/http alone.
func stdServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: quietLog()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// exchange writes raw on a new connection, half-closes it and reads every
// response until the server closes the connection (or 3 s pass).
func exchange(t testing.TB, addr, raw string) []*answer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	var out []*answer
	br := bufio.NewReader(c)
	for {
		a, err := readOne(br)
		if err != nil {
			return out
		}
		out = append(out, a)
		if a.close {
			return out
		}
	}
}

// readOne reads one response and its body from br.
func readOne(br *bufio.Reader) (*answer, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return &answer{status: resp.StatusCode, header: resp.Header, body: string(b), bodyOK: err == nil, close: resp.Close}, nil
}

type answer struct {
	status int
	header http.Header
	body   string
	bodyOK bool
	close  bool
}

// comparable is an answer without what legitimately differs between the
// two servers: the date, the framing (net/http chunks bodies over 2 KiB)
// and which server answered.
func (a *answer) comparable() string {
	h := a.header.Clone()
	for _, k := range []string{"Date", "Content-Length", "Transfer-Encoding", "X-Served-By"} {
		delete(h, k)
	}
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(strconv.Itoa(a.status) + "\n")
	for _, k := range keys {
		b.WriteString(k + ": " + strings.Join(h[k], " | ") + "\n")
	}
	b.WriteString("close=" + strconv.FormatBool(a.close) + " bodyOK=" + strconv.FormatBool(a.bodyOK) + "\n")
	b.WriteString(a.body)
	return b.String()
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// waitClosed reports whether the server closes c within d.
func waitClosed(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
