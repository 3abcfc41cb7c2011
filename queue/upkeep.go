package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Upkeep in the background: the disk use measured about every second (sizeLoop), value-log
// garbage collection (gcLoop) and the removal of retained events whose time is up (reapLoop).

// Size returns the database's disk use in bytes: the last measurement (taken about every
// second) plus the bytes written since. In InMemory mode it is the estimated size of the stored
// events.
func (q *Queue) Size() int64 {
	if q.o.InMemory {
		return q.live.Load()
	}
	return q.sizeMeasured.Load() + q.sizeSince.Load()
}

func (q *Queue) measureSize() {
	if q.o.InMemory {
		return
	}
	var total int64
	ballast := filepath.Join(q.o.Dir, ballastName)
	_ = filepath.WalkDir(q.o.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == ballast {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			total += diskUsage(fi)
			tightenNew(p, fi)
		}
		return nil
	})
	q.sizeSince.Store(0)
	q.sizeMeasured.Store(total)
}

func (q *Queue) sizeLoop() {
	defer q.wg.Done()
	t := time.NewTicker(time.Second / 4)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case now := <-t.C:
			if !q.o.InMemory {
				q.measureFree()
			}
			if i%4 == 0 {
				q.measureSize()
				q.maybeReclaim(now)
			}
			q.pageOutSealedLogs()
			// At thousands of events per second the value log grows by megabytes a second;
			// waiting for the next GC period would let garbage pile up on disk and in the page
			// cache (value-log files are memory-mapped), so GC is also run once a value-log
			// file's worth has been written, and then retried every 250 ms until it reclaims a
			// file: a file becomes reclaimable only once a compaction has recorded that its
			// events were deleted, and trying right after that keeps fewer files mapped.
			if q.vlogSinceGC.Load() >= valueLogFileSize {
				select {
				case q.gcKick <- struct{}{}:
				default:
				}
			}
		case <-q.closing:
			return
		}
	}
}

// gcLoop runs Badger's value-log GC every interval, repeating while it rewrites files. Writes
// wait while a file is rewritten, so between two rewrites the loop pauses as long as the last
// one took (at most gcMaxPause): a drained backlog leaves dozens of files to reclaim at the next
// period, and rewriting them back to back stopped every commit (deliveries and callbacks alike)
// for seconds.
func (q *Queue) gcLoop(interval time.Duration) {
	defer q.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-q.gcKick:
		case <-q.reclaimKick:
			q.writeMu.Lock()
			if err := q.reclaim(); err != nil {
				q.log.Warn("queue: reclaim space", "err", err)
			}
			q.writeMu.Unlock()
			q.vlogSinceGC.Store(0)
			continue
		case <-q.closing:
			return
		}
		for {
			start := time.Now()
			// Badger's GC rewrite reads the memtable's max version without the lock its writes
			// take (a data race the race detector reports), so no batch is written meanwhile.
			q.writeMu.Lock()
			err := q.db.RunValueLogGC(gcDiscardRatio)
			if err == nil {
				// GC moved the live entries of a file into unsynced writes and deleted the
				// file; those writes are not in the journal, so Badger is synced at once.
				if cerr := q.checkpointAll(); cerr != nil {
					q.log.Error("queue: checkpoint after value-log gc", "err", cerr)
				}
			}
			q.writeMu.Unlock()
			if err == nil {
				q.vlogSinceGC.Store(0)
				pause := time.NewTimer(min(time.Since(start), gcMaxPause))
				select {
				case <-q.closing:
					pause.Stop()
					return
				case <-pause.C:
				}
				continue
			}
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				q.log.Warn("queue: value-log gc", "err", err)
			}
			break
		}
		q.gcRuns.Add(1)
	}
}

// reapLoop deletes retained events whose retention has expired, about every second of the
// queue's clock.
func (q *Queue) reapLoop() {
	defer q.wg.Done()
	for {
		t := q.clock.NewTimer(time.Second)
		select {
		case <-t.C():
		case <-q.closing:
			t.Stop()
			return
		}
		if err := q.reap(); err != nil && !errors.Is(err, ErrClosed) {
			q.log.Warn("queue: delete retained events", "err", err)
		}
	}
}

func (q *Queue) reap() error {
	for {
		n := 0
		o := &op{}
		o.apply = func(w *writer) error {
			now := q.clock.Now()
			var keys [][]byte
			it := w.txn.NewIterator(badger.IteratorOptions{Prefix: prefixRetain})
			for it.Rewind(); it.Valid() && len(keys) < 1000; it.Next() {
				k := it.Item().KeyCopy(nil)
				if len(k) < len(prefixRetain)+8 ||
					int64(binary.BigEndian.Uint64(k[len(prefixRetain):])) > now.UnixNano() {
					break
				}
				keys = append(keys, k)
			}
			it.Close()
			for _, k := range keys {
				if err := w.delete(k); err != nil {
					return err
				}
				if err := q.deleteEvent(w, string(k[len(prefixRetain)+8:]), 0); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		}
		if err := q.submit(context.Background(), o); err != nil {
			return err
		}
		if n < 1000 {
			return nil
		}
	}
}
