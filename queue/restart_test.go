package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func reopen(t *testing.T, q *Queue, o Options) *Queue {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	q2, err := Open(o)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { q2.Close() })
	return q2
}

// TestRestartKeepsState: after Close and Open, everything not acknowledged or dead is pending
// again with its recorded attempts, dead letters stay dead, ids keep growing.
func TestRestartKeepsState(t *testing.T) {
	clk := NewFakeClock(t0)
	o := Options{Dir: t.TempDir(), Clock: clk}
	q := openDisk(t, o)
	retried := enqueue(t, q, newEvent("k", "a", "b"))
	leased := enqueue(t, q, newEvent("", "a"))
	dead := enqueue(t, q, newEvent("", "a"))
	acked := enqueue(t, q, newEvent("", "b"))

	l := next(t, q, "a")
	if l.Event.ID != retried {
		t.Fatalf("got %s", l.Event.ID)
	}
	if err := q.Retry(l, t0, "503"); err != nil {
		t.Fatal(err)
	}
	// Attempt 2 fails again: attempts are counted across leases.
	l = next(t, q, "a")
	if l.Event.ID != retried || l.Attempt != 2 {
		t.Fatalf("got %s attempt %d", l.Event.ID, l.Attempt)
	}
	if err := q.Retry(l, t0.Add(2*time.Minute), "503 again"); err != nil {
		t.Fatal(err)
	}
	l = next(t, q, "a")
	if l.Event.ID != leased {
		t.Fatalf("got %s, want %s", l.Event.ID, leased)
	}
	ld := next(t, q, "a")
	if err := q.Dead(ld, "400"); err != nil {
		t.Fatal(err)
	}
	lb := next(t, q, "b")
	ack(t, q, lb) // retried's b delivery
	lb = next(t, q, "b")
	if lb.Event.ID != acked {
		t.Fatalf("got %s", lb.Event.ID)
	}
	ack(t, q, lb)

	q = reopen(t, q, o)
	if got := stats(q, "a") + " " + stats(q, "b"); got != "pending=2 inflight=0 dead=1 pending=0 inflight=0 dead=0" {
		t.Fatalf("stats after restart: %s", got)
	}
	// The leased one is due now; the retried one keeps its due time and attempts.
	l = next(t, q, "a")
	if l.Event.ID != leased || l.Attempt != 1 {
		t.Fatalf("got %s attempt %d, want %s attempt 1", l.Event.ID, l.Attempt, leased)
	}
	ack(t, q, l)
	noNext(t, q, "a")
	clk.Advance(2 * time.Minute)
	l = next(t, q, "a")
	if l.Event.ID != retried || l.Attempt != 3 || l.LastError != "503 again" || !l.FirstAttemptAt.Equal(t0) {
		t.Fatalf("retried after restart: %s attempt %d lastErr %q first %v", l.Event.ID, l.Attempt, l.LastError, l.FirstAttemptAt)
	}
	ack(t, q, l)
	dls, err := q.DeadLetters("a", 0)
	if err != nil || len(dls) != 1 || dls[0].EventID != dead || dls[0].Attempts != 1 {
		t.Fatalf("dead letters after restart: %v %+v", err, dls)
	}
	for _, id := range []string{retried, leased, acked} {
		if _, _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get %s: %v, want ErrNotFound", id, err)
		}
	}
	id := enqueue(t, q, newEvent("", "a"))
	if id <= acked || id[16:] != acked[16:] {
		t.Fatalf("id after restart %s, before %s", id, acked)
	}
}

// TestRestartWindow: a backlog larger than the window survives a restart and is delivered in
// order.
func TestRestartWindow(t *testing.T) {
	o := Options{Dir: t.TempDir(), Window: 3}
	q := openDisk(t, o)
	var want []string
	for range 40 {
		want = append(want, enqueue(t, q, newEvent("k", "a")))
	}
	q = reopen(t, q, o)
	if st := q.Stats()["a"]; st.Pending != 40 {
		t.Fatalf("pending %d after restart", st.Pending)
	}
	for i, w := range want {
		l := next(t, q, "a")
		if l.Event.ID != w {
			t.Fatalf("delivery %d: %s, want %s", i, l.Event.ID, w)
		}
		ack(t, q, l)
	}
}

const helperEnv = "EDGERELAY_QUEUE_HELPER_DIR"

// TestHelperProcess is the child of TestCrashLosesNothing: it enqueues from several goroutines
// and prints each id once Enqueue has returned, until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		return // not a helper run
	}
	q, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	// One retried delivery, to check that its attempt survives the crash.
	res, err := q.Enqueue(context.Background(), newEvent("", "retry"), 0)
	if err != nil {
		os.Exit(2)
	}
	l, err := q.Next(context.Background(), "retry")
	if err != nil || q.Retry(l, time.Now(), "503") != nil {
		os.Exit(2)
	}
	var mu sync.Mutex
	fmt.Printf("retried %s\n", res.ID)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := newEvent(fmt.Sprintf("k%d", g), "a")
				ev.Body = []byte(strings.Repeat("x", 2000))
				res, err := q.Enqueue(context.Background(), ev, 0)
				if err != nil {
					fmt.Fprintln(os.Stderr, "enqueue:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("id %s\n", res.ID) // os.Stdout is unbuffered: one write per line
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashLosesNothing kills a process that is enqueueing (SIGKILL) and checks that every id it
// reported as stored is pending after reopening the directory, and that a recorded attempt
// survived.
func TestCrashLosesNothing(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var ids []string
	var retried string
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id "):
			ids = append(ids, strings.TrimPrefix(line, "id "))
		case strings.HasPrefix(line, "retried "):
			retried = strings.TrimPrefix(line, "retried ")
		}
		if !killed && (len(ids) >= 3000 || time.Now().After(deadline)) {
			// Kill mid-stream; lines already written are still read below.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("helper exited before being killed after %d ids", len(ids))
	}
	if len(ids) < 100 || retried == "" {
		t.Fatalf("helper stored only %d events (retried %q)", len(ids), retried)
	}
	q := openDisk(t, Options{Dir: dir})
	st := q.Stats()["a"]
	if st.Pending < len(ids) {
		t.Fatalf("pending %d after crash, helper reported %d stored", st.Pending, len(ids))
	}
	for _, id := range ids {
		ev, _, err := q.Get(id)
		if err != nil || ev.ID != id || len(ev.Body) != 2000 {
			t.Fatalf("event %s after crash: %v", id, err)
		}
	}
	// Every reported id is a pending delivery of backend a.
	pending := map[string]bool{}
	for range st.Pending {
		l := next(t, q, "a")
		pending[l.Event.ID] = true
		ack(t, q, l)
	}
	for _, id := range ids {
		if !pending[id] {
			t.Fatalf("event %s not pending after crash", id)
		}
	}
	l := next(t, q, "retry")
	if l.Event.ID != retried || l.Attempt != 2 || l.LastError != "503" {
		t.Fatalf("retried delivery after crash: %s attempt %d lastErr %q", l.Event.ID, l.Attempt, l.LastError)
	}
	t.Logf("%d events acknowledged before SIGKILL, %d found pending", len(ids), len(pending))
}
