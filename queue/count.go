package queue

import (
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Counting the backlog. Open needs to know which backends have deliveries waiting, and streams
// the first of them into each backend's window (loadBackends: one seek per backend). How many
// deliveries and dead letters each backend has, and how many bytes the stored events take, it
// learns by reading every key of the backlog, which takes about a second per million events:
// that runs in the background (countBacklog), so a relay with a large backlog takes callbacks
// and delivers at once. The count reads a snapshot taken in Open before anything else is
// committed; every change committed since has already moved the counters (from 0), so adding
// the snapshot's count makes them exact. Until then the counters are partial: Stats and
// LiveBytes wait for the count, and an idle queue is not reclaimed. Admission by Options.MaxSize
// does not wait while the queue's files (which hold at least the live bytes) are below MaxSize:
// callbacks are taken at once after a restart; only near the limit does it wait for the exact
// count.

// countCheckEvery is how many keys the count reads between looks at whether the queue closes;
// countPageOutEvery how many between asking the kernel to drop the table pages it read (reading
// every key would otherwise leave all the tables of the backlog resident).
const (
	countCheckEvery   = 4096
	countPageOutEvery = 64 << 10
)

// loadBackends creates the scheduler of every backend with pending deliveries or dead letters
// and streams the first window of each backend's pending deliveries in.
func (q *Queue) loadBackends() error {
	err := q.db.View(func(txn *badger.Txn) error {
		for _, prefix := range [][]byte{prefixPending, prefixDead} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Rewind(); it.Valid(); {
				b, _, ok := splitDeliveryKey(it.Item().Key())
				if !ok {
					it.Next()
					continue
				}
				s := q.sched(b)
				if prefix[0] == prefixPending[0] {
					s.complete = false // refill below streams the first window in
				}
				// Past every key of b: backend names hold no NUL, so b's keys sort before
				// prefix + b + "\x01" and any other backend's after it.
				it.Seek(append(append(append([]byte{}, prefix...), b...), 1))
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: open: find backends: %w", err)
	}
	for _, s := range q.allScheds() {
		s.mu.Lock()
		err := s.refill()
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("queue: open: load backend %q: %w", s.name, err)
		}
	}
	return nil
}

var errCountStopped = errors.New("queue closed before the backlog was counted")

// countBacklog counts the pending deliveries and dead letters of every backend and the bytes of
// the stored events in txn (the snapshot Open took), adds them to the counters and closes
// counted. It runs in its own goroutine (q.wg) and stops early when the queue closes.
func (q *Queue) countBacklog(txn *badger.Txn) {
	defer q.wg.Done()
	defer close(q.counted)
	defer txn.Discard()
	if g := q.o.countGate; g != nil {
		select {
		case <-g:
		case <-q.closing:
		}
	}
	start := time.Now()
	pending := map[string]int{}
	dead := map[string]int{}
	var live int64
	n := 0
	stopped := func() bool {
		n++
		if n%countCheckEvery != 0 {
			return false
		}
		if n%countPageOutEvery == 0 {
			q.pageOutTables()
		}
		select {
		case <-q.closing:
			return true
		default:
			return false
		}
	}
	count := func(prefix []byte, fn func(it *badger.Iterator)) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if stopped() {
				return errCountStopped
			}
			fn(it)
		}
		return nil
	}
	deliveries := func(m map[string]int) func(it *badger.Iterator) {
		return func(it *badger.Iterator) {
			if b, _, ok := splitDeliveryKey(it.Item().Key()); ok {
				m[b]++
			}
		}
	}
	err := count(prefixPending, deliveries(pending))
	if err == nil {
		err = count(prefixDead, deliveries(dead))
	}
	if err == nil {
		err = count(prefixEvent, func(it *badger.Iterator) { live += it.Item().ValueSize() })
	}
	q.pageOutTables()
	if errors.Is(err, errCountStopped) {
		return
	}
	if err != nil {
		// Not expected (the snapshot is in memory-mapped files Open has just read); the counters
		// then show only what changed since Open.
		q.log.Error("queue: counting the backlog failed: depth and size figures are low until restart", "err", err)
		return
	}
	total := 0
	for b, c := range pending {
		s := q.sched(b)
		s.mu.Lock()
		s.pending += c
		s.mu.Unlock()
		total += c
	}
	for b, c := range dead {
		s := q.sched(b)
		s.mu.Lock()
		s.dead += c
		s.mu.Unlock()
	}
	q.live.Add(live)
	q.log.Info("queue: backlog counted", "pending", total, "live_bytes", live,
		"duration", time.Since(start).Round(time.Millisecond))
}

// waitCounted returns once the backlog found at Open is counted (or the queue closed).
func (q *Queue) waitCounted() { <-q.counted }

// isCounted reports whether the backlog found at Open is counted.
func (q *Queue) isCounted() bool {
	select {
	case <-q.counted:
		return true
	default:
		return false
	}
}
