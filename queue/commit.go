package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// op is one request to the committer. apply runs in the committer goroutine against the batch's
// transaction; after (set by apply, may be nil) runs once the batch is committed, and for a
// durable op only once it is also synced, before the caller is woken.
type op struct {
	apply   func(w *writer) error
	after   func()
	durable bool
	id      string // the id of the event an Enqueue stored
	err     error
	done    chan struct{}
}

// writer is the committer's transaction for one batch; it starts a new transaction when the
// current one reaches its budget. With a journal, rec collects the transaction's mutations (after
// room for the record header), written to the journal just before the transaction is committed.
//
// With the overlay (q.ov, see overlay.go), staged holds the batch's changes to it, and own the
// delivery keys the batch has set (true) or deleted (false), which exists answers from first:
// gen is the overlay's move generation when the transaction began; after a move, Badger is read
// outside the transaction, whose snapshot predates the moved entries.
type writer struct {
	q       *Queue
	txn     *badger.Txn
	entries int
	bytes   int
	rec     []byte
	staged  map[string]*stagedOp
	own     map[string]bool
	gen     uint64
}

func newWriter(q *Queue) *writer {
	w := &writer{q: q}
	if q.jr != nil {
		w.rec = make([]byte, recordHeaderSize, 4096)
	}
	if q.ov != nil && q.jr != nil {
		w.staged = map[string]*stagedOp{}
		w.own = map[string]bool{}
	}
	w.begin()
	return w
}

// begin starts the writer's next transaction.
func (w *writer) begin() {
	if w.staged != nil {
		w.gen = w.q.ov.gen.Load()
	}
	w.txn = w.q.db.NewTransaction(true)
	w.entries, w.bytes = 0, 0
}

// maxKeptRecord is the largest journal record buffer a reused writer keeps.
const maxKeptRecord = 1 << 20

// batchWriter returns the committer's writer, reset for a new batch: its record buffer and maps
// are reused from batch to batch (with writeMu held).
func (q *Queue) batchWriter() *writer {
	w := q.bw
	if w == nil || cap(w.rec) > maxKeptRecord {
		w = newWriter(q)
		q.bw = w
		return w
	}
	if w.rec != nil {
		w.rec = w.rec[:recordHeaderSize]
	}
	clear(w.staged)
	clear(w.own)
	w.begin()
	return w
}

// setNew sets a key that did not exist before (a new event's records): with the overlay it goes
// to the journal and the overlay only.
func (w *writer) setNew(e *badger.Entry) error {
	if w.staged == nil {
		return w.set(e)
	}
	k := string(e.Key)
	w.staged[k] = &stagedOp{e: e, isNew: true}
	if isDeliveryKey(e.Key) {
		w.own[k] = true
	}
	w.rec = appendSet(w.rec, e)
	return nil
}

// staging reports whether key k is in the overlay (or staged for it); with the overlay only.
func (w *writer) staging(k []byte) (*stagedOp, bool) {
	if st := w.staged[string(k)]; st != nil {
		return st, true
	}
	in, _ := w.q.ovHas(k)
	return nil, in
}

func (w *writer) set(e *badger.Entry) error {
	if w.staged != nil {
		if isDeliveryKey(e.Key) {
			w.own[string(e.Key)] = true
		}
		if st, in := w.staging(e.Key); in {
			if st == nil {
				w.staged[string(e.Key)] = &stagedOp{e: e}
			} else {
				st.e, st.del = e, false
			}
			w.rec = appendSet(w.rec, e)
			return nil
		}
	}
	w.entries++
	if len(e.Value) < valueThreshold {
		w.bytes += len(e.Key) + len(e.Value)
	} else {
		w.bytes += len(e.Key) + 16
	}
	err := w.txn.SetEntry(e)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.flush(); err == nil {
			err = w.txn.SetEntry(e)
		}
	}
	if err == nil && w.rec != nil {
		w.rec = appendSet(w.rec, e)
	}
	return err
}

func (w *writer) delete(k []byte) error {
	if w.staged != nil {
		if isDeliveryKey(k) {
			w.own[string(k)] = false
		}
		if st, in := w.staging(k); in {
			switch {
			case st == nil:
				w.staged[string(k)] = &stagedOp{e: &badger.Entry{Key: k}, del: true}
			case st.isNew:
				delete(w.staged, string(k)) // never reached the overlay
				if bytes.HasPrefix(k, prefixEvent) {
					w.q.ov.skipped.Add(1)
				}
			default:
				st.e, st.del = &badger.Entry{Key: k}, true
			}
			w.rec = appendDelete(w.rec, k)
			return nil
		}
	}
	w.entries++
	w.bytes += len(k)
	err := w.txn.Delete(k)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.flush(); err == nil {
			err = w.txn.Delete(k)
		}
	}
	if err == nil && w.rec != nil {
		w.rec = appendDelete(w.rec, k)
	}
	return err
}

func (w *writer) exists(k []byte) (bool, error) {
	var err error
	if w.staged != nil {
		if v, ok := w.own[string(k)]; ok {
			return v, nil
		}
		in, gen := w.q.ovHas(k)
		if in {
			return true, nil
		}
		if gen != w.gen {
			// Moved to Badger after this transaction's snapshot was taken.
			err = w.q.db.View(func(txn *badger.Txn) error {
				_, err := txn.Get(k)
				return err
			})
		} else {
			_, err = w.txn.Get(k)
		}
	} else {
		_, err = w.txn.Get(k)
	}
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// full reports whether the transaction should be committed before the next op.
func (w *writer) full() bool {
	return w.entries >= txnBudgetEntries || w.bytes >= txnBudgetBytes
}

// flush commits the current transaction (with the sequence number) and starts a new one.
func (w *writer) flush() error {
	if err := w.commit(); err != nil {
		return err
	}
	w.begin()
	return nil
}

// commit writes the transaction's record to the journal, then commits it to Badger (so Badger
// never holds a write the journal lacks).
func (w *writer) commit() error {
	if w.q.seqDirty {
		e := badger.NewEntry(keySeq, binary.BigEndian.AppendUint64(nil, w.q.seq))
		if err := w.txn.SetEntry(e); err != nil {
			w.txn.Discard()
			return err
		}
		if w.rec != nil {
			w.rec = appendSet(w.rec, e)
		}
		w.q.seqDirty = false
	}
	if len(w.rec) > recordHeaderSize {
		if err := w.q.jr.write(w.rec); err != nil {
			w.txn.Discard()
			return err
		}
		w.rec = w.rec[:recordHeaderSize]
	}
	if err := w.applyStaged(); err != nil {
		w.txn.Discard()
		return err
	}
	return w.txn.Commit()
}

// submit hands o to the committer and waits for it. No lock is held while waiting for room in
// the channel: Close first marks the queue closed, then waits for the senders already past that
// check, and only then stops the committer.
func (q *Queue) submit(ctx context.Context, o *op) error {
	o.done = make(chan struct{})
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		return ErrClosed
	}
	q.senders.Add(1)
	q.mu.RUnlock()
	select {
	case q.ops <- o:
		q.senders.Done()
	case <-ctx.Done():
		q.senders.Done()
		return ctx.Err()
	}
	<-o.done
	return o.err
}

// committer is the only goroutine that writes to the database.
func (q *Queue) committer() {
	defer q.wg.Done()
	defer close(q.toSync)
	if q.jr != nil {
		defer close(q.jr.kick)
	}
	batch := make([]*op, 0, maxBatchOps)
	for {
		var first *op
		select {
		case first = <-q.ops:
		case <-q.closing:
			// Close holds no lock now and no new op can be sent: finish what was queued.
			for {
				select {
				case o := <-q.ops:
					batch = append(batch, o)
					if len(batch) == maxBatchOps {
						q.runBatch(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				q.runBatch(batch)
			}
			return
		}
		batch = append(batch[:0], first)
		// Let the callers the syncer has just woken queue their next requests, so they join
		// this batch instead of waiting for the next one.
		runtime.Gosched()
	drain:
		for len(batch) < maxBatchOps {
			select {
			case o := <-q.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		q.runBatch(batch)
		clear(batch)
		batch = batch[:0]
	}
}

func (q *Queue) runBatch(batch []*op) {
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	w := q.batchWriter()
	for _, o := range batch {
		if w.full() {
			if err := w.flush(); err != nil {
				q.failBatch(batch, err)
				return
			}
		}
		o.err = o.apply(w)
		if o.err != nil {
			o.after = nil
		}
	}
	if err := w.commit(); err != nil {
		q.failBatch(batch, err)
		return
	}
	var durable []*op
	for _, o := range batch {
		if o.durable && o.err == nil {
			durable = append(durable, o)
			continue
		}
		q.finish(o)
	}
	if len(durable) > 0 {
		// The syncer fsyncs while the committer already writes the next batch.
		q.toSync <- durable
	}
}

// syncer fsyncs committed batches, one sync for all batches waiting, and then wakes their
// callers, batch by batch in commit order (so schedulers learn of new deliveries in id order).
func (q *Queue) syncer() {
	defer q.wg.Done()
	var pending [][]*op
	for {
		b, ok := <-q.toSync
		if !ok {
			return
		}
		pending = append(pending[:0], b)
		n := len(b)
		// Linger: under load, waiting a moment lets more commits share the
		// sync, whose cost is mostly fixed.
		// A lone commit waits at most syncLinger; a full batch not at all.
		linger := time.NewTimer(syncLinger)
	drain:
		for n < syncEnough {
			select {
			case b, ok := <-q.toSync:
				if !ok {
					break drain
				}
				pending = append(pending, b)
				n += len(b)
			case <-linger.C:
				break drain
			}
		}
		linger.Stop()
		for {
			select {
			case b, ok := <-q.toSync:
				if ok {
					pending = append(pending, b)
					continue
				}
			default:
			}
			break
		}
		var err error
		if q.jr != nil {
			err = q.jr.sync()
		}
		q.syncs.Add(1)
		for _, b := range pending {
			for _, o := range b {
				if err != nil {
					o.err = err
					o.after = nil
				}
				q.finish(o)
				if o.id != "" {
					// Ids are assigned and their hooks run in the same (increasing) order.
					id := o.id
					q.notified.Store(&id)
				}
			}
		}
		clear(pending)
	}
}

func (q *Queue) finish(o *op) {
	if o.after != nil {
		o.after()
	}
	close(o.done)
}

func (q *Queue) failBatch(batch []*op, err error) {
	q.log.Error("queue: commit failed", "err", err)
	for _, o := range batch {
		if o.err == nil {
			o.err = err
		}
		o.after = nil
		close(o.done)
	}
}
