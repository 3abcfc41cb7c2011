package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// DeadLetter is one (event, backend) delivery that gave up.
type DeadLetter struct {
	EventID, Backend, Channel, Provider string
	// Attempts is the number of attempts made.
	Attempts int
	// LastError is what the last attempt reported.
	LastError string
	// ReceivedAt is when the event arrived; DeadAt when the delivery gave up.
	ReceivedAt, DeadAt time.Time
}

func deadLetter(backend, id string, r *record) DeadLetter {
	return DeadLetter{EventID: id, Backend: backend, Channel: r.Channel, Provider: r.Provider,
		Attempts: r.Attempts, LastError: r.LastError, ReceivedAt: r.ReceivedAt, DeadAt: r.DeadAt}
}

// BackendStats are one backend's counters.
type BackendStats struct {
	// Pending counts deliveries waiting (not leased), in memory or on disk.
	Pending int
	// InFlight counts leased deliveries.
	InFlight int
	// Dead counts dead letters.
	Dead int
	// OldestReceivedAt is the ReceivedAt of the earliest-arrived undelivered (pending or in
	// flight) delivery; zero if there is none.
	OldestReceivedAt time.Time
}

// Stats returns every known backend's counters. It reads memory only, but after Open it first
// waits until the backlog is counted (count.go).
func (q *Queue) Stats() map[string]BackendStats {
	q.waitCounted()
	out := map[string]BackendStats{}
	for _, s := range q.allScheds() {
		s.mu.Lock()
		st := BackendStats{Pending: s.pending - s.leased, InFlight: s.leased, Dead: s.dead}
		if o := s.oldest(); o != nil {
			st.OldestReceivedAt = o.rec.ReceivedAt
		}
		s.mu.Unlock()
		out[s.name] = st
	}
	return out
}

// DeadLetters lists dead letters of backend ("" = every backend), oldest (earliest arrived)
// first, at most limit of them (limit <= 0 = all).
func (q *Queue) DeadLetters(backend string, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := q.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: backendPrefix(prefixDead, backend), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if backend != "" && limit > 0 && len(out) >= limit {
				break
			}
			b, id, ok := splitDeliveryKey(it.Item().Key())
			if !ok {
				continue
			}
			var r *record
			if err := it.Item().Value(func(v []byte) (err error) {
				r, err = decodeRecord(v)
				return err
			}); err != nil {
				return err
			}
			out = append(out, deadLetter(b, id, r))
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("list dead letters", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].EventID != out[j].EventID {
			return out[i].EventID < out[j].EventID
		}
		return out[i].Backend < out[j].Backend
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Get returns an event (pending, dead-lettered, or delivered and retained) and its dead letters.
// Errors: ErrNotFound, ErrClosed.
func (q *Queue) Get(eventID string) (*Event, []DeadLetter, error) {
	var ev *Event
	var dls []DeadLetter
	// The overlay first, then Badger: an entry moved in between is in Badger.
	if v, ok := q.ovGet(eventKey(eventID)); ok {
		var err error
		if ev, err = decodeEvent(eventID, v); err != nil {
			return nil, nil, wrapErr("get event "+eventID, err)
		}
	}
	err := q.view(func(txn *badger.Txn) error {
		if ev == nil {
			var err error
			ev, err = readEvent(txn, eventID)
			if err != nil {
				return err
			}
		}
		for _, b := range ev.Backends {
			r, err := readRecord(txn, deliveryKey(prefixDead, b, eventID))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			dls = append(dls, deadLetter(b, eventID, r))
		}
		return nil
	})
	if err != nil {
		return nil, nil, wrapErr("get event "+eventID, err)
	}
	return ev, dls, nil
}

func wrapErr(what string, err error) error {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrFull) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("queue: %s: %w", what, err)
}

func readEvent(txn *badger.Txn, id string) (*Event, error) {
	bi, err := txn.Get(eventKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var ev *Event
	err = bi.Value(func(v []byte) error {
		ev, err = decodeEvent(id, v)
		return err
	})
	return ev, err
}

func readRecord(txn *badger.Txn, k []byte) (*record, error) {
	bi, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var r *record
	err = bi.Value(func(v []byte) error {
		r, err = decodeRecord(v)
		return err
	})
	return r, err
}

// deadRef is a dead letter found by a replay or purge.
type deadRef struct {
	backend, id string
	rec         *record
}

// eventDeadLetters finds the dead letters of one event (backend "" = all its backends) in the
// committer's transaction.
func eventDeadLetters(w *writer, eventID, backend string) ([]deadRef, error) {
	backends := []string{backend}
	if backend == "" {
		v, ok, err := w.get(eventKey(eventID))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
		ev, err := decodeEvent(eventID, v)
		if err != nil {
			return nil, err
		}
		backends = ev.Backends
	}
	var out []deadRef
	for _, b := range backends {
		r, err := readRecord(w.txn, deliveryKey(prefixDead, b, eventID))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, deadRef{b, eventID, r})
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// scanDeadLetters returns up to n dead letters of backend ("" = all) in the committer's
// transaction (which sees its own deletions).
func scanDeadLetters(w *writer, backend string, n int) ([]deadRef, error) {
	var out []deadRef
	it := w.txn.NewIterator(badger.IteratorOptions{Prefix: backendPrefix(prefixDead, backend), PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid() && len(out) < n; it.Next() {
		b, id, ok := splitDeliveryKey(it.Item().Key())
		if !ok {
			continue
		}
		var r *record
		if err := it.Item().Value(func(v []byte) (err error) {
			r, err = decodeRecord(v)
			return err
		}); err != nil {
			return nil, err
		}
		out = append(out, deadRef{b, id, r})
	}
	return out, nil
}

// replay turns dead letters back into pending deliveries with no recorded attempts, due now.
func (q *Queue) replay(w *writer, o *op, refs []deadRef) error {
	now := q.clock.Now()
	type done struct {
		backend, id string
		rec         *record
	}
	var moved []done
	for _, d := range refs {
		r := *d.rec
		r.Attempts, r.FirstAttemptAt, r.LastError, r.DeadAt, r.Due = 0, time.Time{}, "", time.Time{}, now
		if err := w.delete(deliveryKey(prefixDead, d.backend, d.id)); err != nil {
			return err
		}
		if err := w.set(badger.NewEntry(deliveryKey(prefixPending, d.backend, d.id), r.encode())); err != nil {
			return err
		}
		moved = append(moved, done{d.backend, d.id, &r})
		s := q.sched(d.backend)
		s.mu.Lock()
		s.replaying[d.id] = struct{}{}
		s.mu.Unlock()
	}
	o.after = func() {
		for _, m := range moved {
			q.sched(m.backend).replayed(m.id, m.rec)
		}
	}
	return nil
}

// purge deletes dead letters, and their events once nothing references them (retention does
// not apply: a purged event is gone).
func (q *Queue) purge(w *writer, o *op, refs []deadRef) error {
	count := map[string]int{}
	for _, d := range refs {
		if err := w.delete(deliveryKey(prefixDead, d.backend, d.id)); err != nil {
			return err
		}
		count[d.backend]++
	}
	seen := map[string]bool{}
	for _, d := range refs {
		if seen[d.id] {
			continue
		}
		seen[d.id] = true
		if err := q.releaseEventNow(w, d.id, d.rec.Backends); err != nil {
			return err
		}
	}
	o.after = func() {
		for b, n := range count {
			s := q.sched(b)
			s.mu.Lock()
			s.dead -= n
			s.mu.Unlock()
		}
	}
	return nil
}

// Replay makes the dead letters of eventID pending again (backend "" = all of its dead letters),
// with their attempt count reset so the next attempt is 1. A replayed delivery re-enters its
// order key in its original arrival position. It returns how many were replayed; ErrNotFound
// when there were none.
func (q *Queue) Replay(eventID, backend string) (int, error) {
	return q.eventDead(eventID, backend, "replay", q.replay)
}

// ReplayAll replays every dead letter of backend ("" = every backend) and returns how many.
func (q *Queue) ReplayAll(backend string) (int, error) {
	return q.allDead(backend, "replay dead letters", q.replay)
}

// Purge deletes the dead letters of eventID (backend "" = all of them), and the event when
// nothing references it any more. It returns how many; ErrNotFound when there were none.
func (q *Queue) Purge(eventID, backend string) (int, error) {
	return q.eventDead(eventID, backend, "purge", q.purge)
}

// eventDead applies fn to the dead letters of eventID (backend "" = all of them) in one durable
// committer op and returns how many there were.
func (q *Queue) eventDead(eventID, backend, what string, fn func(*writer, *op, []deadRef) error) (int, error) {
	n := 0
	o := &op{durable: true}
	o.apply = func(w *writer) error {
		refs, err := eventDeadLetters(w, eventID, backend)
		if err != nil {
			return err
		}
		n = len(refs)
		return fn(w, o, refs)
	}
	if err := q.submit(context.Background(), o); err != nil {
		return 0, wrapErr(what+" "+eventID, err)
	}
	return n, nil
}

// PurgeAll purges every dead letter of backend ("" = every backend) and returns how many.
func (q *Queue) PurgeAll(backend string) (int, error) {
	return q.allDead(backend, "purge dead letters", q.purge)
}

// allDead applies fn to every dead letter of backend, a chunk per committer op so enqueues keep
// flowing meanwhile.
func (q *Queue) allDead(backend, what string, fn func(*writer, *op, []deadRef) error) (int, error) {
	const chunk = 512
	total := 0
	for {
		n := 0
		o := &op{durable: true}
		o.apply = func(w *writer) error {
			refs, err := scanDeadLetters(w, backend, chunk)
			if err != nil {
				return err
			}
			n = len(refs)
			return fn(w, o, refs)
		}
		if err := q.submit(context.Background(), o); err != nil {
			return total, wrapErr(what, err)
		}
		total += n
		if n < chunk {
			return total, nil
		}
	}
}
