package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// onlyConn returns the one connection s serves.
func onlyConn(t *testing.T, s *Server) *conn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(s.conns))
	}
	for c := range s.conns {
		return c
	}
	return nil
}

// readAnswer reads one answer and its body.
func readAnswer(t *testing.T, br *bufio.Reader) *answer {
	t.Helper()
	a, err := readOne(br)
	if err != nil {
		t.Fatal(err)
	}
	if !a.bodyOK {
		t.Fatal("answer body cut short")
	}
	return a
}

// TestArmedAnswerSavesTheEmptyRead: on a kept-alive connection whose client
// sends each request after the last answer, every answer is written by the
// read that awaits the next request, and no read finds nothing first,
// although the client takes a few milliseconds to send (a read right after
// the answer would find nothing every time).
func TestArmedAnswerSavesTheEmptyRead(t *testing.T) {
	addr, s, _ := fastServer(t, http.HandlerFunc(echo), nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const n = 20
	for i := 0; i < n; i++ {
		io.WriteString(c, post)
		if a := readAnswer(t, br); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
		time.Sleep(2 * time.Millisecond)
	}
	sc := onlyConn(t, s)
	// The last answer's wait is still on: n answers written by the wire.
	deadline := time.Now().Add(2 * time.Second)
	writes, empty := sc.ar.Counts()
	for writes < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		writes, empty = sc.ar.Counts()
	}
	if writes != n || empty != 0 {
		t.Fatalf("%d of %d answers written armed, %d empty reads; want all and none", writes, n, empty)
	}
}

// TestArmedPipelinedRequest: a request sent ahead of its answer while the
// one before it is being served is answered within armedWait after that
// one, not at the idle timeout; the next armedRest answers are written
// unarmed.
func TestArmedPipelinedRequest(t *testing.T) {
	entered := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			time.Sleep(100 * time.Millisecond)
		}
		echo(w, r)
	})
	addr, s, _ := fastServer(t, h, func(s *Server) { s.IdleTimeout = 10 * time.Second })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// One answer first, so that the server has armed once.
	io.WriteString(c, post)
	readAnswer(t, br)
	io.WriteString(c, strings.Replace(post, "/cb", "/slow", 1))
	<-entered
	start := time.Now()
	io.WriteString(c, post) // pipelined: sent while /slow is being served
	for i := 0; i < 2; i++ {
		if a := readAnswer(t, br); a.status != 200 {
			t.Fatalf("answer %d: %d", i, a.status)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("both answers after %s: the pipelined request waited for more than the armed wait", d)
	}
	sc := onlyConn(t, s)
	before, _ := sc.ar.Counts()
	// The next armedRest answers are written as usual, then armed again.
	for i := 0; i < armedRest; i++ { // the pipelined answer was the first
		io.WriteString(c, post)
		if a := readAnswer(t, br); a.status != 200 {
			t.Fatalf("after: %d", a.status)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	after, _ := sc.ar.Counts()
	for after == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		after, _ = sc.ar.Counts()
	}
	// Of the armedRest+1 answers since, the last is armed, as may be the
	// /slow one's answer before them (counted in before).
	if after != before+1 {
		t.Fatalf("%d answers written armed after the pipelined request, want 1 (the one after armedRest unarmed)", after-before)
	}
}

// TestArmedMixedClients: connections that wait for each answer, with or
// without a pause, and connections that send ahead of their answers, at
// once; every request is answered, in order, with its own body, and none
// waits for the idle timeout.
func TestArmedMixedClients(t *testing.T) {
	addr, _, _ := fastServer(t, http.HandlerFunc(echo), func(s *Server) { s.IdleTimeout = 30 * time.Second })
	const conns, requests = 12, 60
	errs := make(chan error, conns)
	start := time.Now()
	for i := 0; i < conns; i++ {
		go func(i int) {
			errs <- mixedClient(addr, i, requests)
		}(i)
	}
	for i := 0; i < conns; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// 720 requests; a request sent ahead may wait armedWait, once in
	// armedRest+1 per connection.
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
}

// mixedClient sends n requests on one connection; client i%3 == 0 waits
// for each answer, 1 pauses a millisecond after each, 2 sends three at a
// time with pauses between them (pipelining).
func mixedClient(addr string, i, n int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	req := func(k int) string {
		body := fmt.Sprintf(`{"c":%d,"k":%d}`, i, k)
		return fmt.Sprintf("POST /cb HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	check := func(k int) error {
		a, err := readOne(br)
		if err != nil {
			return fmt.Errorf("client %d, request %d: %v", i, k, err)
		}
		if !a.bodyOK || !strings.Contains(a.body, fmt.Sprintf(`{\"c\":%d,\"k\":%d}`, i, k)) {
			return fmt.Errorf("client %d, request %d: answer %q (whole: %v)", i, k, a.body, a.bodyOK)
		}
		return nil
	}
	for k := 0; k < n; {
		switch i % 3 {
		case 0, 1:
			io.WriteString(c, req(k))
			if err := check(k); err != nil {
				return err
			}
			if i%3 == 1 {
				time.Sleep(time.Millisecond)
			}
			k++
		default:
			m := min(3, n-k)
			for j := 0; j < m; j++ {
				io.WriteString(c, req(k+j))
				time.Sleep(200 * time.Microsecond)
			}
			for j := 0; j < m; j++ {
				if err := check(k + j); err != nil {
					return err
				}
			}
			k += m
		}
	}
	return nil
}
