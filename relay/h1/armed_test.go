package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// pooled returns the one idle connection of tr.
func pooled(t *testing.T, tr *Transport) *conn {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var all []*conn
	for _, l := range tr.idle {
		all = append(all, l...)
	}
	if len(all) != 1 {
		t.Fatalf("%d idle connections, want 1", len(all))
	}
	return all[0]
}

// TestSendArmedSavesTheEmptyRead: on a pooled connection each request is
// written as its answer is awaited, and the answer is read once it is
// there: no read finds nothing first, although the backend takes a few
// milliseconds to answer (a read right after the write would find
// nothing every time).
func TestSendArmedSavesTheEmptyRead(t *testing.T) {
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		for readRequest(br) != nil {
			time.Sleep(2 * time.Millisecond)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	r := &Request{Method: "POST", Dest: mustDest(t, s.URL()), Body: []byte("x"), Deadline: time.Now().Add(10 * time.Second)}
	const n = 20
	buf := make([]byte, 8)
	for i := 0; i < n; i++ {
		rep, err := tr.Send(r, buf)
		if err != nil || rep.Status != 200 || string(rep.Snippet) != "ok" {
			t.Fatalf("send %d: %+v, %v", i, rep, err)
		}
	}
	c := pooled(t, tr)
	if writes, empty := c.ar.Counts(); writes != n || empty != 0 {
		t.Fatalf("%d of %d requests armed, %d empty reads; want all armed and none empty", writes, n, empty)
	}
	if a := s.accept.Load(); a != 1 {
		t.Fatalf("%d connections, want 1", a)
	}
}

// TestSendArmedDeadline: an armed request whose answer never comes fails
// on the deadline, not later.
func TestSendArmedDeadline(t *testing.T) {
	var requests atomic.Int64
	s := newRawServer(t, func(_ int64, c net.Conn, br *bufio.Reader) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if readRequest(br) == nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		for readRequest(br) != nil {
			requests.Add(1) // read, never answered
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	dest := mustDest(t, s.URL())
	if _, err := tr.Send(&Request{Method: "POST", Dest: dest}, nil); err != nil {
		t.Fatal(err)
	}
	c := pooled(t, tr)
	start := time.Now()
	_, err := tr.Send(&Request{Method: "POST", Dest: dest, Deadline: start.Add(200 * time.Millisecond)}, nil)
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("err %v after %s, want the deadline's error after about 200ms", err, d)
	}
	if writes, _ := c.ar.Counts(); writes != 2 || requests.Load() != 1 {
		t.Fatalf("%d requests armed, %d read by the backend after the first; want 2 and 1", writes, requests.Load())
	}
}

// TestSendIdleLongNotArmed: a connection idle in the pool for longer than
// armedWithin has its request written and read as usual, so that a
// backend that half-closed it meanwhile is noticed at once (the armed
// wait would forget the end-of-stream that came before it) and the
// request goes out again on a new connection.
func TestSendIdleLongNotArmed(t *testing.T) {
	var requests atomic.Int64
	s := newRawServer(t, func(n int64, c net.Conn, br *bufio.Reader) {
		if readRequest(br) == nil {
			return
		}
		requests.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		if n == 1 {
			// Half-close and go on reading: no reset ever comes back.
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for readRequest(br) != nil {
			}
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	dest := mustDest(t, s.URL())
	if _, err := tr.Send(&Request{Method: "POST", Dest: dest}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the end-of-stream reaches the client
	c := pooled(t, tr)
	c.since = c.since.Add(-armedWithin) // as if idle that long
	start := time.Now()
	rep, err := tr.Send(&Request{Method: "POST", Dest: dest, Deadline: start.Add(3 * time.Second)}, nil)
	if err != nil || rep.Status != 200 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("answered after %s: the half-closed connection was waited on", d)
	}
	if writes, _ := c.ar.Counts(); writes != 1 {
		t.Fatalf("%d requests armed on the first connection, want 1 (the second written as usual)", writes)
	}
	if a, n := s.accept.Load(), requests.Load(); a != 2 || n != 2 {
		t.Fatalf("%d connections, %d requests answered; want 2 and 2", a, n)
	}
}
