package armed

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns the two ends of a TCP connection on 127.0.0.1.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func write(c net.Conn, s string) func() error {
	return func() error { _, err := io.WriteString(c, s); return err }
}

// An armed Read writes, waits and reads the reply in one read: the peer
// replies a few milliseconds later and no read finds nothing first.
func TestArmedReadGetsTheReply(t *testing.T) {
	c, s := pair(t)
	go func() {
		buf := make([]byte, 16)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
			s.Write(append([]byte("re:"), buf[:n]...))
		}
	}()
	r := NewReader(c)
	buf := make([]byte, 64)
	for _, msg := range []string{"one", "two", "three"} {
		if !r.Arm(write(c, msg)) {
			t.Fatal("Arm refused on a TCP connection")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := r.Read(buf)
		if err != nil || string(buf[:n]) != "re:"+msg {
			t.Fatalf("read %q, %v; want re:%s", buf[:n], err, msg)
		}
		if err := r.WriteErr(); err != nil {
			t.Fatal(err)
		}
	}
	if w, e := r.Counts(); w != 3 || e != 0 {
		t.Fatalf("%d armed writes, %d empty reads; want 3 and 0", w, e)
	}
	// Unarmed, Read is the connection's own.
	go s.Write([]byte("plain"))
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "plain" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

// A failing armed write fails the Read with its error, and WriteErr
// reports it once.
func TestArmedWriteError(t *testing.T) {
	c, _ := pair(t)
	r := NewReader(c)
	boom := errors.New("boom")
	r.Arm(func() error { return boom })
	if _, err := r.Read(make([]byte, 8)); err != boom {
		t.Fatalf("Read: %v, want the write's error", err)
	}
	if err := r.WriteErr(); err != boom {
		t.Fatalf("WriteErr: %v", err)
	}
	if err := r.WriteErr(); err != nil {
		t.Fatalf("WriteErr again: %v", err)
	}
}

// The armed wait ends at the read deadline with the error a plain Read
// gives; the end of the stream is io.EOF.
func TestArmedDeadlineAndEOF(t *testing.T) {
	c, s := pair(t)
	r := NewReader(c)
	r.Arm(write(c, "x"))
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := r.Read(make([]byte, 8))
	var op *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("err %v, want a read OpError for the deadline", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r.Arm(write(c, "y"))
	go func() {
		io.ReadFull(s, make([]byte, 2))
		s.Close()
	}()
	if _, err := r.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("err %v, want io.EOF", err)
	}
}

// What the package comment warns of: bytes the peer sent before the armed
// write do not wake the wait; a read with Once finds them.
func TestArmedMissesWhatCameBefore(t *testing.T) {
	c, s := pair(t)
	r := NewReader(c)
	s.Write([]byte("early"))
	time.Sleep(50 * time.Millisecond) // it is in c's socket
	r.Arm(write(c, "x"))
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := r.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v: the armed wait saw what came before its write", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8)
	if !r.Once() {
		t.Fatal("Once refused on a TCP connection")
	}
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "early" {
		t.Fatalf("Once read %q, %v", buf[:n], err)
	}
	r.Once()
	if _, err := r.Read(buf); err != ErrWouldBlock {
		t.Fatalf("Once on an empty socket: %v, want ErrWouldBlock", err)
	}
}

// Not a socket: Arm and Once refuse, and Read is the connection's own.
func TestNoRawConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r := NewReader(a)
	if r.Arm(write(a, "x")) || r.Once() {
		t.Fatal("armed on a net.Pipe")
	}
	go b.Write([]byte("hi"))
	buf := make([]byte, 8)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}
