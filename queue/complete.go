package queue

import (
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Completing events: when a delivery is acknowledged, dead-lettered or purged, its event is
// deleted (or kept for Options.Retain) once no backend references it any more.

// completeEvent handles an event none of whose deliveries remain: it is deleted, or kept for
// Options.Retain.
func (q *Queue) completeEvent(w *writer, id string, now time.Time, cost int64) error {
	if q.o.Retain > 0 {
		return w.set(badger.NewEntry(retainKey(now.Add(q.o.Retain), id), nil))
	}
	return q.deleteEvent(w, id, cost)
}

// deleteEvent deletes event id. cost, when known (> 0), is what its record added to the live
// bytes (recordCost of the stored value): the record is then known to exist and is not read.
func (q *Queue) deleteEvent(w *writer, id string, cost int64) error {
	k := eventKey(id)
	if cost <= 0 {
		n, ok := w.valueSize(k)
		if !ok {
			return w.delete(k)
		}
		cost = n
	}
	q.live.Add(-cost)
	q.deletes.Add(1)
	return w.delete(k)
}

// referenced reports whether any of backends still has a pending delivery or a dead letter for
// event id, as seen by the committer's transaction. self, when not empty, is a backend whose
// delivery of id the caller has just removed: a backend holds an event's delivery either as
// pending or as a dead letter, never both, so self has neither now and is not looked up.
func referenced(w *writer, id string, backends []string, self string) (bool, error) {
	for _, b := range backends {
		if b == self {
			continue
		}
		for _, p := range [][]byte{prefixPending, prefixDead} {
			ok, err := w.exists(deliveryKey(p, b, id))
			if err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}

// releaseEvent completes event id if nothing references it any more (the caller has already
// deleted its own delivery in this transaction).
func (q *Queue) releaseEvent(w *writer, id string, backends []string, self string, now time.Time, cost int64) error {
	ref, err := referenced(w, id, backends, self)
	if err != nil || ref {
		return err
	}
	return q.completeEvent(w, id, now, cost)
}

// releaseEventNow is releaseEvent without retention, for purges.
func (q *Queue) releaseEventNow(w *writer, id string, backends []string) error {
	ref, err := referenced(w, id, backends, "")
	if err != nil || ref {
		return err
	}
	return q.deleteEvent(w, id, 0)
}
