package relay

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay/armed"
	"github.com/prometheus/client_golang/prometheus"
)

// A connection accepted through the connection limit still gives its
// socket's RawConn, so that the callback fast path can arm its answers
// (package armed): an armed write and the read of the reply go through it.
func TestLimitedConnArms(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := newLimitListener(ln, "test", 10, 10, slog.New(slog.DiscardHandler), newConnMetrics(prometheus.NewRegistry()))
	defer ll.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatalf("%T has no SyscallConn", c)
	}
	go func() {
		br := bufio.NewReader(client)
		if line, err := br.ReadString('\n'); err == nil {
			time.Sleep(2 * time.Millisecond)
			io.WriteString(client, "re: "+line)
		}
	}()
	r := armed.NewReader(c)
	if !r.Arm(func() error { _, err := io.WriteString(c, "hello\n"); return err }) {
		t.Fatal("Arm refused on a limited connection")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 32)
	n, err := io.ReadAtLeast(r, buf, len("re: hello\n"))
	if err != nil || string(buf[:n]) != "re: hello\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if w, e := r.Counts(); w != 1 || e != 0 {
		t.Fatalf("%d armed writes, %d empty reads; want 1 and 0", w, e)
	}
}

// Over something that is not a socket, SyscallConn says so.
func TestLimitedConnNoSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	lc := &limitedConn{Conn: a}
	if _, err := lc.SyscallConn(); err == nil {
		t.Fatal("a RawConn over a net.Pipe")
	}
}
