package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// Disk space. Badger writes its value log and memtable logs through memory maps of files it
// creates sparse: a write to a page with no block behind it on a full file system is a SIGBUS,
// which kills the process. So the queue never lets its own writes reach the end of the disk:
//
//   - Admission: Enqueue refuses (ErrDiskFull, which is an ErrFull) once the free space of the
//     file system, measured with statfs every 250 ms and reduced by what was enqueued since, is
//     below diskReserve. The reserve covers what Badger may still write after admission stops:
//     the rest of the value-log file being written, the memtable logs that acknowledgements and
//     retries fill, and the tables a memtable flush and a compaction write.
//   - Ballast: a file of ballastSize bytes (Dir/reserve) is allocated while there is room. When
//     the free space falls below ballastRelease (another process filling the disk), or at Open
//     when there is less than openNeed free (a restart on a full disk), the ballast is deleted,
//     so Badger can open, deliveries can be acknowledged and the backlog drains, which frees
//     space. It is allocated again once the free space is back above diskReserve + ballastSize.
//   - Live data: "full" against Options.MaxSize is judged on the bytes of the event records
//     stored (LiveBytes), not on Badger's file sizes, which lag behind deletions.
//   - Reclaim: once no delivery is pending and nothing was enqueued for reclaimIdle, the queue
//     flushes Badger's memtables, compacts the tree into one level (dropping deletions and
//     recording which value-log entries are garbage) and runs value-log GC until it finds
//     nothing, so an emptied queue returns to its floor: the journal, the value-log file being
//     written and a few small files.
const (
	diskReserve    = valueLogFileSize + (numMemtables+2)*memTableSize // 36 MiB
	ballastName    = "reserve"
	ballastSize    = 16 << 20
	ballastRelease = 8 << 20
	openNeed       = 16 << 20
	reclaimIdle    = 2 * time.Second
)

// ErrDiskFull is returned by Enqueue when the file system holding the queue has less free
// space than the queue keeps in reserve. errors.Is(err, ErrFull) holds for it.
var ErrDiskFull = fmt.Errorf("%w: not enough free disk space", ErrFull)

// FreeBytes returns the space available to unprivileged users on the file system holding path.
func FreeBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// DiskUsage returns the space the queue directory dir takes on disk, without its ballast file;
// 0 if it does not exist.
func DiskUsage(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == filepath.Join(dir, ballastName) {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			total += diskUsage(fi)
		}
		return nil
	})
	return total
}

// DefaultMaxSize is the MaxSize the relay uses when none is configured: 90% of what the queue
// in dir could occupy, that is the free space of its file system plus what the queue already
// holds (so a restart with a backlog does not find itself "full"), less the disk reserve.
func DefaultMaxSize(dir string) int64 {
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return 0
		}
		probe = parent
	}
	free, err := FreeBytes(probe)
	if err != nil {
		return 0
	}
	usage := DiskUsage(dir)
	if fi, err := os.Stat(filepath.Join(dir, ballastName)); err == nil {
		usage += diskUsage(fi)
	}
	n := int64(float64(free+usage)*0.9) - diskReserve
	return max(n, 1<<20)
}

// LiveBytes returns the size of the event records the queue holds: what Options.MaxSize is
// compared with. After Open it first waits until the backlog is counted.
func (q *Queue) LiveBytes() int64 {
	q.waitCounted()
	return q.live.Load()
}

// MaxSize returns Options.MaxSize (0: no limit).
func (q *Queue) MaxSize() int64 { return q.o.MaxSize }

// recordCost is what an event record of n bytes adds to LiveBytes: the size Badger reports for
// it (Item.ValueSize), so that deleting it subtracts exactly what storing it added.
func recordCost(keyLen, n int, inMem bool) int64 {
	if inMem || n < valueThreshold {
		return int64(n)
	}
	// Badger's ValueSize of a value-log entry: its length less the key (with its 8-byte
	// version), 6 bytes for the header and the CRC.
	h := 2 + uvarintLen(uint64(keyLen+8)) + uvarintLen(uint64(n)) + uvarintLen(0)
	return int64(n + h - 6)
}

// eventCost is recordCost for an event record of n bytes (under its key: the prefix and a
// 32-character id).
func (q *Queue) eventCost(n int) int64 {
	return recordCost(len(prefixEvent)+32, n, q.o.InMemory)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// admit decides whether an event record of n bytes may be stored.
func (q *Queue) admit(n int64) error {
	if q.o.MaxSize > 0 && !q.isCounted() && (q.o.InMemory || q.Size()+n > q.o.MaxSize) {
		// The live bytes are partial until the backlog is counted; the queue's files hold at
		// least them, so only when those come near MaxSize is the exact count needed.
		q.waitCounted()
	}
	if q.o.MaxSize > 0 && q.live.Load()+n > q.o.MaxSize {
		return ErrFull
	}
	if q.o.InMemory || q.freeUnknown.Load() {
		return nil
	}
	if q.freeMeasured.Load()-q.freeSince.Load()-n < diskReserve {
		return ErrDiskFull
	}
	return nil
}

// countLive sums the sizes of the stored event records (at Open, and when an idle queue is
// reclaimed, which corrects any drift).
func (q *Queue) countLive() (int64, error) {
	var total int64
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefixEvent})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			total += it.Item().ValueSize()
		}
		return nil
	})
	return total, err
}

// measureFree takes the free space of the file system, releases the ballast when the disk is
// nearly full, and allocates it again once there is room. sizeLoop only (and Open).
func (q *Queue) measureFree() {
	free, err := FreeBytes(q.o.Dir)
	if err != nil {
		q.freeUnknown.Store(true)
		return
	}
	q.freeUnknown.Store(false)
	q.freeSince.Store(0)
	q.freeMeasured.Store(free)
	ballast := filepath.Join(q.o.Dir, ballastName)
	switch {
	case free < ballastRelease:
		if released, err := releaseBallast(ballast); err != nil {
			q.log.Error("queue: release the reserve file", "err", err)
		} else if released > 0 {
			q.log.Warn("queue: disk nearly full: released the reserve file", "free_bytes", free,
				"released_bytes", released)
			q.freeMeasured.Add(released)
		}
	case free >= diskReserve+2*ballastSize:
		if _, err := os.Stat(ballast); errors.Is(err, fs.ErrNotExist) {
			if err := allocateBallast(ballast); err != nil {
				q.log.Warn("queue: allocate the reserve file", "err", err)
			}
		}
	}
}

// releaseBallast deletes the ballast file and returns the space it held (0 if there was none).
func releaseBallast(name string) (int64, error) {
	fi, err := os.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := os.Remove(name); err != nil {
		return 0, err
	}
	return diskUsage(fi), nil
}

// allocateBallast creates the ballast file with its blocks allocated (fallocate), so deleting it
// frees ballastSize bytes.
func allocateBallast(name string) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = allocate(f, ballastSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// prepareDir creates the queue directory, tightens loose modes of an existing one (directories
// 0700, files 0600: message bodies are in them) and, on a nearly full disk, releases the ballast
// so Badger can open. Run before Badger opens.
func (q *Queue) prepareDir() error {
	dir := q.o.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var fixed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, want); err != nil {
				return err
			}
			fixed = append(fixed, fmt.Sprintf("%s %04o", p, fi.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(fixed) > 0 {
		shown := fixed
		if len(shown) > 5 {
			shown = shown[:5]
		}
		q.log.Warn("queue: files readable by other users: modes tightened to 0700 (directories) and 0600 (files)",
			"count", len(fixed), "first", shown)
	}
	free, err := FreeBytes(dir)
	if err != nil || free >= openNeed {
		return nil
	}
	released, err := releaseBallast(filepath.Join(dir, ballastName))
	if err != nil {
		return err
	}
	if released > 0 {
		q.log.Warn("queue: disk nearly full at start: released the reserve file so the queue can open and drain",
			"free_bytes", free, "released_bytes", released)
		return nil
	}
	if free < 1<<20 {
		return fmt.Errorf("only %d bytes free on the file system of %s and no reserve file to release: free some space", free, dir)
	}
	return nil
}

// tightenNew gives a file Badger created with a loose mode (its files are created 0666 less the
// umask) mode 0600. measureSize calls it for each file.
func tightenNew(p string, fi fs.FileInfo) {
	if fi.Mode().Perm()&0o077 != 0 {
		_ = os.Chmod(p, 0o600)
	}
}

// maybeReclaim starts a reclaim when the queue is idle: no delivery pending, nothing enqueued
// for reclaimIdle, and something deleted since the last reclaim. sizeLoop only.
func (q *Queue) maybeReclaim(now time.Time) {
	if q.o.InMemory || q.o.GCInterval < 0 || !q.isCounted() {
		return
	}
	c := q.commits.Load()
	if c != q.reclaimCommits {
		q.reclaimCommits, q.reclaimQuiet = c, now
		return
	}
	if now.Sub(q.reclaimQuiet) < reclaimIdle || q.deletes.Load() == q.reclaimDeletes {
		return
	}
	for _, s := range q.allScheds() {
		s.mu.Lock()
		p := s.pending
		s.mu.Unlock()
		if p > 0 {
			return
		}
	}
	q.reclaimDeletes = q.deletes.Load()
	select {
	case q.reclaimKick <- struct{}{}:
	default:
	}
}

// flushMarker is a key written only to be dropped: DropPrefix flushes every memtable to a table
// first, which Badger offers no other way to do on an open database.
var flushMarker = []byte("\x00flush")

// reclaim flushes the memtables, compacts the tree into one level and runs value-log GC until it
// finds nothing to rewrite. The caller holds writeMu.
func (q *Queue) reclaim() error {
	before := DiskUsage(q.o.Dir)
	if err := q.db.Update(func(txn *badger.Txn) error { return txn.Set(flushMarker, nil) }); err != nil {
		return err
	}
	if err := q.db.DropPrefix(flushMarker); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := q.db.Flatten(1); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	files := 0
	for {
		err := q.db.RunValueLogGC(gcDiscardRatio)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				return fmt.Errorf("value-log gc: %w", err)
			}
			break
		}
		files++
	}
	if err := q.checkpointAll(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if n, err := q.countLive(); err == nil {
		q.live.Store(n)
	}
	q.measureSize()
	q.log.Info("queue: space reclaimed after the queue emptied", "bytes_before", before,
		"bytes_after", q.Size(), "value_log_files_rewritten", files)
	return nil
}
