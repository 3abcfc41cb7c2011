package queue

import (
	"bytes"
	"container/heap"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// item is one pending delivery held in a backend's window.
type item struct {
	id       string
	rec      *record // persisted state; replaced, never mutated, after a write
	due      time.Time
	ks       *keyState // nil when unordered
	leased   bool
	early    bool // streamed in by refill before its Enqueue or Replay hook ran
	readyIdx int  // index in sched.ready, -1 when not in it
	// ev is the event as enqueued, kept for small events so the first
	// lease does not read back what was just written; nil = read from disk.
	ev *Event
	// cost is what the event's record added to the live bytes, once known (at Enqueue or when
	// a lease read it); 0 = unknown. Completing the event then needs no read.
	cost int64
}

// started reports whether the delivery has recorded attempts: it then holds its order key.
func (it *item) started() bool { return it.rec.Attempts > 0 }

// pinned items are never evicted from the window: they are leased, or they hold their key.
func (it *item) pinned() bool { return it.leased || it.started() }

// keyState is one order key of one backend: its pending deliveries in the window, sorted by id.
type keyState struct {
	name     string
	items    []*item
	nStarted int
	leased   *item
	heaped   *item // the item of this key currently in the ready heap
}

// eligible is the key's next delivery: none while one is leased, else the one that has been
// attempted (it holds the key), else the earliest.
func (ks *keyState) eligible() *item {
	if ks.leased != nil || len(ks.items) == 0 {
		return nil
	}
	if ks.nStarted > 0 {
		for _, it := range ks.items {
			if it.started() {
				return it
			}
		}
	}
	return ks.items[0]
}

// sched is the delivery scheduler of one backend.
//
// The window holds every pending delivery whose id is below bound (all of them when complete),
// plus pinned deliveries above it; deliveries at or above bound that are not in memory are
// streamed from Badger by refill in id (arrival) order. Because the window is a prefix in
// arrival order, a key's earliest pending delivery is always in memory when any of its later
// ones is, which is what per-key ordering needs.
type sched struct {
	q    *Queue
	name string

	mu       sync.Mutex
	items    map[string]*item
	keys     map[string]*keyState
	ready    readyHeap // eligible deliveries not leased, by (due, id)
	complete bool
	bound    string
	changed  chan struct{}

	// replaying holds ids of replays committed whose hook has not run yet; earlyDone holds ids
	// of early items completed (acknowledged or dead) before their hook ran, so the hook does
	// not bring them back.
	replaying map[string]struct{}
	earlyDone map[string]struct{}

	pending int // every pending delivery of the backend (window + disk), leased included
	leased  int
	dead    int

	// winLen is len(items), read without mu by the committer (Queue.keepingUp).
	winLen atomic.Int32
}

func newSched(q *Queue, name string) *sched {
	return &sched{q: q, name: name, items: map[string]*item{}, keys: map[string]*keyState{},
		changed: make(chan struct{}), complete: true,
		replaying: map[string]struct{}{}, earlyDone: map[string]struct{}{}}
}

// broadcast wakes every Next waiting on this backend. Callers hold mu.
func (s *sched) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// add puts a delivery into the window. Callers hold mu.
func (s *sched) add(id string, rec *record) *item {
	it := &item{id: id, rec: rec, due: rec.Due, readyIdx: -1}
	s.items[id] = it
	s.winLen.Store(int32(len(s.items)))
	if rec.OrderKey == "" {
		heap.Push(&s.ready, it)
		return it
	}
	ks := s.keys[rec.OrderKey]
	if ks == nil {
		ks = &keyState{name: rec.OrderKey}
		s.keys[rec.OrderKey] = ks
	}
	it.ks = ks
	i := sort.Search(len(ks.items), func(i int) bool { return ks.items[i].id > id })
	ks.items = append(ks.items, nil)
	copy(ks.items[i+1:], ks.items[i:])
	ks.items[i] = it
	if it.started() {
		ks.nStarted++
	}
	s.updateKey(ks)
	return it
}

// remove takes a delivery out of the window. Callers hold mu.
func (s *sched) remove(it *item) {
	delete(s.items, it.id)
	s.winLen.Store(int32(len(s.items)))
	if it.readyIdx >= 0 {
		heap.Remove(&s.ready, it.readyIdx)
	}
	ks := it.ks
	if ks == nil {
		return
	}
	for i, x := range ks.items {
		if x == it {
			ks.items = append(ks.items[:i], ks.items[i+1:]...)
			break
		}
	}
	if it.started() {
		ks.nStarted--
	}
	if ks.leased == it {
		ks.leased = nil
	}
	if ks.heaped == it {
		ks.heaped = nil
	}
	if len(ks.items) == 0 {
		delete(s.keys, ks.name)
		return
	}
	s.updateKey(ks)
}

// removeDone removes a delivery that was acknowledged or dead-lettered. Callers hold mu.
func (s *sched) removeDone(it *item) {
	s.remove(it)
	if it.early {
		s.earlyDone[it.id] = struct{}{}
	}
}

// updateKey makes the ready heap hold exactly the key's eligible delivery. Callers hold mu.
func (s *sched) updateKey(ks *keyState) {
	e := ks.eligible()
	if e == ks.heaped {
		if e != nil && e.readyIdx >= 0 {
			heap.Fix(&s.ready, e.readyIdx)
		}
		return
	}
	if ks.heaped != nil && ks.heaped.readyIdx >= 0 {
		heap.Remove(&s.ready, ks.heaped.readyIdx)
	}
	ks.heaped = e
	if e != nil {
		heap.Push(&s.ready, e)
	}
}

// setRecord replaces an item's persisted state, keeping the key's started count. Callers hold mu.
func (s *sched) setRecord(it *item, rec *record) {
	if it.ks != nil {
		if it.started() {
			it.ks.nStarted--
		}
		if rec.Attempts > 0 {
			it.ks.nStarted++
		}
	}
	it.rec = rec
}

// lease marks it as leased. Callers hold mu.
func (s *sched) lease(it *item) {
	it.leased = true
	s.leased++
	if it.readyIdx >= 0 {
		heap.Remove(&s.ready, it.readyIdx)
	}
	if it.ks != nil {
		it.ks.leased = it
		it.ks.heaped = nil
		s.updateKey(it.ks)
	}
}

// unlease returns a leased item to the scheduler, due at due. Callers hold mu.
func (s *sched) unlease(it *item, due time.Time) {
	it.leased = false
	s.leased--
	it.due = due
	if it.ks != nil {
		it.ks.leased = nil
		s.updateKey(it.ks)
	} else {
		heap.Push(&s.ready, it)
	}
	s.broadcast()
}

// enqueued is called by the committer after a new delivery is durable.
func (s *sched) enqueued(id string, rec *record, ev *Event, cost int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending++
	if len(s.items) >= keepEventsBelow {
		ev = nil // a backlog: the event would wait in memory for nothing
	}
	if it, ok := s.items[id]; ok {
		it.early = false // already streamed in by refill
		it.ev, it.cost = ev, cost
		return
	}
	if _, ok := s.earlyDone[id]; ok {
		delete(s.earlyDone, id) // streamed in, delivered and gone already
		return
	}
	if !s.complete {
		if id >= s.bound {
			return // on disk, streamed in order later
		}
	} else if len(s.items) >= s.q.window {
		s.complete, s.bound = false, id
		return
	}
	it := s.add(id, rec)
	it.ev, it.cost = ev, cost
	s.broadcast()
}

// replayed is called by the committer after a dead letter became pending again.
func (s *sched) replayed(id string, rec *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead--
	s.pending++
	delete(s.replaying, id)
	if it, ok := s.items[id]; ok {
		it.early = false
		return
	}
	if _, ok := s.earlyDone[id]; ok {
		delete(s.earlyDone, id)
		return
	}
	if !s.complete && id >= s.bound {
		return // refill will reach it in its arrival position
	}
	s.add(id, rec)
	s.evict()
	s.broadcast()
}

// evict shrinks the window back to its size by dropping the latest unpinned deliveries; they
// stay on disk and refill streams them in again. Callers hold mu.
func (s *sched) evict() {
	over := len(s.items) - s.q.window
	if over <= 0 {
		return
	}
	var cand []*item
	for _, it := range s.items {
		if !it.pinned() {
			cand = append(cand, it)
		}
	}
	sort.Slice(cand, func(i, j int) bool { return cand[i].id > cand[j].id })
	if over > len(cand) {
		over = len(cand)
	}
	for _, it := range cand[:over] {
		s.remove(it)
		if s.complete || it.id < s.bound {
			s.complete, s.bound = false, it.id
		}
	}
}

// refillChunk bounds how many deliveries one refill loads, so the scheduler's lock is held
// briefly.
const refillChunk = 4096

// needRefill reports whether refill should run: deliveries wait on disk and either nothing is
// ready or a good part of the window is free. Callers hold mu.
func (s *sched) needRefill() bool {
	if s.complete {
		return false
	}
	room := s.q.window - len(s.items)
	if room <= 0 {
		return false
	}
	return s.ready.Len() == 0 || room >= min(s.q.window/4+1, refillChunk)
}

// refill streams pending deliveries from Badger into the window, in id order from bound.
// Callers hold mu.
func (s *sched) refill() error {
	if s.complete {
		return nil
	}
	prefix := backendPrefix(prefixPending, s.name)
	notified := *s.q.notified.Load()
	loaded := 0
	seek := append(append([]byte{}, prefix...), s.bound...)
	// Deliveries still in the overlay are merged in id order with Badger's. The overlay is read
	// before Badger's snapshot is taken, so one moved in between is seen twice (and added once),
	// never missed.
	ov := s.q.ovScan(prefix, seek)
	// take adds one delivery; false when the window is full (bound is then id).
	take := func(id string, value func() ([]byte, error)) (bool, error) {
		if _, ok := s.items[id]; ok {
			return true, nil
		}
		if len(s.items) >= s.q.window || loaded >= refillChunk {
			s.bound = id
			return false, nil
		}
		v, err := value()
		if err != nil {
			return false, err
		}
		rec, err := decodeRecord(v)
		if err != nil {
			return false, err
		}
		it := s.add(id, rec)
		_, replaying := s.replaying[id]
		it.early = id > notified || replaying
		loaded++
		return true, nil
	}
	takeOverlay := func(before []byte) (bool, error) {
		for len(ov) > 0 && (before == nil || bytes.Compare(ov[0].Key, before) < 0) {
			e := ov[0]
			ov = ov[1:]
			if ok, err := take(string(e.Key[len(prefix):]), func() ([]byte, error) { return e.Value, nil }); !ok || err != nil {
				return ok, err
			}
		}
		return true, nil
	}
	err := s.q.view(func(txn *badger.Txn) error {
		// No value prefetching: delivery records are small, inline in the tree and copied once
		// by take; prefetching copied each a second time (7% slower drains of a reopened queue).
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(seek); it.Valid(); it.Next() {
			if ok, err := takeOverlay(it.Item().Key()); !ok || err != nil {
				return err
			}
			item := it.Item()
			ok, err := take(string(item.Key()[len(prefix):]), func() ([]byte, error) { return item.ValueCopy(nil) })
			if !ok || err != nil {
				return err
			}
		}
		if ok, err := takeOverlay(nil); !ok || err != nil {
			return err
		}
		s.complete, s.bound = true, ""
		return nil
	})
	if loaded > 0 {
		s.broadcast()
	}
	return err
}

// readyHeap orders eligible deliveries by due time, then arrival.
type readyHeap struct{ items []*item }

func (h *readyHeap) Len() int { return len(h.items) }
func (h *readyHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.id < b.id
}
func (h *readyHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].readyIdx = i
	h.items[j].readyIdx = j
}
func (h *readyHeap) Push(x any) {
	it := x.(*item)
	it.readyIdx = len(h.items)
	h.items = append(h.items, it)
}
func (h *readyHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	it.readyIdx = -1
	return it
}

// oldest is the window's delivery of the lowest id (the oldest arrival), nil when empty. It
// scans the window: asked for by Stats only, while keeping an index by id cost every add and
// remove a heap operation (3% of a bus drain's CPU). Callers hold mu.
func (s *sched) oldest() *item {
	var o *item
	for id, it := range s.items {
		if o == nil || id < o.id {
			o = it
		}
	}
	return o
}
