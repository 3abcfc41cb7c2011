package relay

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestConnectionFloodLeavesRoomForOthers opens a bounded flood of idle
// connections from one client address (127.0.0.2) and checks that the
// relay holds no more than max_connections_per_ip of them, that a
// well-behaved client (127.0.0.1) is still served, and that the refusals
// are counted and their log lines sampled.
func TestConnectionFloodLeavesRoomForOthers(t *testing.T) {
	be := newRecorder(t)
	cfg := strings.Replace(metaConfig(be.srv.URL), `max_body = "4KiB"`, `max_body = "4KiB"
  max_connections        = 400
  max_connections_per_ip = 50`, 1)
	r := startRelay(t, cfg)
	addr := strings.TrimPrefix(r.base, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	const n = 300
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			// Refused (reset) by the relay before the dial returned: one of the n-50.
			continue
		}
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2: %v", err)
		}
		flood = append(flood, c)
	}
	ll := r.s.listeners["public"].ln.(*limitListener)
	waitFor(t, 5*time.Second, "the flood accepted or refused", func() bool {
		return scrapeValue(t, r, `edgerelay_connections_refused_total{listener="public",reason="max_connections_per_ip"}`) == n-50
	})
	if open := ll.open(); open != 50 {
		t.Fatalf("%d connections held, want 50", open)
	}
	body := metaBody("wamid.wellbehaved", "4915100000009")
	if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
		t.Fatalf("the well-behaved client got %d", resp.StatusCode)
	}
	if lines := strings.Count(r.logs.String(), `"msg":"connection refused"`); lines > sampleBurst {
		t.Errorf("%d log lines for %d refusals: not sampled", lines, n-50)
	}
}

// TestAcceptErrorsWarnedAndCounted lowers the process's open-file limit
// so that accept fails with EMFILE, and checks the WARN line and the
// metric; then restores the limit and checks the listener serves again.
func TestAcceptErrorsWarnedAndCounted(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	addr := strings.TrimPrefix(r.base, "http://")
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skip(err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	low := old
	low.Cur = uint64(len(fds) + 4)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	restore := func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }
	defer restore()
	// Fill the few descriptors left with connections of our own.
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	ok := false
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !ok {
		// Read the counter itself: a scrape needs a descriptor too.
		ok = testutil.ToFloat64(r.s.connMet.acceptErrors.WithLabelValues("public")) > 0
		time.Sleep(20 * time.Millisecond)
	}
	restore()
	for _, c := range conns {
		c.Close()
	}
	if !ok {
		t.Fatal("no accept error counted with the descriptors exhausted")
	}
	if scrapeValue(t, r, `edgerelay_accept_errors_total{listener="public"}`) <= 0 {
		t.Errorf("edgerelay_accept_errors_total not exported")
	}
	if !strings.Contains(r.logs.String(), `"level":"WARN","msg":"accept failed"`) {
		t.Errorf("the accept error is not logged at WARN")
	}
	body := metaBody("wamid.after-emfile", "4915100000010")
	if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
		t.Fatalf("after the limit is restored: %d", resp.StatusCode)
	}
}

// scrapeValue scrapes the admin /metrics for one sample (0 when absent).
func scrapeValue(t *testing.T, r *testRelay, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.s.AdminAddr() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(line, series+" "), &v)
			return v
		}
	}
	return 0
}
