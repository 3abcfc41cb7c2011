package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// nextBatch leases up to max deliveries of backend, failing after a few seconds.
func nextBatch(t *testing.T, q *Queue, backend string, max int) []*Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := q.NextBatch(ctx, backend, max)
	if err != nil {
		t.Fatalf("next batch %s: %v", backend, err)
	}
	return ls
}

// TestNextBatchOrdering: a batch holds at most one delivery per order key, the earliest of each,
// plus every unordered one; AckAll completes them together, which frees each key's next one. A
// whole backlog drained this way arrives in per-key order, every event once, and leaves no live
// bytes, on disk (backlog read back from Badger) and in memory.
func TestNextBatchOrdering(t *testing.T) {
	for name, open := range map[string]opener{"disk": openDisk, "mem": openMem} {
		t.Run(name, func(t *testing.T) {
			q := open(t, Options{GCInterval: time.Hour, Window: 64})
			const keys, perKey, unordered = 10, 12, 7
			want := map[string][]string{}
			for range unordered {
				enqueue(t, q, newEvent("", "a"))
			}
			for i := range perKey {
				for k := range keys {
					ev := newEvent(fmt.Sprintf("k%d", k), "a")
					ev.Body = bytes.Repeat([]byte{byte('a' + k)}, 2048) // in the value log on disk
					ev.Body[0] = byte(i)
					id := enqueue(t, q, ev)
					want[ev.OrderKey] = append(want[ev.OrderKey], id)
				}
			}
			got := map[string][]string{}
			seen := map[string]bool{}
			first := true
			for len(seen) < keys*perKey+unordered {
				ls := nextBatch(t, q, "a", 1000)
				perBatch := map[string]int{}
				for _, l := range ls {
					if seen[l.Event.ID] {
						t.Fatalf("event %s handed out twice", l.Event.ID)
					}
					seen[l.Event.ID] = true
					if k := l.Event.OrderKey; k != "" {
						perBatch[k]++
						if perBatch[k] > 1 {
							t.Fatalf("two deliveries of key %s in one batch", k)
						}
						got[k] = append(got[k], l.Event.ID)
						if len(l.Event.Body) != 2048 || l.Event.Body[0] != byte(len(got[k])-1) {
							t.Fatalf("key %s delivery %d: body %q... not the one enqueued", k, len(got[k]), l.Event.Body[:2])
						}
					}
				}
				if first && len(ls) != keys+unordered {
					t.Fatalf("first batch: %d leases, want one per key (%d) and every unordered one (%d)", len(ls), keys, unordered)
				}
				first = false
				if err := q.AckAll(ls); err != nil {
					t.Fatalf("ack all: %v", err)
				}
			}
			for k, ids := range want {
				if fmt.Sprint(got[k]) != fmt.Sprint(ids) {
					t.Fatalf("key %s delivered %v, want %v", k, got[k], ids)
				}
			}
			noNext(t, q, "a")
			if s := stats(q, "a"); s != "pending=0 inflight=0 dead=0" {
				t.Fatalf("after the drain: %s", s)
			}
			if lb := q.LiveBytes(); lb != 0 {
				t.Fatalf("live bytes %d after everything was acknowledged together", lb)
			}
		})
	}
}

// TestAckAllSkipsDone: a lease already completed in a batch is skipped (ErrLeaseDone), the
// others are acknowledged; an event delivered to one backend stays until the other's is done.
func TestAckAllSkipsDone(t *testing.T) {
	q := openDisk(t, Options{GCInterval: time.Hour})
	for range 3 {
		enqueue(t, q, newEvent("", "a", "b"))
	}
	ls := nextBatch(t, q, "a", 10)
	if len(ls) != 3 {
		t.Fatalf("%d leases, want 3", len(ls))
	}
	ack(t, q, ls[1])
	if err := q.AckAll(ls); !errors.Is(err, ErrLeaseDone) {
		t.Fatalf("ack all with a completed lease: %v, want ErrLeaseDone", err)
	}
	if s := stats(q, "a"); s != "pending=0 inflight=0 dead=0" {
		t.Fatalf("backend a: %s", s)
	}
	if q.LiveBytes() == 0 {
		t.Fatal("events still pending for backend b were counted as gone")
	}
	lb := nextBatch(t, q, "b", 10)
	if len(lb) != 3 || lb[0].Event == nil || string(lb[0].Event.Body) != `{"hello":"world"}` {
		t.Fatalf("backend b: %d leases, want the 3 events whole", len(lb))
	}
	if err := q.AckAll(lb); err != nil {
		t.Fatal(err)
	}
	if lbytes := q.LiveBytes(); lbytes != 0 {
		t.Fatalf("live bytes %d after both backends acknowledged", lbytes)
	}
}

// TestNextBatchReadsFromDisk leases a batch whose events are read back from Badger after a
// restart (by walking an iterator): every event comes back whole and in id order, also where its
// neighbours or the first of the batch are gone; a delivery whose event record is missing is
// dead-lettered, not handed out.
func TestNextBatchReadsFromDisk(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir})
	var ids []string
	for i := range 40 {
		ev := newEvent(fmt.Sprintf("k%d", i), "crm")
		ev.Body = []byte(fmt.Sprintf(`{"n":%d}`, i))
		ids = append(ids, enqueue(t, q, ev))
	}
	q.Close()
	q = openDisk(t, Options{Dir: dir})
	// Remove the events of deliveries 0, 7, 8, 9 and 30 behind the scheduler's back.
	gone := map[int]bool{0: true, 7: true, 8: true, 9: true, 30: true}
	if err := q.db.Update(func(txn *badger.Txn) error {
		for i := range gone {
			if err := txn.Delete(eventKey(ids[i])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ls := nextBatch(t, q, "crm", 40)
	var want []string
	for i, id := range ids {
		if !gone[i] {
			want = append(want, id)
		}
	}
	if len(ls) != len(want) {
		t.Fatalf("leased %d deliveries, want %d", len(ls), len(want))
	}
	for i, l := range ls {
		n := slices.Index(ids, want[i])
		if l.Event.ID != want[i] || string(l.Event.Body) != fmt.Sprintf(`{"n":%d}`, n) || l.Event.OrderKey != fmt.Sprintf("k%d", n) {
			t.Fatalf("lease %d: event %q body %q key %q, want %q body {\"n\":%d}", i, l.Event.ID, l.Event.Body, l.Event.OrderKey, want[i], n)
		}
	}
	dead, err := q.DeadLetters("crm", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(gone) {
		t.Fatalf("%d dead letters, want %d (the deliveries whose events are gone)", len(dead), len(gone))
	}
	for _, d := range dead {
		if n := slices.Index(ids, d.EventID); !gone[n] || !strings.Contains(d.LastError, "unreadable") {
			t.Fatalf("dead letter %+v: not one whose event is gone", d)
		}
	}
	if err := q.AckAll(ls); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDrainBacklog: a backlog of 1 KB events from 4096 senders, already on disk, drained by
// 16 workers, one lease at a time (Next, Ack) or in batches of up to 128 (NextBatch, AckAll),
// as the HTTP and bus deliverers do. The figure is the queue's own cost of a drain.
// BenchmarkDrainBacklog measures the queue's own cost of draining a backlog: sixty-four writers
// enqueue b.N 1 KB events, then sixteen workers lease and acknowledge them. "reopened" closes and
// opens the queue in between, so every event is read back from Badger, as after a restart or
// past the scheduler's window.
func BenchmarkDrainBacklog(b *testing.B) {
	for _, c := range []struct {
		batch    int
		reopened bool
	}{{1, false}, {128, false}, {128, true}} {
		name := fmt.Sprintf("batch=%d", c.batch)
		if c.reopened {
			name += "/reopened"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			q, err := Open(Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { q.Close() }()
			body := bytes.Repeat([]byte("x"), 1024)
			header := map[string][]string{"Content-Type": {"application/json"}}
			var wg sync.WaitGroup
			var seq atomic.Int64
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := seq.Add(1)
						if i > int64(b.N) {
							return
						}
						ev := &Event{Channel: "meta", Provider: "meta", OrderKey: fmt.Sprintf("s-%d", i%4096),
							Method: "POST", Header: header, Body: body, Backends: []string{"crm"}}
						if _, err := q.Enqueue(context.Background(), ev, 0); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if c.reopened {
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
				if q, err = Open(Options{Dir: dir}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var done atomic.Int64
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for done.Load() < int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						ls, err := q.NextBatch(ctx, "crm", c.batch)
						cancel()
						if err != nil {
							continue
						}
						if c.batch == 1 {
							err = q.Ack(ls[0])
						} else {
							err = q.AckAll(ls)
						}
						if err != nil {
							b.Error(err)
							return
						}
						done.Add(int64(len(ls)))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
