package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// opener opens a queue with o for one test and closes it at cleanup.
type opener func(t *testing.T, o Options) *Queue

func openDisk(t *testing.T, o Options) *Queue {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	q, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func openMem(t *testing.T, o Options) *Queue {
	t.Helper()
	o.InMemory = true
	o.Dir = ""
	q, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func newEvent(key string, backends ...string) *Event {
	return &Event{
		Channel:  "meta",
		Provider: "meta",
		OrderKey: key,
		Method:   "POST",
		Path:     "/hooks/meta?x=1",
		Header:   map[string][]string{"Content-Type": {"application/json"}, "X-A": {"1", "2"}},
		Body:     []byte(`{"hello":"world"}`),
		Backends: backends,
	}
}

func enqueue(t *testing.T, q *Queue, ev *Event) string {
	t.Helper()
	res, err := q.Enqueue(context.Background(), ev, 0)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if res.Duplicate {
		t.Fatalf("enqueue: unexpected duplicate")
	}
	return res.ID
}

// next leases the next delivery of backend, failing after a few seconds.
func next(t *testing.T, q *Queue, backend string) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := q.Next(ctx, backend)
	if err != nil {
		t.Fatalf("next %s: %v", backend, err)
	}
	return l
}

// noNext asserts that nothing is handed out for backend within a short time.
func noNext(t *testing.T, q *Queue, backend string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l, err := q.Next(ctx, backend)
	if err == nil {
		t.Fatalf("next %s: got event %s (key %q), want nothing", backend, l.Event.ID, l.Event.OrderKey)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next %s: %v", backend, err)
	}
}

func ack(t *testing.T, q *Queue, l *Lease) {
	t.Helper()
	if err := q.Ack(l); err != nil {
		t.Fatalf("ack %s: %v", l.Event.ID, err)
	}
}

func stats(q *Queue, backend string) string {
	s := q.Stats()[backend]
	return fmt.Sprintf("pending=%d inflight=%d dead=%d", s.Pending, s.InFlight, s.Dead)
}

// waitFor polls cond until it holds or the time runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type badgerTxn = badger.Txn

func badgerIterOpts(prefix []byte) badger.IteratorOptions {
	return badger.IteratorOptions{Prefix: prefix}
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	slices.Sort(out)
	return out
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// bodiesIntact reads every event of ids back and fails unless its body is bodies[i]; after says
// what happened to the pages they were stored in.
func bodiesIntact(t *testing.T, q *Queue, ids []string, bodies [][]byte, after string) {
	t.Helper()
	for i, id := range ids {
		ev, _, err := q.Get(id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if !bytes.Equal(ev.Body, bodies[i]) {
			t.Fatalf("event %s: body changed after its pages were %s", id, after)
		}
	}
}
