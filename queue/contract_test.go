package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync"
	"testing"
	"time"
)

// TestContractDisk runs the contract suite against the on-disk queue.
func TestContractDisk(t *testing.T) { runContract(t, openDisk) }

// TestContractInMemory runs the contract suite against Badger's in-memory mode.
func TestContractInMemory(t *testing.T) { runContract(t, openMem) }

// runContract is the behaviour every queue configuration must have.
func runContract(t *testing.T, open opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"OldestPending", testOldestPending},
		{"IDs", testIDs},
		{"FanOut", testFanOut},
		{"Ordering", testOrdering},
		{"OrderingConcurrent", testOrderingConcurrent},
		{"ReplayPosition", testReplayPosition},
		{"Dedupe", testDedupe},
		{"DeadLetters", testDeadLetters},
		{"ReplayAllPurgeAll", testReplayAllPurgeAll},
		{"Retain", testRetain},
		{"MaxSize", testMaxSize},
		{"Window", testWindow},
		{"WindowReplay", testWindowReplay},
		{"ReleaseAndLeases", testReleaseAndLeases},
		{"Close", testClose},
		{"LargeBody", testLargeBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// testOldestPending: Stats reports the arrival time of the oldest delivery still pending
// (leased ones included), whatever order the others complete in.
func testOldestPending(t *testing.T, open opener) {
	q := open(t, Options{Clock: NewFakeClock(t0)})
	var evs []*Event
	for i := range 4 {
		ev := newEvent(fmt.Sprintf("k%d", i), "a")
		ev.ReceivedAt = t0.Add(time.Duration(i) * time.Second)
		enqueue(t, q, ev)
		evs = append(evs, ev)
	}
	oldest := func() time.Time { return q.Stats()["a"].OldestReceivedAt }
	ls := nextBatch(t, q, "a", 4)
	ack(t, q, ls[1])
	if got := oldest(); !got.Equal(evs[0].ReceivedAt) {
		t.Fatalf("after acking the second: oldest %v, want %v", got, evs[0].ReceivedAt)
	}
	ack(t, q, ls[0])
	if got := oldest(); !got.Equal(evs[2].ReceivedAt) {
		t.Fatalf("after acking the first two: oldest %v, want %v", got, evs[2].ReceivedAt)
	}
	ack(t, q, ls[3])
	if got := oldest(); !got.Equal(evs[2].ReceivedAt) {
		t.Fatalf("with the third still leased: oldest %v, want %v", got, evs[2].ReceivedAt)
	}
	ack(t, q, ls[2])
	if got := oldest(); !got.IsZero() {
		t.Fatalf("nothing pending: oldest %v, want zero", got)
	}
}

func testRoundTrip(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	ev := newEvent("", "a")
	ev.ReceivedAt = t0.Add(-time.Second)
	ev.ProviderEventID = "wamid.1"
	id := enqueue(t, q, ev)
	if ev.ID != id {
		t.Fatalf("ev.ID = %q, want %q", ev.ID, id)
	}
	if got := stats(q, "a"); got != "pending=1 inflight=0 dead=0" {
		t.Fatalf("stats after enqueue: %s", got)
	}
	if got := q.Stats()["a"].OldestReceivedAt; !got.Equal(ev.ReceivedAt) {
		t.Fatalf("OldestReceivedAt = %v, want %v", got, ev.ReceivedAt)
	}
	l := next(t, q, "a")
	got := l.Event
	if got.ID != id || got.Channel != "meta" || got.Provider != "meta" || got.ProviderEventID != "wamid.1" ||
		got.Method != "POST" || got.Path != "/hooks/meta?x=1" || !bytes.Equal(got.Body, ev.Body) ||
		!got.ReceivedAt.Equal(ev.ReceivedAt) || fmt.Sprint(got.Header) != fmt.Sprint(ev.Header) ||
		fmt.Sprint(got.Backends) != "[a]" {
		t.Fatalf("leased event differs:\n got %+v\nwant %+v", got, ev)
	}
	if l.Attempt != 1 || l.Backend != "a" || !l.FirstAttemptAt.Equal(t0) {
		t.Fatalf("lease: attempt %d backend %s first %v", l.Attempt, l.Backend, l.FirstAttemptAt)
	}
	if got := stats(q, "a"); got != "pending=0 inflight=1 dead=0" {
		t.Fatalf("stats while leased: %s", got)
	}
	if _, _, err := q.Get(id); err != nil {
		t.Fatalf("get while pending: %v", err)
	}
	ack(t, q, l)
	if got := stats(q, "a"); got != "pending=0 inflight=0 dead=0" {
		t.Fatalf("stats after ack: %s", got)
	}
	if !q.Stats()["a"].OldestReceivedAt.IsZero() {
		t.Fatalf("OldestReceivedAt not zero with nothing pending")
	}
	if _, _, err := q.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after ack: %v, want ErrNotFound", err)
	}
	if err := q.Ack(l); !errors.Is(err, ErrLeaseDone) {
		t.Fatalf("second ack: %v, want ErrLeaseDone", err)
	}
	noNext(t, q, "a")
}

func testIDs(t *testing.T, open opener) {
	q := open(t, Options{})
	re := regexp.MustCompile(`^[0-9a-f]{32}$`)
	prev := ""
	seen := map[string]bool{}
	for range 200 {
		id := enqueue(t, q, newEvent("", "a"))
		if !re.MatchString(id) {
			t.Fatalf("id %q is not 32 URL-safe characters", id)
		}
		if id <= prev {
			t.Fatalf("id %q not after %q", id, prev)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if id[16:] != prev[min(16, len(prev)):] && prev != "" {
			t.Fatalf("instance part changed: %q vs %q", id, prev)
		}
		prev = id
	}
	// A second database has another instance id.
	q2 := open(t, Options{})
	id2 := enqueue(t, q2, newEvent("", "a"))
	if id2[16:] == prev[16:] {
		t.Fatalf("two databases share instance id %q", id2[16:])
	}
}

func testFanOut(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	id1 := enqueue(t, q, newEvent("k", "a", "b", "a"))
	id2 := enqueue(t, q, newEvent("k", "a", "b"))
	if got := stats(q, "a") + " " + stats(q, "b"); got != "pending=2 inflight=0 dead=0 pending=2 inflight=0 dead=0" {
		t.Fatalf("stats: %s", got)
	}
	// Backend a fails: its first delivery is retried an hour later and holds key k on a.
	la := next(t, q, "a")
	if la.Event.ID != id1 {
		t.Fatalf("a got %s, want %s", la.Event.ID, id1)
	}
	if err := q.Retry(la, t0.Add(time.Hour), "503"); err != nil {
		t.Fatal(err)
	}
	noNext(t, q, "a")
	// Backend b is not held back.
	for _, want := range []string{id1, id2} {
		lb := next(t, q, "b")
		if lb.Event.ID != want {
			t.Fatalf("b got %s, want %s", lb.Event.ID, want)
		}
		ack(t, q, lb)
	}
	// The event stays while a still owes it.
	if _, _, err := q.Get(id1); err != nil {
		t.Fatalf("get after b acked: %v", err)
	}
	clk.Advance(time.Hour)
	la = next(t, q, "a")
	if la.Event.ID != id1 || la.Attempt != 2 || la.LastError != "503" {
		t.Fatalf("a retry: id %s attempt %d lastErr %q", la.Event.ID, la.Attempt, la.LastError)
	}
	if err := q.Dead(la, "gave up"); err != nil {
		t.Fatal(err)
	}
	la = next(t, q, "a")
	if la.Event.ID != id2 {
		t.Fatalf("a after dead got %s, want %s", la.Event.ID, id2)
	}
	ack(t, q, la)
	if _, dls, err := q.Get(id1); err != nil || len(dls) != 1 || dls[0].Backend != "a" || dls[0].Attempts != 2 {
		t.Fatalf("get dead event: %v %+v", err, dls)
	}
	if _, _, err := q.Get(id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get delivered event: %v", err)
	}
}

func testOrdering(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	k1 := enqueue(t, q, newEvent("K", "a"))
	k2 := enqueue(t, q, newEvent("K", "a"))
	l1 := enqueue(t, q, newEvent("L", "a"))
	k3 := enqueue(t, q, newEvent("K", "a"))
	u1 := enqueue(t, q, newEvent("", "a"))
	u2 := enqueue(t, q, newEvent("", "a"))

	got := func() *Lease { return next(t, q, "a") }
	lk1 := got()
	if lk1.Event.ID != k1 {
		t.Fatalf("first lease %s, want %s", lk1.Event.ID, k1)
	}
	// K is held: L and the unordered ones go, in arrival order, but not k2.
	ll1, lu1, lu2 := got(), got(), got()
	if ll1.Event.ID != l1 || lu1.Event.ID != u1 || lu2.Event.ID != u2 {
		t.Fatalf("leases %s %s %s, want %s %s %s", ll1.Event.ID, lu1.Event.ID, lu2.Event.ID, l1, u1, u2)
	}
	noNext(t, q, "a")
	// A retry keeps the key even while it is not due.
	if err := q.Retry(lk1, t0.Add(time.Minute), "timeout"); err != nil {
		t.Fatal(err)
	}
	noNext(t, q, "a")

	// A waiting Next is woken by the clock.
	type res struct {
		l   *Lease
		err error
	}
	ch := make(chan res, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l, err := q.Next(ctx, "a")
		ch <- res{l, err}
	}()
	waitFor(t, "Next to wait on the clock", func() bool { return clk.Timers() > 0 })
	clk.Advance(time.Minute)
	r := <-ch
	if r.err != nil || r.l.Event.ID != k1 || r.l.Attempt != 2 {
		t.Fatalf("after retry time: %v %+v", r.err, r.l)
	}
	// Dead releases the key to k2, then k3.
	if err := q.Dead(r.l, "bad"); err != nil {
		t.Fatal(err)
	}
	lk2 := got()
	if lk2.Event.ID != k2 {
		t.Fatalf("after dead got %s, want %s", lk2.Event.ID, k2)
	}
	noNext(t, q, "a")
	ack(t, q, lk2)
	if lk3 := got(); lk3.Event.ID != k3 {
		t.Fatalf("got %s, want %s", lk3.Event.ID, k3)
	}
}

// testOrderingConcurrent runs several workers with random outcomes and checks that each key is
// delivered strictly in arrival order, one at a time, and that nothing is lost.
func testOrderingConcurrent(t *testing.T, open opener) {
	q := open(t, Options{Window: 16})
	const n = 300
	keys := []string{"k0", "k1", "k2", "k3", ""}
	want := map[string][]string{}
	var wmu sync.Mutex
	var enq sync.WaitGroup
	enq.Add(1)
	go func() {
		defer enq.Done()
		for i := range n {
			k := keys[i%len(keys)]
			ev := newEvent(k, "a")
			wmu.Lock() // ids are assigned in enqueue order; keep the per-key lists in that order
			res, err := q.Enqueue(context.Background(), ev, 0)
			if err == nil {
				want[k] = append(want[k], res.ID)
			}
			wmu.Unlock()
			if err != nil {
				t.Errorf("enqueue: %v", err)
				return
			}
		}
	}()
	var mu sync.Mutex
	acked := map[string][]string{}
	active := map[string]bool{}
	total := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				l, err := q.Next(ctx, "a")
				if err != nil {
					return
				}
				k := l.Event.OrderKey
				mu.Lock()
				if k != "" && active[k] {
					t.Errorf("two leases at once for key %q", k)
				}
				active[k] = k != ""
				mu.Unlock()
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				mu.Lock()
				active[k] = false
				mu.Unlock()
				if rng.IntN(4) == 0 {
					if err := q.Retry(l, time.Now(), "again"); err != nil {
						t.Errorf("retry: %v", err)
					}
					continue
				}
				mu.Lock()
				acked[k] = append(acked[k], l.Event.ID)
				total++
				done := total == n
				mu.Unlock()
				if err := q.Ack(l); err != nil {
					t.Errorf("ack: %v", err)
				}
				if done {
					cancel()
				}
			}
		}()
	}
	enq.Wait()
	wg.Wait()
	if total != n {
		t.Fatalf("delivered %d of %d", total, n)
	}
	for _, k := range keys[:4] {
		if fmt.Sprint(acked[k]) != fmt.Sprint(want[k]) {
			t.Fatalf("key %s delivered out of order:\n got %v\nwant %v", k, acked[k], want[k])
		}
	}
	if len(acked[""]) != len(want[""]) {
		t.Fatalf("unordered: delivered %d, want %d", len(acked[""]), len(want[""]))
	}
	// Nothing delivered twice, nothing left over, no dead letters (a delivery streamed in before
	// its enqueue hook ran must not come back after it was acknowledged).
	if got := stats(q, "a"); got != "pending=0 inflight=0 dead=0" {
		t.Fatalf("stats at the end: %s", got)
	}
	noNext(t, q, "a")
}

// testReplayPosition: a replayed dead letter goes before later deliveries of its key that have
// not started, and after one that has.
func testReplayPosition(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	e1 := enqueue(t, q, newEvent("K", "a"))
	e2 := enqueue(t, q, newEvent("K", "a"))
	e3 := enqueue(t, q, newEvent("K", "a"))
	e4 := enqueue(t, q, newEvent("K", "a"))
	l := next(t, q, "a")
	if err := q.Dead(l, "400"); err != nil {
		t.Fatal(err)
	}
	l = next(t, q, "a")
	if l.Event.ID != e2 {
		t.Fatalf("got %s, want %s", l.Event.ID, e2)
	}
	ack(t, q, l)
	if n, err := q.Replay(e1, ""); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	l = next(t, q, "a")
	if l.Event.ID != e1 || l.Attempt != 1 {
		t.Fatalf("after replay got %s attempt %d, want %s attempt 1", l.Event.ID, l.Attempt, e1)
	}
	if err := q.Dead(l, "400 again"); err != nil {
		t.Fatal(err)
	}
	// e3 starts (a retry holds K), then e1 is replayed: e3 keeps the key, e1 goes next, then e4.
	l = next(t, q, "a")
	if l.Event.ID != e3 {
		t.Fatalf("got %s, want %s", l.Event.ID, e3)
	}
	if err := q.Retry(l, t0, "503"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Replay(e1, "a"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{e3, e1, e4} {
		l = next(t, q, "a")
		if l.Event.ID != want {
			t.Fatalf("got %s, want %s", l.Event.ID, want)
		}
		ack(t, q, l)
	}
}

func testDedupe(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	ctx := context.Background()
	mk := func(channel, peid string) *Event {
		ev := newEvent("", "a")
		ev.Channel, ev.ProviderEventID = channel, peid
		return ev
	}
	r1, err := q.Enqueue(ctx, mk("c1", "m1"), time.Hour)
	if err != nil || r1.Duplicate {
		t.Fatalf("first: %+v %v", r1, err)
	}
	dupEv := mk("c1", "m1")
	r2, err := q.Enqueue(ctx, dupEv, time.Hour)
	if err != nil || !r2.Duplicate || r2.ID != r1.ID {
		t.Fatalf("duplicate: %+v %v, want duplicate of %s", r2, err, r1.ID)
	}
	if dupEv.ID != "" {
		t.Fatalf("duplicate event got an id")
	}
	if r, err := q.Enqueue(ctx, mk("c2", "m1"), time.Hour); err != nil || r.Duplicate {
		t.Fatalf("other channel: %+v %v", r, err)
	}
	if r, err := q.Enqueue(ctx, mk("c1", "m1"), 0); err != nil || r.Duplicate {
		t.Fatalf("window 0: %+v %v", r, err)
	}
	if r, err := q.Enqueue(ctx, mk("c1", ""), time.Hour); err != nil || r.Duplicate {
		t.Fatalf("no provider id: %+v %v", r, err)
	}
	if got := stats(q, "a"); got != "pending=4 inflight=0 dead=0" {
		t.Fatalf("stats: %s", got)
	}
	// Still a duplicate after the original was delivered.
	for range 4 {
		ack(t, q, next(t, q, "a"))
	}
	if r, err := q.Enqueue(ctx, mk("c1", "m1"), time.Hour); err != nil || !r.Duplicate || r.ID != r1.ID {
		t.Fatalf("after delivery: %+v %v", r, err)
	}
	// Concurrent duplicates (likely within one group commit) store exactly one event.
	var wg sync.WaitGroup
	results := make([]EnqueueResult, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = q.Enqueue(ctx, mk("c3", "burst"), time.Hour)
		}()
	}
	wg.Wait()
	stored := 0
	for _, r := range results {
		if !r.Duplicate {
			stored++
		}
		if r.ID != results[0].ID {
			t.Fatalf("burst ids differ: %s vs %s", r.ID, results[0].ID)
		}
	}
	if stored != 1 {
		t.Fatalf("burst stored %d events, want 1", stored)
	}
	// Past the window it is new again.
	clk.Advance(time.Hour + time.Second)
	if r, err := q.Enqueue(ctx, mk("c1", "m1"), time.Hour); err != nil || r.Duplicate {
		t.Fatalf("after window: %+v %v", r, err)
	}
}

func testDeadLetters(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	id1 := enqueue(t, q, newEvent("", "a", "b"))
	id2 := enqueue(t, q, newEvent("", "a"))
	for range 2 {
		l := next(t, q, "a")
		if err := q.Retry(l, t0.Add(time.Second), "first"); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Second)
	for range 2 {
		l := next(t, q, "a")
		if l.Attempt != 2 {
			t.Fatalf("attempt %d, want 2", l.Attempt)
		}
		if err := q.Dead(l, "410 gone "+l.Event.ID); err != nil {
			t.Fatal(err)
		}
	}
	lb := next(t, q, "b")
	if err := q.Dead(lb, "404"); err != nil {
		t.Fatal(err)
	}
	if got := stats(q, "a") + " " + stats(q, "b"); got != "pending=0 inflight=0 dead=2 pending=0 inflight=0 dead=1" {
		t.Fatalf("stats: %s", got)
	}
	dls, err := q.DeadLetters("a", 0)
	if err != nil || len(dls) != 2 {
		t.Fatalf("dead letters a: %v %+v", err, dls)
	}
	d := dls[0]
	if d.EventID != id1 || d.Backend != "a" || d.Channel != "meta" || d.Provider != "meta" || d.Attempts != 2 ||
		d.LastError != "410 gone "+id1 || !d.DeadAt.Equal(t0.Add(time.Second)) || d.ReceivedAt.IsZero() {
		t.Fatalf("dead letter: %+v", d)
	}
	if dls[1].EventID != id2 {
		t.Fatalf("order: %+v", dls)
	}
	all, err := q.DeadLetters("", 0)
	if err != nil || len(all) != 3 || all[0].EventID != id1 || all[1].EventID != id1 || all[2].EventID != id2 {
		t.Fatalf("all dead letters: %v %+v", err, all)
	}
	if lim, _ := q.DeadLetters("", 1); len(lim) != 1 {
		t.Fatalf("limit: %+v", lim)
	}
	ev, evDls, err := q.Get(id1)
	if err != nil || ev.ID != id1 || len(evDls) != 2 {
		t.Fatalf("get: %v %+v", err, evDls)
	}
	// Replay one backend of id1: attempts start again at 1.
	if n, err := q.Replay(id1, "a"); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if got := stats(q, "a"); got != "pending=1 inflight=0 dead=1" {
		t.Fatalf("stats after replay: %s", got)
	}
	l := next(t, q, "a")
	if l.Event.ID != id1 || l.Attempt != 1 || l.LastError != "" {
		t.Fatalf("replayed: %s attempt %d lastErr %q", l.Event.ID, l.Attempt, l.LastError)
	}
	ack(t, q, l)
	if _, err := q.Replay(id1, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay of nothing: %v", err)
	}
	if _, err := q.Replay("nosuchevent", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay unknown: %v", err)
	}
	// Purge b's dead letter of id1: nothing references id1 any more.
	if n, err := q.Purge(id1, ""); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, _, err := q.Get(id1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get purged: %v", err)
	}
	if n, err := q.Purge(id2, "a"); err != nil || n != 1 {
		t.Fatalf("purge id2: %d %v", n, err)
	}
	if got := stats(q, "a") + " " + stats(q, "b"); got != "pending=0 inflight=0 dead=0 pending=0 inflight=0 dead=0" {
		t.Fatalf("stats after purge: %s", got)
	}
	if dls, _ := q.DeadLetters("", 0); len(dls) != 0 {
		t.Fatalf("dead letters left: %+v", dls)
	}
}

func testReplayAllPurgeAll(t *testing.T, open opener) {
	q := open(t, Options{})
	const n = 700 // more than one chunk
	for range n {
		enqueue(t, q, newEvent("", "a", "b"))
	}
	for _, b := range []string{"a", "b"} {
		for range n {
			if err := q.Dead(next(t, q, b), "x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := stats(q, "a"); got != fmt.Sprintf("pending=0 inflight=0 dead=%d", n) {
		t.Fatalf("stats: %s", got)
	}
	if c, err := q.ReplayAll("a"); err != nil || c != n {
		t.Fatalf("replay all a: %d %v", c, err)
	}
	if got := stats(q, "a") + " " + stats(q, "b"); got != fmt.Sprintf("pending=%d inflight=0 dead=0 pending=0 inflight=0 dead=%d", n, n) {
		t.Fatalf("stats after replay all: %s", got)
	}
	for range n {
		ack(t, q, next(t, q, "a"))
	}
	if c, err := q.PurgeAll(""); err != nil || c != n {
		t.Fatalf("purge all: %d %v", c, err)
	}
	if got := stats(q, "b"); got != "pending=0 inflight=0 dead=0" {
		t.Fatalf("stats after purge all: %s", got)
	}
	// Everything is gone, events included.
	err := q.view(func(txn *badgerTxn) error {
		it := txn.NewIterator(badgerIterOpts(prefixEvent))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			return fmt.Errorf("event %s left behind", it.Item().Key())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testRetain(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk, Retain: time.Hour})
	id := enqueue(t, q, newEvent("", "a"))
	ack(t, q, next(t, q, "a"))
	ev, dls, err := q.Get(id)
	if err != nil || ev.ID != id || len(dls) != 0 {
		t.Fatalf("get retained: %v %+v", err, dls)
	}
	clk.Advance(30 * time.Minute)
	if _, _, err := q.Get(id); err != nil {
		t.Fatalf("get before retention ends: %v", err)
	}
	clk.Advance(31 * time.Minute)
	waitFor(t, "retained event to be deleted", func() bool {
		clk.Advance(time.Second) // time goes on while the reaper sleeps on the clock
		_, _, err := q.Get(id)
		return errors.Is(err, ErrNotFound)
	})
}

func testMaxSize(t *testing.T, open opener) {
	q := open(t, Options{MaxSize: 1 << 20})
	body := bytes.Repeat([]byte("x"), 64<<10)
	full := false
	for i := 0; i < 200 && !full; i++ {
		ev := newEvent("", "a")
		ev.Body = body
		_, err := q.Enqueue(context.Background(), ev, 0)
		switch {
		case errors.Is(err, ErrFull):
			full = true
		case err != nil:
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatalf("no ErrFull after 12 MB with MaxSize 1 MB (size %d)", q.Size())
	}
	if q.LiveBytes() < 1<<20-64<<10 {
		t.Fatalf("live bytes %d under MaxSize when full", q.LiveBytes())
	}
}

// testWindow: with a window of 4, many pending deliveries stream from disk in order while new
// ones keep arriving, and no more than the window is ever held in memory.
func testWindow(t *testing.T, open opener) {
	const window = 4
	q := open(t, Options{Window: window})
	keys := []string{"x", "y", "z", ""}
	want := map[string][]string{}
	add := func(i int) {
		k := keys[i%len(keys)]
		want[k] = append(want[k], enqueue(t, q, newEvent(k, "a")))
	}
	for i := range 60 {
		add(i)
	}
	s := q.sched("a")
	inMemory := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.items)
	}
	if n := inMemory(); n > window {
		t.Fatalf("%d deliveries in memory, window %d", n, window)
	}
	got := map[string][]string{}
	for i, leases := 0, 0; i < 120; leases++ {
		if leases < 60 {
			add(60 + leases) // keep enqueuing while draining
		}
		l := next(t, q, "a")
		if n := inMemory(); n > window {
			t.Fatalf("%d deliveries in memory, window %d", n, window)
		}
		if leases%7 == 3 {
			if err := q.Retry(l, time.Now(), "again"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		k := l.Event.OrderKey
		got[k] = append(got[k], l.Event.ID)
		ack(t, q, l)
		i++
	}
	for _, k := range keys[:3] {
		if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
			t.Fatalf("key %q:\n got %v\nwant %v", k, got[k], want[k])
		}
	}
	// Unordered deliveries may overtake each other (a retried one goes later), but none is lost.
	if g, w := sorted(got[""]), sorted(want[""]); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("unordered:\n got %v\nwant %v", g, w)
	}
	if st := q.Stats()["a"]; st.Pending != 0 || st.InFlight != 0 {
		t.Fatalf("left: %+v", st)
	}
}

// testWindowReplay: replaying dead letters into a full window keeps per-key order and loses
// nothing.
func testWindowReplay(t *testing.T, open opener) {
	q := open(t, Options{Window: 3})
	var dead []string
	for range 6 {
		id := enqueue(t, q, newEvent("k", "a"))
		if err := q.Dead(next(t, q, "a"), "x"); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, id)
	}
	var later []string
	for range 10 {
		later = append(later, enqueue(t, q, newEvent("k", "a")))
	}
	if n, err := q.ReplayAll("a"); err != nil || n != 6 {
		t.Fatalf("replay all: %d %v", n, err)
	}
	s := q.sched("a")
	s.mu.Lock()
	n := len(s.items)
	s.mu.Unlock()
	if n > 3 {
		t.Fatalf("%d in memory, window 3", n)
	}
	want := append(append([]string{}, dead...), later...)
	for i, w := range want {
		l := next(t, q, "a")
		if l.Event.ID != w {
			t.Fatalf("delivery %d: got %s, want %s", i, l.Event.ID, w)
		}
		ack(t, q, l)
	}
	noNext(t, q, "a")
}

func testReleaseAndLeases(t *testing.T, open opener) {
	clk := NewFakeClock(t0)
	q := open(t, Options{Clock: clk})
	id := enqueue(t, q, newEvent("k", "a"))
	l := next(t, q, "a")
	if err := q.Retry(l, t0, "e"); err != nil {
		t.Fatal(err)
	}
	l = next(t, q, "a")
	q.Release(l)
	q.Release(l) // no effect
	if err := q.Ack(l); !errors.Is(err, ErrLeaseDone) {
		t.Fatalf("ack released lease: %v", err)
	}
	l2 := next(t, q, "a")
	if l2.Event.ID != id || l2.Attempt != 2 {
		t.Fatalf("after release: %s attempt %d", l2.Event.ID, l2.Attempt)
	}
	other := openMem(t, Options{})
	if err := other.Ack(l2); !errors.Is(err, ErrLeaseDone) {
		t.Fatalf("ack on another queue: %v", err)
	}
	ack(t, q, l2)
}

func testClose(t *testing.T, open opener) {
	q := open(t, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(context.Background(), "a")
		errc <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Next(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("next with cancelled ctx: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked next after close: %v", err)
	}
	if _, err := q.Enqueue(context.Background(), newEvent("", "a"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("enqueue after close: %v", err)
	}
	if _, _, err := q.Get("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := q.DeadLetters("", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("dead letters after close: %v", err)
	}
	if _, err := q.ReplayAll(""); !errors.Is(err, ErrClosed) {
		t.Fatalf("replay after close: %v", err)
	}
}

func testLargeBody(t *testing.T, open opener) {
	q := open(t, Options{})
	size := 3 << 20
	if q.o.InMemory {
		size = 900 << 10 // Badger's in-memory mode caps a value at 1 MB
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	ev := newEvent("", "a")
	ev.Body = body
	enqueue(t, q, ev)
	l := next(t, q, "a")
	if !bytes.Equal(l.Event.Body, body) {
		t.Fatal("body differs")
	}
	ack(t, q, l)
}
