package queue

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Handing out deliveries: Next and NextBatch lease what the scheduler (sched.go) allows and
// read the events; Ack, AckAll, Retry, Dead and Release report each lease's outcome.

// Lease is one delivery handed out by Next. Report its outcome with exactly one of Ack, Retry,
// Dead or Release.
type Lease struct {
	// Event is the delivery's event, loaded from the database.
	Event *Event
	// Backend is the backend the delivery goes to.
	Backend string
	// Attempt is the 1-based number of this attempt: recorded attempts + 1. It survives restarts
	// and starts again at 1 after a replay.
	Attempt int
	// FirstAttemptAt is when the first attempt was made (this one if Attempt is 1).
	FirstAttemptAt time.Time
	// LastError is the error recorded by the previous attempt, if any.
	LastError string

	q    *Queue
	s    *sched
	it   *item
	done atomic.Bool
}

// Next blocks until a delivery for backend is due and allowed by the ordering rules, leases it
// and returns it with its event. It returns ctx.Err() when ctx ends and ErrClosed when the queue
// closes.
func (q *Queue) Next(ctx context.Context, backend string) (*Lease, error) {
	ls, err := q.NextBatch(ctx, backend, 1)
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// NextBatch is Next for up to max deliveries: it blocks until at least one is due, then leases
// every due delivery the ordering rules allow, up to max (so at most one per order key), and
// reads their events together. Each lease is reported on its own (Ack, Retry, Dead, Release) or
// with AckAll.
func (q *Queue) NextBatch(ctx context.Context, backend string, max int) ([]*Lease, error) {
	s := q.sched(backend)
	max = cmp.Or(max, 1)
	var its []*item
	for {
		s.mu.Lock()
		if q.isClosed() {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if s.needRefill() {
			if err := s.refill(); err != nil {
				s.mu.Unlock()
				if errors.Is(err, ErrClosed) {
					return nil, err
				}
				q.log.Error("queue: load deliveries", "backend", backend, "err", err)
				return nil, err
			}
		}
		now := q.clock.Now()
		var timer Timer
		its = its[:0]
		for len(its) < max && s.ready.Len() > 0 {
			top := s.ready.items[0]
			if top.due.After(now) {
				if len(its) == 0 {
					timer = q.clock.NewTimer(top.due.Sub(now))
				}
				break
			}
			s.lease(top)
			its = append(its, top)
		}
		if len(its) > 0 {
			s.mu.Unlock()
			ls, err := q.loadLeases(s, its, now)
			if err != nil || len(ls) > 0 {
				return ls, err
			}
			continue // every event was unreadable (dead-lettered)
		}
		changed := s.changed
		s.mu.Unlock()
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil, ctx.Err()
		case <-changed:
		case <-tc:
		case <-q.closing:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (q *Queue) isClosed() bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.closed
}

// loadLeases reads the events of just-leased items: kept in memory, in the overlay, or from
// Badger in one read transaction, in id order. A delivery whose event record is missing or
// damaged is dead-lettered and left out. On a read error every lease is given back.
func (q *Queue) loadLeases(s *sched, its []*item, now time.Time) ([]*Lease, error) {
	ls := make([]*Lease, len(its))
	var disk []int
	var err error
	for i, it := range its {
		l := &Lease{Event: it.ev, Backend: s.name, Attempt: it.rec.Attempts + 1, FirstAttemptAt: it.rec.FirstAttemptAt,
			LastError: it.rec.LastError, q: q, s: s, it: it}
		if l.FirstAttemptAt.IsZero() {
			l.FirstAttemptAt = now
		}
		ls[i] = l
		if l.Event != nil {
			continue
		}
		if v, ok := q.ovGet(eventKey(it.id)); ok {
			if l.Event, err = decodeEvent(it.id, v); err != nil {
				q.deadUnreadable(l, err)
				ls[i] = nil
				continue
			}
			q.noteCost(it, len(v))
			continue
		}
		disk = append(disk, i)
	}
	if len(disk) > 0 {
		sort.Slice(disk, func(a, b int) bool { return its[disk[a]].id < its[disk[b]].id })
		bad := map[int]error{}
		err = q.view(func(txn *badger.Txn) error {
			r := newEventReader(txn, len(disk))
			defer r.close()
			for _, i := range disk {
				it := its[i]
				bi, err := r.get(eventKey(it.id))
				if err == nil {
					err = bi.Value(func(v []byte) error {
						ev, err := decodeEvent(it.id, v)
						if err == nil {
							ls[i].Event = ev
							q.noteCost(it, len(v))
						}
						return err
					})
				}
				if errors.Is(err, badger.ErrKeyNotFound) || errors.Is(err, errCorrupt) {
					bad[i] = err
					continue
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			for _, l := range ls {
				if l != nil {
					q.Release(l)
				}
			}
			return nil, err
		}
		for i, err := range bad {
			q.deadUnreadable(ls[i], err)
			ls[i] = nil
		}
	}
	out := ls[:0]
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// noteCost records the live-bytes cost of an event record of n bytes read for it.
func (q *Queue) noteCost(it *item, n int) {
	if it.cost == 0 {
		it.cost = q.eventCost(n)
	}
}

// deadUnreadable dead-letters a lease whose event record cannot be read.
func (q *Queue) deadUnreadable(l *Lease, err error) {
	it := l.it
	q.log.Error("queue: event record unreadable, delivery dead-lettered", "event_id", it.id,
		"backend", l.s.name, "err", err)
	l.Event = &Event{ID: it.id}
	it.cost = 0
	if derr := q.Dead(l, "event record unreadable: "+err.Error()); derr != nil {
		q.log.Error("queue: cannot dead-letter an unreadable delivery", "event_id", it.id, "err", derr)
	}
}

// finishLease submits the op that completes ls. If it fails while the queue is open, the
// deliveries go back to the scheduler unchanged, so their order keys are not held forever.
func (q *Queue) finishLease(ls []*Lease, o *op) error {
	err := q.submit(context.Background(), o)
	if err != nil && !errors.Is(err, ErrClosed) {
		now := q.clock.Now()
		for _, l := range ls {
			l.s.mu.Lock()
			l.s.unlease(l.it, now)
			l.s.mu.Unlock()
		}
	}
	if err != nil {
		if len(ls) == 1 {
			return wrapErr("complete delivery of "+ls[0].it.id+" to "+ls[0].s.name, err)
		}
		return wrapErr(fmt.Sprintf("complete %d deliveries to %s", len(ls), ls[0].s.name), err)
	}
	return nil
}

// attempted is the delivery's record with this attempt counted and its error.
func (l *Lease) attempted(lastErr string) record {
	rec := *l.it.rec
	rec.Attempts = l.Attempt
	rec.FirstAttemptAt = l.FirstAttemptAt
	rec.LastError = lastErr
	return rec
}

func (q *Queue) takeLease(l *Lease) error {
	if l == nil || l.q != q || !l.done.CompareAndSwap(false, true) {
		return ErrLeaseDone
	}
	return nil
}

// Ack reports the delivery done: it is removed, and the event is removed (or kept for
// Options.Retain) once its last delivery is done. Ack does not wait for an fsync: after a power
// cut, at worst the delivery is made again.
func (q *Queue) Ack(l *Lease) error {
	if err := q.takeLease(l); err != nil {
		return err
	}
	return q.finishLease([]*Lease{l}, q.ackOp([]*Lease{l}))
}

// AckAll is Ack for many leases, recorded together in one commit. Leases already completed are
// skipped (ErrLeaseDone is returned once the others are recorded).
func (q *Queue) AckAll(ls []*Lease) error {
	var taken []*Lease
	var skipped error
	for _, l := range ls {
		if err := q.takeLease(l); err != nil {
			skipped = err
			continue
		}
		taken = append(taken, l)
	}
	if len(taken) == 0 {
		return skipped
	}
	if err := q.finishLease(taken, q.ackOp(taken)); err != nil {
		return err
	}
	return skipped
}

// ackOp is the op that acknowledges ls (taken already).
func (q *Queue) ackOp(ls []*Lease) *op {
	o := &op{}
	o.apply = func(w *writer) error {
		now := q.clock.Now()
		for _, l := range ls {
			s, it := l.s, l.it
			if err := w.delete(deliveryKey(prefixPending, s.name, it.id)); err != nil {
				return err
			}
			if err := q.releaseEvent(w, it.id, it.rec.Backends, s.name, now, it.cost); err != nil {
				return err
			}
		}
		o.after = func() {
			for i := 0; i < len(ls); {
				s := ls[i].s
				s.mu.Lock()
				for ; i < len(ls) && ls[i].s == s; i++ {
					s.removeDone(ls[i].it)
					s.leased--
					s.pending--
				}
				s.broadcast()
				s.mu.Unlock()
			}
		}
		return nil
	}
	return o
}

// Retry records the attempt (persisted: it survives a process crash; it is fsynced with the
// next group commit) and makes the delivery due again at `at`. The delivery keeps its order key
// meanwhile.
func (q *Queue) Retry(l *Lease, at time.Time, lastErr string) error {
	if err := q.takeLease(l); err != nil {
		return err
	}
	s, it := l.s, l.it
	rec := l.attempted(lastErr)
	rec.Due = at
	o := &op{}
	o.apply = func(w *writer) error {
		if err := w.set(badger.NewEntry(deliveryKey(prefixPending, s.name, it.id), rec.encode())); err != nil {
			return err
		}
		o.after = func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.setRecord(it, &rec)
			s.unlease(it, at)
		}
		return nil
	}
	return q.finishLease([]*Lease{l}, o)
}

// Dead records the attempt and turns the delivery into a dead letter, kept until replayed or
// purged. It releases the delivery's order key.
func (q *Queue) Dead(l *Lease, lastErr string) error {
	if err := q.takeLease(l); err != nil {
		return err
	}
	s, it := l.s, l.it
	rec := l.attempted(lastErr)
	rec.DeadAt = q.clock.Now()
	o := &op{}
	o.apply = func(w *writer) error {
		if err := w.delete(deliveryKey(prefixPending, s.name, it.id)); err != nil {
			return err
		}
		if err := w.set(badger.NewEntry(deliveryKey(prefixDead, s.name, it.id), rec.encode())); err != nil {
			return err
		}
		o.after = func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.removeDone(it)
			s.leased--
			s.pending--
			s.dead++
			s.broadcast()
		}
		return nil
	}
	return q.finishLease([]*Lease{l}, o)
}

// Release gives the lease back unchanged (for shutdown): the delivery is due at once and no
// attempt is recorded.
func (q *Queue) Release(l *Lease) {
	if q.takeLease(l) != nil {
		return
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.unlease(l.it, q.clock.Now())
}

// eventReadSeq is the number of events read together from which an eventReader walks an
// iterator instead of looking each one up: a batch's events are nearly always neighbours (ids
// in arrival order), and stepping to the next key costs far less than a lookup, which searches
// every level of the tree again (a quarter of a bus drain's CPU before).
const eventReadSeq = 8

// eventSkip is how many keys an eventReader steps over before it seeks instead.
const eventSkip = 4

// eventReader reads events in increasing id order within one read transaction.
type eventReader struct {
	txn  *badger.Txn
	iter *badger.Iterator
	at   bool // iter has been positioned
}

func newEventReader(txn *badger.Txn, n int) *eventReader {
	r := &eventReader{txn: txn}
	if n >= eventReadSeq {
		r.iter = txn.NewIterator(badger.IteratorOptions{Prefix: prefixEvent})
	}
	return r
}

// get returns the item of key, which must not sort before the previous one asked for.
func (r *eventReader) get(key []byte) (*badger.Item, error) {
	if r.iter == nil {
		return r.txn.Get(key)
	}
	it := r.iter
	if r.at {
		for n := 0; n < eventSkip && it.Valid() && bytes.Compare(it.Item().Key(), key) < 0; n++ {
			it.Next()
		}
	}
	if !r.at || (it.Valid() && bytes.Compare(it.Item().Key(), key) < 0) {
		it.Seek(key)
		r.at = true
	}
	if it.Valid() && bytes.Equal(it.Item().Key(), key) {
		return it.Item(), nil
	}
	return nil, badger.ErrKeyNotFound
}

func (r *eventReader) close() {
	if r.iter != nil {
		r.iter.Close()
	}
}
