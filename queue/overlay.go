package queue

import (
	"bytes"
	"errors"
	"sort"
	"sync"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// The overlay keeps a new event's records out of Badger while they are likely to be deleted
// soon. With a journal, an Enqueue whose backends all keep up (fewer than keepEventsBelow
// deliveries in their windows) writes its event record and pending deliveries to the journal
// only, and to this in-memory map instead of Badger. A delivery acknowledged before the next
// checkpoint deletes them from the map: the event never reaches Badger's value log or LSM tree
// and is never read back from it. Whatever is still in the map at a checkpoint (deliveries not
// yet done) is written to Badger first, then Badger is synced and the epoch recorded, so the
// journal's recovery rule is unchanged: the records after the last checkpoint are applied again
// at Open, which restores the map's contents after a crash (and replays the deletes of what
// was delivered).
//
// Keys in the map are never in Badger at the same time: a checkpoint moves them, under ovMu, in
// one go. Readers look at the map first and at Badger after (see ovGet), so an entry moved in
// between is found in Badger. The committer stages its changes to the map per transaction and
// applies them when the transaction commits (stagedOp); a change to an entry the checkpointer
// moved meanwhile goes to Badger instead.
type overlay struct {
	mu  sync.Mutex
	m   map[string]*badger.Entry
	gen atomic.Uint64 // incremented by every move to Badger
	// skipped counts event records deleted before they reached Badger (metrics, tests).
	skipped atomic.Uint64
}

func newOverlay() *overlay { return &overlay{m: map[string]*badger.Entry{}} }

// stagedOp is a writer's pending change to the overlay: a new entry (isNew), or a change to an
// entry that was in the overlay when the op ran (del: deleted; else replaced by e).
type stagedOp struct {
	e     *badger.Entry
	isNew bool
	del   bool
}

// ovGet returns the value of key if it is in the overlay.
func (q *Queue) ovGet(key []byte) ([]byte, bool) {
	if q.ov == nil {
		return nil, false
	}
	q.ov.mu.Lock()
	e, ok := q.ov.m[string(key)]
	q.ov.mu.Unlock()
	if !ok {
		return nil, false
	}
	return e.Value, true
}

// ovHas reports whether key is in the overlay, and the move generation seen with it.
func (q *Queue) ovHas(key []byte) (bool, uint64) {
	q.ov.mu.Lock()
	_, ok := q.ov.m[string(key)]
	g := q.ov.gen.Load()
	q.ov.mu.Unlock()
	return ok, g
}

// ovScan returns the overlay's entries under prefix whose keys are at or after from, sorted.
func (q *Queue) ovScan(prefix, from []byte) []*badger.Entry {
	if q.ov == nil {
		return nil
	}
	q.ov.mu.Lock()
	var out []*badger.Entry
	for _, e := range q.ov.m {
		if bytes.HasPrefix(e.Key, prefix) && bytes.Compare(e.Key, from) >= 0 {
			out = append(out, e)
		}
	}
	q.ov.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

// ovFlush writes every entry of the overlay to Badger and empties it (a checkpoint, before
// Badger is synced). The caller holds cpMu.
func (q *Queue) ovFlush() error {
	if q.ov == nil {
		return nil
	}
	ov := q.ov
	ov.mu.Lock()
	defer ov.mu.Unlock()
	if len(ov.m) == 0 {
		return nil
	}
	txn := q.db.NewTransaction(true)
	entries, size := 0, 0
	for _, e := range ov.m {
		if entries >= txnBudgetEntries || size >= txnBudgetBytes {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = q.db.NewTransaction(true)
			entries, size = 0, 0
		}
		// A fresh entry: Badger keeps and modifies the entries it is given.
		ne := badger.NewEntry(e.Key, e.Value)
		ne.ExpiresAt = e.ExpiresAt
		if err := setEntry(q, &txn, ne); err != nil {
			txn.Discard()
			return err
		}
		entries++
		if len(e.Value) < valueThreshold {
			size += len(e.Key) + len(e.Value)
		} else {
			size += len(e.Key) + 16
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	clear(ov.m)
	ov.gen.Add(1)
	return nil
}

// setEntry sets e in *txn, committing it and starting another when it is too big.
func setEntry(q *Queue, txn **badger.Txn, e *badger.Entry) error {
	err := (*txn).SetEntry(e)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = (*txn).Commit(); err != nil {
			return err
		}
		*txn = q.db.NewTransaction(true)
		err = (*txn).SetEntry(e)
	}
	return err
}

func deleteKey(q *Queue, txn **badger.Txn, k []byte) error {
	err := (*txn).Delete(k)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = (*txn).Commit(); err != nil {
			return err
		}
		*txn = q.db.NewTransaction(true)
		err = (*txn).Delete(k)
	}
	return err
}

// applyStaged applies a writer's staged overlay changes, just before its transaction commits.
// Changes to entries moved to Badger meanwhile go into the transaction.
func (w *writer) applyStaged() error {
	if len(w.staged) == 0 {
		return nil
	}
	ov := w.q.ov
	ov.mu.Lock()
	defer ov.mu.Unlock()
	for k, st := range w.staged {
		switch {
		case st.isNew:
			ov.m[k] = st.e
		case func() bool { _, ok := ov.m[k]; return ok }():
			if st.del {
				delete(ov.m, k)
				if bytes.HasPrefix(st.e.Key, prefixEvent) {
					ov.skipped.Add(1)
				}
			} else {
				ov.m[k] = st.e
			}
		case st.del:
			if err := deleteKey(w.q, &w.txn, st.e.Key); err != nil {
				return err
			}
		default:
			if err := setEntry(w.q, &w.txn, st.e); err != nil {
				return err
			}
		}
	}
	clear(w.staged)
	return nil
}

// isDeliveryKey reports whether k is a pending delivery or a dead letter (what exists asks).
func isDeliveryKey(k []byte) bool {
	return bytes.HasPrefix(k, prefixPending) || bytes.HasPrefix(k, prefixDead)
}

// keepingUp reports whether every backend keeps up (few deliveries in its window), so that a
// new event's records are likely deleted before the next checkpoint.
func (q *Queue) keepingUp(backends []string) bool {
	for _, b := range backends {
		if q.sched(b).winLen.Load() >= keepEventsBelow {
			return false
		}
	}
	return true
}

// get reads key in the committer's view: the batch's own overlay changes, the overlay, then
// Badger (outside the transaction if the overlay moved entries to Badger since it began).
func (w *writer) get(k []byte) ([]byte, bool, error) {
	if w.staged != nil {
		if st := w.staged[string(k)]; st != nil {
			if st.del {
				return nil, false, nil
			}
			return st.e.Value, true, nil
		}
		ov := w.q.ov
		ov.mu.Lock()
		e, ok := ov.m[string(k)]
		gen := ov.gen.Load()
		ov.mu.Unlock()
		if ok {
			return e.Value, true, nil
		}
		if gen != w.gen {
			var v []byte
			err := w.q.db.View(func(txn *badger.Txn) error {
				it, err := txn.Get(k)
				if err != nil {
					return err
				}
				v, err = it.ValueCopy(nil)
				return err
			})
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil, false, nil
			}
			return v, err == nil, err
		}
	}
	it, err := w.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := it.ValueCopy(nil)
	return v, err == nil, err
}

// valueSize is the size of key's value in the committer's view (as get), without reading it
// from the value log.
func (w *writer) valueSize(k []byte) (int64, bool) {
	if w.staged != nil {
		if st := w.staged[string(k)]; st != nil {
			return int64(len(st.e.Value)), !st.del
		}
		if v, ok := w.q.ovGet(k); ok {
			return int64(len(v)), true
		}
	}
	if it, err := w.txn.Get(k); err == nil {
		return it.ValueSize(), true
	}
	return 0, false
}
