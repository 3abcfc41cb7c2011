package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Enqueue stores ev and one pending delivery per backend, and returns once they are synced to
// disk. When dedupeWindow > 0 and ev.ProviderEventID != "", an earlier event of the same
// (Channel, ProviderEventID) stored less than dedupeWindow ago makes ev a duplicate: nothing is
// stored and the result carries the original id. On success ev.ID is set. ctx is honoured only
// until the request is handed to the committer; after that Enqueue waits for the sync, which
// takes milliseconds. Errors: ErrFull, ErrClosed, or a storage error. Small events are kept in
// memory for their first lease: the caller must not modify ev's Body or Header afterwards, and
// leases share one *Event between backends, to be treated as read-only.
func (q *Queue) Enqueue(ctx context.Context, ev *Event, dedupeWindow time.Duration) (EnqueueResult, error) {
	if err := ctx.Err(); err != nil {
		return EnqueueResult{}, err
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = q.clock.Now()
	}
	backends := uniq(ev.Backends)
	for _, b := range backends {
		if b == "" || containsNUL(b) {
			return EnqueueResult{}, fmt.Errorf("queue: enqueue: invalid backend name %q", b)
		}
	}
	if containsNUL(ev.Channel) {
		return EnqueueResult{}, fmt.Errorf("queue: enqueue: invalid channel name %q", ev.Channel)
	}
	stored := *ev
	stored.Backends = backends
	val := encodeEvent(&stored)
	cost := q.eventCost(len(val))
	if err := q.admit(cost); err != nil {
		return EnqueueResult{}, err
	}
	var res EnqueueResult
	o := &op{durable: true}
	o.apply = func(w *writer) error {
		now := q.clock.Now()
		var dk []byte
		if dedupeWindow > 0 && ev.ProviderEventID != "" {
			dk = dedupeKey(ev.Channel, ev.ProviderEventID)
			it, err := w.txn.Get(dk)
			switch {
			case err == nil:
				var orig string
				var created time.Time
				var ok bool
				if err := it.Value(func(v []byte) error {
					orig, created, ok = decodeDedupe(v)
					return nil
				}); err != nil {
					return err
				}
				if ok && now.Sub(created) < dedupeWindow {
					res = EnqueueResult{ID: orig, Duplicate: true}
					return nil
				}
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
		}
		id := q.nextID(now)
		// While its backends keep up, the event is likely delivered before the next checkpoint:
		// its records go to the overlay (the journal makes them durable) instead of Badger.
		set := w.set
		if w.staged != nil && q.keepingUp(backends) {
			set = w.setNew
		}
		if err := set(badger.NewEntry(eventKey(id), val)); err != nil {
			return err
		}
		rec := &record{Due: now, ReceivedAt: ev.ReceivedAt, OrderKey: ev.OrderKey, Channel: ev.Channel,
			Provider: ev.Provider, Backends: backends}
		enc := rec.encode()
		for _, b := range backends {
			if err := set(badger.NewEntry(deliveryKey(prefixPending, b, id), enc)); err != nil {
				return err
			}
		}
		if dk != nil {
			// Badger's TTL uses the wall clock; the age check above uses the queue clock.
			e := badger.NewEntry(dk, encodeDedupe(id, now)).WithTTL(dedupeWindow)
			if err := w.set(e); err != nil {
				return err
			}
		}
		if len(backends) == 0 {
			if err := q.completeEvent(w, id, now, cost); err != nil {
				return err
			}
		}
		res = EnqueueResult{ID: id}
		o.id = id
		q.commits.Add(1)
		q.sizeSince.Add(int64(len(val) + 64*(len(backends)+2)))
		if len(val) >= valueThreshold {
			q.vlogSinceGC.Add(int64(len(val)))
		}
		q.live.Add(cost)
		q.freeSince.Add(cost)
		var kept *Event
		if len(ev.Body) <= keepEventBytes {
			c := *ev
			c.ID, c.Backends = id, backends
			kept = &c
		}
		o.after = func() {
			for _, b := range backends {
				q.sched(b).enqueued(id, rec, kept, cost)
			}
		}
		return nil
	}
	if err := q.submit(ctx, o); err != nil {
		return EnqueueResult{}, wrapErr("enqueue", err)
	}
	if !res.Duplicate {
		ev.ID = res.ID
	}
	return res, nil
}

func uniq(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		dup := false
		for _, t := range out {
			if t == s {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
