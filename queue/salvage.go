package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
)

// Salvage copies what can be read of a damaged queue into a fresh one, reading the source
// without changing it. It works below Badger, file by file, so that no damaged file can stop it:
// every key version found in the tables and memtable logs that can be read, every entry of the
// value-log files (skipping damaged stretches), then the journal's records after the checkpoint
// (also skipping damaged ones), newest version winning; a value kept in the value log is read
// from there and checked. Deliveries whose event record could not be read are left out (they are
// counted), and so are deleted and expired keys. When a version's deletion was lost with a
// damaged file, the older version comes back: a delivery made again, which at-least-once allows,
// rather than an event lost.

// SalvageReport counts what Salvage copied and what it could not.
type SalvageReport struct {
	Events, Pending, Dead, Other int // keys written to the new queue
	// LostDeliveries are pending deliveries and dead letters whose event could not be read.
	LostDeliveries int
	// UnreadableValues are keys whose newest value could not be read (damaged value-log entry).
	UnreadableValues int
	// SkippedFiles lists files (or stretches of them) that could not be read.
	SkippedFiles []string
}

type salvVersion struct {
	ts      uint64
	deleted bool
	exp     uint64
	value   []byte // inline value
	ptr     bool   // value is in the value log at fid/off
	fid     uint32
	off     uint32
	journal bool // from the journal: newer than anything in Badger
}

// Salvage reads the queue in src and writes what it can read into a new queue in dst (which
// must not exist or be empty).
func Salvage(src, dst string, log *slog.Logger) (*SalvageReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := lockedElsewhere(src); err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("queue: salvage: %s is not empty", dst)
	}
	rep := &SalvageReport{}
	// Every version found of every key; the newest readable one wins (event records never
	// change, so an older copy of one, say in a value-log file GC had not yet deleted, is as good).
	keys := map[string][]*salvVersion{}
	offer := func(k []byte, v *salvVersion) {
		keys[string(k)] = append(keys[string(k)], v)
	}
	fromMeta := func(key []byte, meta byte, value []byte, exp uint64) {
		v := &salvVersion{ts: y.ParseTs(key), deleted: meta&metaDelete != 0, exp: exp}
		if meta&metaValuePtr != 0 && len(value) >= 12 {
			v.ptr = true
			v.fid = binary.NativeEndian.Uint32(value[0:])
			v.off = binary.NativeEndian.Uint32(value[8:])
		} else {
			v.value = bytes.Clone(value)
		}
		offer(y.ParseKey(key), v)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	vlogFiles := map[uint32]string{}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(src, name)
		switch {
		case strings.HasSuffix(name, ".sst"):
			if err := salvageTable(p, fromMeta); err != nil {
				rep.SkippedFiles = append(rep.SkippedFiles, fmt.Sprintf("%s (%v)", p, err))
			}
		case strings.HasSuffix(name, ".mem"), strings.HasSuffix(name, ".vlog"):
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			isVlog := strings.HasSuffix(name, ".vlog")
			var fid uint64
			if isVlog {
				fid, _ = vlogID(name)
				vlogFiles[uint32(fid)] = p
			}
			skipped := walkLogTolerant(data, func(off int64, e logEntry) {
				if e.meta&(1<<7) != 0 { // end-of-transaction marker
					return
				}
				if isVlog {
					// The entry itself: a candidate whose value is read back from here.
					offer(y.ParseKey(e.key), &salvVersion{ts: y.ParseTs(e.key), deleted: e.meta&metaDelete != 0,
						exp: e.expiresAt, ptr: true, fid: uint32(fid), off: uint32(off)})
					return
				}
				fromMeta(e.key, e.meta, e.value, e.expiresAt)
			})
			if skipped > 0 {
				rep.SkippedFiles = append(rep.SkippedFiles, fmt.Sprintf("%s (%d damaged bytes skipped)", p, skipped))
			}
		}
	}
	// The journal's records after the checkpoint, in epoch order, on top.
	if err := salvageJournal(filepath.Join(src, journalDirName), rep, func(set bool, e *badger.Entry) {
		// Newer than anything in Badger: it replaces the versions found there.
		v := &salvVersion{journal: true, deleted: !set, exp: e.ExpiresAt, value: bytes.Clone(e.Value)}
		keys[string(e.Key)] = []*salvVersion{v}
	}); err != nil {
		return nil, err
	}

	// Resolve and filter.
	now := uint64(time.Now().Unix())
	out := map[string][]byte{}
	exps := map[string]uint64{}
	files := map[uint32]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for k, vs := range keys {
		if strings.HasPrefix(k, "!badger") || k == string(flushMarker) {
			continue
		}
		sort.SliceStable(vs, func(i, j int) bool { return vs[i].ts > vs[j].ts })
		unreadable := false
		for _, v := range vs {
			if v.deleted || (v.exp != 0 && v.exp <= now) {
				break
			}
			val := v.value
			if v.ptr {
				var ok bool
				if val, ok = readVlogValue(files, vlogFiles, v.fid, v.off); !ok {
					unreadable = true
					continue // an older version may still be readable
				}
			}
			out[k] = val
			exps[k] = v.exp
			break
		}
		if _, ok := out[k]; !ok && unreadable {
			rep.UnreadableValues++
		}
	}
	for k := range out {
		if !strings.HasPrefix(k, string(prefixPending)) && !strings.HasPrefix(k, string(prefixDead)) {
			continue
		}
		_, id, ok := splitDeliveryKey([]byte(k))
		if _, have := out[string(eventKey(id))]; !ok || !have {
			delete(out, k)
			rep.LostDeliveries++
		}
	}

	// Write the new queue.
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, err
	}
	db, err := badger.Open(badger.DefaultOptions(dst).WithMemTableSize(memTableSize).
		WithValueThreshold(valueThreshold).WithValueLogFileSize(valueLogFileSize).
		WithCompression(options.None).WithLogger(badgerLogger{l: log}))
	if err != nil {
		return nil, fmt.Errorf("queue: salvage: open %s: %w", dst, err)
	}
	sorted := make([]string, 0, len(out))
	for k := range out {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	wb := db.NewWriteBatch()
	for _, k := range sorted {
		e := badger.NewEntry([]byte(k), out[k])
		e.ExpiresAt = exps[k]
		if err := wb.SetEntry(e); err != nil {
			wb.Cancel()
			db.Close()
			return nil, err
		}
		switch {
		case strings.HasPrefix(k, string(prefixEvent)):
			rep.Events++
		case strings.HasPrefix(k, string(prefixPending)):
			rep.Pending++
		case strings.HasPrefix(k, string(prefixDead)):
			rep.Dead++
		default:
			rep.Other++
		}
	}
	if err := wb.Flush(); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	// Open it as a queue once: it gets its journal, and what was written is checked.
	q, err := Open(Options{Dir: dst, Logger: log, GCInterval: -1})
	if err != nil {
		return nil, fmt.Errorf("queue: salvage: open the new queue: %w", err)
	}
	return rep, q.Close()
}

// walkLogTolerant calls fn for every valid entry of a log file, skipping damaged stretches (it
// looks for the next valid entry after a bad one), and returns how many bytes it skipped.
func walkLogTolerant(data []byte, fn func(off int64, e logEntry)) int64 {
	var skipped int64
	off := int64(logHeaderSize)
	for off < int64(len(data)) {
		if e, ok := decodeLogEntry(data, off); ok {
			fn(off, e)
			off += e.size
			continue
		}
		n := nextEntry(data, off+1)
		if n < 0 {
			break
		}
		skipped += n - off
		off = n
	}
	return skipped
}

func salvageTable(p string, fn func(key []byte, meta byte, value []byte, exp uint64)) (err error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("table unreadable: %v", r)
		}
	}()
	t, err := table.OpenInMemoryTable(data, 1, &table.Options{ChkMode: options.OnBlockRead, Compression: options.None})
	if err != nil {
		return err
	}
	it := t.NewIterator(0)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		vs := it.Value()
		fn(it.Key(), vs.Meta, vs.Value, vs.ExpiresAt)
	}
	return nil
}

// readVlogValue reads and checks the value-log entry at fid/off and returns its value.
func readVlogValue(open map[uint32]*os.File, names map[uint32]string, fid, off uint32) ([]byte, bool) {
	f := open[fid]
	if f == nil {
		name, ok := names[fid]
		if !ok {
			return nil, false
		}
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, false
		}
		open[fid] = f
	}
	head := make([]byte, 32)
	n, _ := f.ReadAt(head, int64(off))
	head = head[:n]
	if len(head) < 6 {
		return nil, false
	}
	i := 2
	kl, m := binary.Uvarint(head[i:])
	if m <= 0 {
		return nil, false
	}
	i += m
	vl, m := binary.Uvarint(head[i:])
	if m <= 0 || vl > 1<<30 {
		return nil, false
	}
	i += m
	_, m = binary.Uvarint(head[i:])
	if m <= 0 {
		return nil, false
	}
	i += m
	buf := make([]byte, uint64(i)+kl+vl+4)
	if _, err := f.ReadAt(buf, int64(off)); err != nil {
		return nil, false
	}
	e, ok := decodeLogEntry(buf, 0)
	if !ok {
		return nil, false
	}
	return e.value, true
}

// salvageJournal passes the mutations of the journal's readable records after the checkpoint to
// apply, epoch by epoch, skipping damaged records.
func salvageJournal(dir string, rep *SalvageReport, apply func(set bool, e *badger.Entry)) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	j := &journal{dir: dir}
	cp, err := j.readCheckpoint()
	if err != nil {
		return err
	}
	type rec struct {
		epoch uint64
		off   int64
		p     []byte
	}
	var recs []rec
	for i := range 2 {
		p := filepath.Join(dir, strconv.Itoa(i))
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for off := int64(0); off+recordHeaderSize <= int64(len(data)); {
			e := binary.BigEndian.Uint64(data[off+8:])
			if e > cp && e%2 == uint64(i) {
				if payload, ok := recordAt(data, off, e); ok {
					recs = append(recs, rec{e, off, payload})
					off += recordHeaderSize + int64(len(payload))
					continue
				}
			}
			off++
		}
	}
	sort.SliceStable(recs, func(a, b int) bool {
		if recs[a].epoch != recs[b].epoch {
			return recs[a].epoch < recs[b].epoch
		}
		return recs[a].off < recs[b].off
	})
	for _, r := range recs {
		if _, err := decodeMutations(r.p, func(set bool, e *badger.Entry) error {
			apply(set, e)
			return nil
		}); err != nil {
			rep.SkippedFiles = append(rep.SkippedFiles, fmt.Sprintf("journal epoch %d record at %d (%v)", r.epoch, r.off, err))
		}
	}
	return nil
}
