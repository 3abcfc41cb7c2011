package queue

import (
	"context"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// TestEarlyStreamedDelivery: a delivery that refill streams in between its commit and its
// Enqueue hook, and that is delivered and acknowledged before the hook runs, must not come back
// when the hook finally runs.
func TestEarlyStreamedDelivery(t *testing.T) {
	q := openDisk(t, Options{Window: 2})
	a := enqueue(t, q, newEvent("", "a"))
	c1 := enqueue(t, q, newEvent("", "a"))
	c2 := enqueue(t, q, newEvent("", "a")) // beyond the window: on disk only

	// Hold the syncer: hooks of later batches wait behind this op's.
	gate, started := make(chan struct{}), make(chan struct{})
	blocker := &op{durable: true}
	blocker.apply = func(w *writer) error {
		blocker.after = func() { close(started); <-gate }
		return nil
	}
	go q.submit(context.Background(), blocker)
	<-started
	bres := make(chan EnqueueResult, 1)
	go func() {
		res, err := q.Enqueue(context.Background(), newEvent("", "a"), 0)
		if err != nil {
			t.Errorf("enqueue: %v", err)
		}
		bres <- res
	}()
	waitFor(t, "the enqueue to be committed", func() bool {
		n := 0
		q.view(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: backendPrefix(prefixPending, "a")})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		})
		// New events' records may still be in the overlay instead of Badger.
		n += len(q.ovScan(backendPrefix(prefixPending, "a"), nil))
		return n == 4
	})
	for _, want := range []string{a, c1, c2} {
		l := next(t, q, "a")
		if l.Event.ID != want {
			t.Fatalf("got %s, want %s", l.Event.ID, want)
		}
		ack(t, q, l)
	}
	early := next(t, q, "a") // streamed in by refill before its hook
	ack(t, q, early)
	close(gate)
	b := <-bres
	if early.Event.ID != b.ID {
		t.Fatalf("early delivery %s, enqueued %s", early.Event.ID, b.ID)
	}
	noNext(t, q, "a")
	if got := stats(q, "a"); got != "pending=0 inflight=0 dead=0" {
		t.Fatalf("stats: %s", got)
	}
}
