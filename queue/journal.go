package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The journal is the queue's redo log. The committer appends every Badger transaction it is
// about to commit to the journal as one record (written with pwrite, not through a memory map),
// and a durable op is acknowledged once the journal file is fdatasynced. Badger itself runs
// without syncs and is made durable only at checkpoints, in the background.
//
// Why: Badger's DB.Sync msyncs its memory-mapped write-ahead log and value-log file, two files
// whose blocks are allocated as they are written, so every sync costs two journal commits of the
// file system and write-protects the pages just written (the next write faults again). The
// journal's two segment files are reused, so after their first pass a sync overwrites blocks
// that already exist: one flush of the disk and no file-system metadata.
//
// Layout: <Dir>/journal/0 and /1, used in turn. Epoch e is written to segment e%2, from offset
// 0, one record after the other:
//
//	crc32c (4) | payload length (4) | epoch (8) | payload
//
// The CRC (Castagnoli) covers everything after itself. A segment's records end at the first
// record whose CRC, epoch or length does not fit: the rest is an older epoch's data or zeros.
// The payload is the transaction's mutations, each
//
//	kind (1: set, 2: delete) | uvarint key length | key | [uvarint value length | value |
//	uvarint expiresAt]        (value and expiry for sets only)
//
// <Dir>/journal/checkpoint holds the last epoch whose records are all durable in Badger (8 bytes
// and their crc32c, replaced by rename). The committer moves to epoch e+1 when segment e%2 is
// full; it may reuse segment (e+1)%2 only once epoch e-1 is checkpointed, and it then asks the
// checkpointer goroutine to checkpoint epoch e: sync Badger (DB.Sync, every memtable log, every
// value-log file written since the last checkpoint, the directory), then record e.
//
// Recovery (Open): the records of the epochs after the checkpoint are applied to Badger again, in
// order. Every Badger write since that checkpoint is in them (a record is written before its
// transaction is committed), so after a process crash the result is the state Badger already had;
// after a power cut it restores whatever of Badger's unsynced writes was lost. Applying a record
// twice is harmless: a mutation sets a key to what it was set to then, and the records that come
// after it set the keys they touch to their later values.
const (
	journalDirName    = "journal"
	journalCheckpoint = "checkpoint"
	// defaultSegmentSize: small segments are reused soon (a reused segment syncs without file
	// system metadata) and keep the checkpoints, which sync Badger's files, small and frequent
	// (about 3 a second at 20k events/s); 32 and 128 MiB gave lower rates and a worse p99.
	defaultSegmentSize = 8 << 20
	recordHeaderSize   = 16

	mutSet    = 1
	mutDelete = 2

	// checkpointRetry is how long the checkpointer waits before trying a failed checkpoint again.
	checkpointRetry = 100 * time.Millisecond
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type journal struct {
	dir     string
	segSize int64
	seg     [2]*os.File

	// epoch and off are the committer's (or, with writeMu held, the value-log GC's).
	epoch uint64
	off   int64
	// dirty marks a segment written since the syncer last synced it.
	dirty [2]atomic.Bool
	// fs makes the syncer's fdatasyncs, through AIO where it is not nil (fdsync_linux.go).
	fs *fdsyncer

	mu    sync.Mutex
	moved *sync.Cond // signalled when cp advances or the checkpointer fails
	cp    uint64     // every record of an epoch ≤ cp is durable in Badger
	cpErr error      // the checkpointer's last failure, until it succeeds again

	// kick asks the checkpointer to checkpoint an epoch; the committer closes it when it exits.
	kick chan uint64

	// cpMu serialises checkpoints (the checkpointer's and checkpointAll's); vlogFrom is the
	// lowest value-log file id that may hold writes not yet synced.
	cpMu     sync.Mutex
	vlogFrom uint64
}

// openJournal opens (creating if needed) the journal of the Badger directory dir.
func openJournal(dir string, segSize int64) (*journal, error) {
	if segSize <= 0 {
		segSize = defaultSegmentSize
	}
	j := &journal{dir: filepath.Join(dir, journalDirName), segSize: segSize, kick: make(chan uint64, 2)}
	j.moved = sync.NewCond(&j.mu)
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, err
	}
	for i := range j.seg {
		f, err := os.OpenFile(filepath.Join(j.dir, strconv.Itoa(i)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			j.close()
			return nil, err
		}
		j.seg[i] = f
	}
	cp, err := j.readCheckpoint()
	if err != nil {
		j.close()
		return nil, err
	}
	j.cp = cp
	return j, syncDir(j.dir)
}

func (j *journal) close() {
	for _, f := range j.seg {
		if f != nil {
			f.Close()
		}
	}
	j.fs.close()
	j.fs = nil
}

// readCheckpoint returns the recorded checkpoint epoch; 0 when there is none or it is unreadable
// (then every record in the segments is applied again, which is safe).
func (j *journal) readCheckpoint() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(j.dir, journalCheckpoint))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, nil
	}
	return binary.BigEndian.Uint64(b), nil
}

// writeCheckpoint records epoch e as checkpointed (if it is later than the recorded one). The
// caller holds cpMu.
func (j *journal) writeCheckpoint(e uint64) error {
	j.mu.Lock()
	if e <= j.cp {
		j.mu.Unlock()
		return nil
	}
	j.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, e)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := filepath.Join(j.dir, journalCheckpoint+".tmp")
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(j.dir, journalCheckpoint)); err != nil {
		return err
	}
	if err := syncDir(j.dir); err != nil {
		return err
	}
	j.mu.Lock()
	j.cp = max(j.cp, e)
	j.cpErr = nil
	j.moved.Broadcast()
	j.mu.Unlock()
	return nil
}

func writeFileSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	return err
}

// appendSet and appendDelete encode one mutation onto a record's payload.
func appendSet(rec []byte, e *badger.Entry) []byte {
	rec = append(rec, mutSet)
	rec = binary.AppendUvarint(rec, uint64(len(e.Key)))
	rec = append(rec, e.Key...)
	rec = binary.AppendUvarint(rec, uint64(len(e.Value)))
	rec = append(rec, e.Value...)
	return binary.AppendUvarint(rec, e.ExpiresAt)
}

func appendDelete(rec []byte, k []byte) []byte {
	rec = append(rec, mutDelete)
	rec = binary.AppendUvarint(rec, uint64(len(k)))
	return append(rec, k...)
}

// write appends rec (recordHeaderSize bytes of room, then the payload) to the current segment,
// moving to the next epoch first when the segment is full. It fails only if the file cannot be
// written or the checkpointer cannot make the next segment free.
func (j *journal) write(rec []byte) error {
	n := int64(len(rec))
	if j.off > 0 && j.off+n > j.segSize {
		if err := j.next(); err != nil {
			return err
		}
	}
	binary.BigEndian.PutUint32(rec[4:], uint32(n-recordHeaderSize))
	binary.BigEndian.PutUint64(rec[8:], j.epoch)
	binary.BigEndian.PutUint32(rec, crc32.Checksum(rec[4:], castagnoli))
	// A record larger than a segment (a batch of very large bodies) is written whole: the
	// segment file grows to hold it.
	if _, err := j.seg[j.epoch%2].WriteAt(rec, j.off); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.dirty[j.epoch%2].Store(true)
	j.off += n
	return nil
}

// next moves to the next epoch, once the segment it reuses holds nothing that is not yet
// checkpointed, and asks the checkpointer to checkpoint the epoch just finished.
func (j *journal) next() error {
	e := j.epoch + 1
	j.mu.Lock()
	for j.cp+2 < e && j.cpErr == nil {
		j.moved.Wait()
	}
	err := j.cpErr
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("journal: checkpoint: %w", err)
	}
	j.kick <- j.epoch
	j.epoch, j.off = e, 0
	return nil
}

// restart moves to the next epoch after the caller has checkpointed everything up to the
// current one (Open, value-log GC, Close).
func (j *journal) restart() {
	j.epoch, j.off = j.epoch+1, 0
}

// sync makes every record written so far durable: the segments written since the last sync
// are fdatasynced. The other one is usually clean, but syncing a clean file is not free (63 µs
// on the 2-core development machine, at hundreds of syncs a second). A record is written, and
// its segment marked, before its op reaches the syncer, so the sync that wakes the op's caller
// sees the mark.
func (j *journal) sync() error {
	for i, f := range j.seg {
		if !j.dirty[i].Swap(false) {
			continue
		}
		if err := j.fs.fdatasync(f); err != nil {
			j.dirty[i].Store(true)
			return fmt.Errorf("journal: sync: %w", err)
		}
	}
	return nil
}

// replay passes the mutations of the records of the epochs after the checkpoint to apply, in
// order, and returns how many records and mutations there were and the last epoch it found.
func (j *journal) replay(apply func(set bool, e *badger.Entry) error) (records, mutations int, last uint64, err error) {
	type seg struct {
		data  []byte
		epoch uint64
	}
	var segs []seg
	for i, f := range j.seg {
		var h [recordHeaderSize]byte
		if _, err := f.ReadAt(h[:], 0); err == nil && binary.BigEndian.Uint64(h[8:]) <= j.cp {
			// Its first record, valid or not, is of no epoch after the checkpoint: nothing in
			// the segment is replayed (the rule below), so it is not read (8 MiB per segment).
			continue
		}
		data, err := io.ReadAll(io.NewSectionReader(f, 0, math.MaxInt64))
		if err != nil {
			return 0, 0, 0, err
		}
		if e, ok := firstEpoch(data); ok && e > j.cp && e%2 == uint64(i) {
			segs = append(segs, seg{data, e})
		}
	}
	if len(segs) == 2 && segs[0].epoch > segs[1].epoch {
		segs[0], segs[1] = segs[1], segs[0]
	}
	last = j.cp
	for _, s := range segs {
		for off := int64(0); ; {
			payload, ok := recordAt(s.data, off, s.epoch)
			if !ok {
				break
			}
			n, err := decodeMutations(payload, apply)
			if err != nil {
				return records, mutations, last, fmt.Errorf("journal: epoch %d record at %d: %w", s.epoch, off, err)
			}
			off += recordHeaderSize + int64(len(payload))
			records++
			mutations += n
		}
		last = s.epoch
	}
	return records, mutations, last, nil
}

func firstEpoch(data []byte) (uint64, bool) {
	if len(data) < recordHeaderSize {
		return 0, false
	}
	e := binary.BigEndian.Uint64(data[8:])
	_, ok := recordAt(data, 0, e)
	return e, ok
}

// recordAt returns the payload of the record at off if it is a valid record of epoch e.
func recordAt(data []byte, off int64, e uint64) ([]byte, bool) {
	if off+recordHeaderSize > int64(len(data)) {
		return nil, false
	}
	h := data[off:]
	n := int64(binary.BigEndian.Uint32(h[4:]))
	if n == 0 || off+recordHeaderSize+n > int64(len(data)) || binary.BigEndian.Uint64(h[8:]) != e {
		return nil, false
	}
	if crc32.Checksum(h[4:recordHeaderSize+n], castagnoli) != binary.BigEndian.Uint32(h) {
		return nil, false
	}
	return h[recordHeaderSize : recordHeaderSize+n], true
}

func decodeMutations(p []byte, apply func(set bool, e *badger.Entry) error) (int, error) {
	n := 0
	for len(p) > 0 {
		kind := p[0]
		p = p[1:]
		key, rest, ok := cutBytes(p)
		if !ok {
			return n, errCorrupt
		}
		p = rest
		switch kind {
		case mutSet:
			val, rest, ok := cutBytes(p)
			if !ok {
				return n, errCorrupt
			}
			exp, m := binary.Uvarint(rest)
			if m <= 0 {
				return n, errCorrupt
			}
			p = rest[m:]
			e := badger.NewEntry(key, val)
			e.ExpiresAt = exp
			if err := apply(true, e); err != nil {
				return n, err
			}
		case mutDelete:
			if err := apply(false, &badger.Entry{Key: key}); err != nil {
				return n, err
			}
		default:
			return n, errCorrupt
		}
		n++
	}
	return n, nil
}

func cutBytes(p []byte) (b, rest []byte, ok bool) {
	l, m := binary.Uvarint(p)
	if m <= 0 || uint64(len(p)-m) < l {
		return nil, nil, false
	}
	return p[m : m+int(l)], p[m+int(l):], true
}

// checkpoint makes everything committed to Badger so far durable and records epoch e as
// checkpointed.
func (q *Queue) checkpoint(e uint64) error {
	q.jr.cpMu.Lock()
	defer q.jr.cpMu.Unlock()
	// What the overlay still holds is not yet in Badger: the epoch's records are durable there
	// only once it is.
	if err := q.ovFlush(); err != nil {
		return err
	}
	if err := q.syncBadger(); err != nil {
		return err
	}
	if err := q.jr.writeCheckpoint(e); err != nil {
		return err
	}
	q.recordKnown()
	return nil
}

// syncBadger makes everything committed to Badger so far durable. DB.Sync syncs only the
// current memtable's log and the current value-log file; without SyncWrites Badger syncs neither
// when it replaces them, so the logs of memtables waiting to be flushed and the value-log files
// written since the last call are synced here too, and the directory (Badger creates memtable
// logs without syncing it).
// The caller holds cpMu.
func (q *Queue) syncBadger() error {
	j := q.jr
	if err := q.db.Sync(); err != nil {
		return err
	}
	ents, err := os.ReadDir(q.o.Dir)
	if err != nil {
		return err
	}
	from := j.vlogFrom
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".vlog") {
			fid, ok := vlogID(name)
			if !ok || fid < from {
				continue
			}
			j.vlogFrom = max(j.vlogFrom, fid)
			if q.known != nil && q.known.synced[name] {
				continue // recorded as known good: synced before, unchanged since (checked.go)
			}
		} else if !strings.HasSuffix(name, ".mem") {
			continue
		}
		if err := syncFile(filepath.Join(q.o.Dir, name)); err != nil {
			return err
		}
	}
	return syncDir(q.o.Dir)
}

// syncFile fsyncs a file by name; one deleted meanwhile needs nothing (Badger deletes a memtable
// log once its table is synced, and a value-log file once GC has moved what was live in it).
func syncFile(name string) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
	}
	return nil
}

// checkpointer checkpoints the epochs the committer finishes, until the committer exits. A
// failed checkpoint is retried; meanwhile a committer needing the segment fails its batch.
func (q *Queue) checkpointer() {
	defer q.wg.Done()
	j := q.jr
	for e := range j.kick {
		for {
			err := q.checkpoint(e)
			if err == nil {
				break
			}
			q.log.Error("queue: checkpoint failed; acknowledgements wait for it", "epoch", e, "err", err)
			j.mu.Lock()
			j.cpErr = err
			j.moved.Broadcast()
			j.mu.Unlock()
			select {
			case <-q.closing:
				// Close checkpoints everything once the committer is done.
			case <-time.After(checkpointRetry):
				continue
			}
			break
		}
	}
}

// checkpointAll makes everything committed so far durable in Badger, records the current epoch
// as checkpointed and starts the next one. The caller holds writeMu (or is Open or Close), so
// no transaction is being written.
func (q *Queue) checkpointAll() error {
	if err := q.checkpoint(q.jr.epoch); err != nil {
		return err
	}
	q.jr.restart()
	return nil
}
