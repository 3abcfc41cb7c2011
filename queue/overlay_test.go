package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// TestOverlayDeliveredNeverInBadger: events delivered before a checkpoint never reach Badger
// (their records are counted as skipped and no event key is left), events still pending at a
// checkpoint are moved into Badger and survive a crash, and events pending after it come back
// from the journal.
func TestOverlayDeliveredNeverInBadger(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir})
	for range 50 {
		enqueue(t, q, newEvent("", "a"))
		ack(t, q, next(t, q, "a"))
	}
	if got := q.StoreSkipped(); got != 50 {
		t.Fatalf("event records kept out of Badger: %d, want 50", got)
	}
	countBadger := func(q *Queue, prefix []byte) int {
		n := 0
		q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		})
		return n
	}
	// Pending at a checkpoint: moved to Badger.
	pendingA := []string{enqueue(t, q, newEvent("", "a")), enqueue(t, q, newEvent("", "a"))}
	if n := countBadger(q, prefixEvent); n != 0 {
		t.Fatalf("events in Badger before the checkpoint: %d, want 0", n)
	}
	q.writeMu.Lock()
	err := q.checkpointAll()
	q.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := countBadger(q, prefixEvent); n != 2 {
		t.Fatalf("events in Badger after the checkpoint: %d, want 2", n)
	}
	// One of them delivered after the move (a delete in Badger), one new one pending (overlay).
	l := next(t, q, "a")
	if l.Event.ID != pendingA[0] {
		t.Fatalf("leased %s, want %s", l.Event.ID, pendingA[0])
	}
	ack(t, q, l)
	late := enqueue(t, q, newEvent("", "a"))
	// A crash: no checkpoint at Close; the journal brings the overlay's contents back.
	q.skipCloseCheckpoint = true
	q.Close()
	q2 := openDisk(t, Options{Dir: dir})
	for _, want := range []string{pendingA[1], late} {
		l := next(t, q2, "a")
		if l.Event.ID != want {
			t.Fatalf("after the crash: leased %s, want %s", l.Event.ID, want)
		}
		ack(t, q2, l)
	}
	noNext(t, q2, "a")
}

// TestOverlayRefillAndFanOut: with a small window, deliveries still in the overlay are
// streamed into the window in order, and an event fanned out to two backends is removed only
// when both have acknowledged it, across a checkpoint that moves it to Badger in between.
func TestOverlayRefillAndFanOut(t *testing.T) {
	q := openDisk(t, Options{Window: 3})
	var ids []string
	for range 10 {
		ids = append(ids, enqueue(t, q, newEvent("", "a", "b")))
	}
	for i, want := range ids {
		l := next(t, q, "a")
		if l.Event.ID != want {
			t.Fatalf("a: delivery %d is %s, want %s", i, l.Event.ID, want)
		}
		ack(t, q, l)
		if i == 4 {
			q.writeMu.Lock()
			err := q.checkpointAll()
			q.writeMu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range ids {
		if _, _, err := q.Get(id); err != nil {
			t.Fatalf("event %s gone while b has not delivered it: %v", id, err)
		}
	}
	for i, want := range ids {
		l := next(t, q, "b")
		if l.Event.ID != want {
			t.Fatalf("b: delivery %d is %s, want %s", i, l.Event.ID, want)
		}
		ack(t, q, l)
	}
	for _, id := range ids {
		if _, _, err := q.Get(id); err == nil {
			t.Fatalf("event %s still there after both backends acknowledged it", id)
		}
	}
}

// BenchmarkPassThrough enqueues 1 KB events from 64 producers while 32 workers deliver them
// (Next + Ack) at once, with the overlay and without (every event written to Badger).
func BenchmarkPassThrough(b *testing.B) {
	for _, mode := range []struct {
		name string
		no   bool
	}{{"overlay", false}, {"badger", true}} {
		b.Run(mode.name, func(b *testing.B) {
			q, err := Open(Options{Dir: b.TempDir(), noOverlay: mode.no})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			body := []byte(strings.Repeat("x", 1024))
			header := map[string][]string{"Content-Type": {"application/json"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var delivered atomic.Int64
			var workers sync.WaitGroup
			for range 32 {
				workers.Add(1)
				go func() {
					defer workers.Done()
					for {
						l, err := q.Next(ctx, "crm")
						if err != nil {
							return
						}
						if err := q.Ack(l); err != nil {
							b.Error(err)
						}
						delivered.Add(1)
					}
				}()
			}
			b.ReportAllocs()
			b.SetParallelism(max(1, 64/runtimeProcs()))
			var seq atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					ev := &Event{Channel: "meta", Provider: "meta", OrderKey: fmt.Sprintf("s-%d", i%2000),
						ProviderEventID: fmt.Sprintf("wamid.%d", i), Method: "POST", Header: header, Body: body,
						Backends: []string{"crm"}}
					if _, err := q.Enqueue(context.Background(), ev, 24*time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			})
			for delivered.Load() < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			cancel()
			workers.Wait()
		})
	}
}
