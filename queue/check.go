package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"golang.org/x/sys/unix"
)

// Checking the files before Badger opens them. Badger, given damaged files, truncates the last
// value-log file at the first bad entry (silently dropping every entry after it), panics on a
// damaged table, and reads a damaged entry of an older value-log file only when a delivery needs
// it. The journal's replay stops at the first bad record. So Open first reads every file of the
// queue without writing anything (Check) and refuses to start, naming the file, when one is
// damaged; nothing is truncated or deleted. Tables and finished value-log files recorded as known
// good with the same fingerprint are not read again (checked.go). `edgerelay queue check` reads
// every file and prints the same verdict; `edgerelay queue salvage` copies what can be read into
// a fresh queue.
//
// A torn tail is not damage: after a crash the file being written may end with an entry or
// record cut short, followed by zeros or older data. Damage is a bad entry followed by valid
// entries of the same file (value-log and memtable-log files, journal segments of one epoch), a
// bad entry anywhere in a value-log file that Badger had finished (they end exactly at their
// last entry), a table whose checksums do not match, and a MANIFEST record whose checksum does
// not match.

// Problem is one damaged file.
type Problem struct {
	File   string // path
	Offset int64  // where the damage starts (-1: the whole file)
	Detail string
}

func (p Problem) String() string {
	if p.Offset >= 0 {
		return fmt.Sprintf("%s: %s at offset %d", p.File, p.Detail, p.Offset)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Detail)
}

// CheckReport is the verdict of Check.
type CheckReport struct {
	Files int   // files read
	Bytes int64 // bytes read
	// Skipped and SkippedBytes count the files Open did not read because they were recorded as
	// known good (always 0 from Check).
	Skipped      int
	SkippedBytes int64
	Problems     []Problem
	// TornTails lists files that end with an incomplete entry (normal after a crash).
	TornTails []string
}

// CorruptError is returned by Open when Check finds damaged files.
type CorruptError struct {
	Dir      string
	Problems []Problem
}

func (e *CorruptError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "queue: damaged files in %s (nothing was changed; `edgerelay queue check` lists them, `edgerelay queue salvage` copies what can be read into a fresh queue): ", e.Dir)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// ErrInUse is returned by Check when another process has the queue open.
var ErrInUse = errors.New("queue: in use by a running process (Badger's LOCK is held)")

// Check reads every file of the queue directory dir without changing anything and reports the
// damaged ones.
func Check(dir string) (*CheckReport, error) {
	rep, _, err := check(dir, nil)
	return rep, err
}

// check is Check, except that the tables and finished value-log files recorded in known with
// their current fingerprint are not read. It also returns what it learnt of those files.
func check(dir string, known map[string]fingerprint) (*CheckReport, *knownFiles, error) {
	if err := lockedElsewhere(dir); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	rep := &CheckReport{}
	kf := &knownFiles{atOpen: map[string]fingerprint{}, seenAtOpen: map[string]bool{}, synced: map[string]bool{}}
	newest := newestVlog(ents)
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		var probs []Problem
		var torn bool
		finished := skippable(name, newest)
		var before fingerprint
		var stable bool
		if finished {
			kf.seenAtOpen[name] = true
			before, stable = statFingerprint(p)
			if rec, ok := known[name]; ok && stable && rec == before {
				rep.Skipped++
				rep.SkippedBytes += before.size
				kf.atOpen[name] = before
				kf.synced[name] = true
				continue
			}
		} else if strings.HasSuffix(name, ".vlog") {
			kf.seenAtOpen[name] = true
			kf.writing = name
		}
		switch {
		case name == "MANIFEST":
			probs, torn, err = checkManifest(p, rep)
		case strings.HasSuffix(name, ".sst"):
			probs, err = checkTable(p, rep)
		case strings.HasSuffix(name, ".vlog"):
			probs, torn, err = checkLogFile(p, finished, rep)
		case strings.HasSuffix(name, ".mem"):
			probs, torn, err = checkLogFile(p, false, rep)
		default:
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		rep.Problems = append(rep.Problems, probs...)
		if torn {
			rep.TornTails = append(rep.TornTails, p)
		}
		if finished && stable && len(probs) == 0 {
			// Known good, unless it changed while it was read.
			if after, ok := statFingerprint(p); ok && after == before {
				kf.atOpen[name] = before
			}
		}
	}
	probs, torn, err := checkJournal(filepath.Join(dir, journalDirName), rep)
	if err != nil {
		return nil, nil, err
	}
	rep.Problems = append(rep.Problems, probs...)
	rep.TornTails = append(rep.TornTails, torn...)
	return rep, kf, nil
}

// checkFiles checks an existing queue before Badger opens it, skipping the files recorded as
// known good (checked.go), and keeps what it learnt of the finished files for the next record.
func (q *Queue) checkFiles() error {
	if _, err := os.Stat(filepath.Join(q.o.Dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) {
		q.known = &knownFiles{atOpen: map[string]fingerprint{}, seenAtOpen: map[string]bool{}}
		return nil
	}
	start := time.Now()
	rep, kf, err := check(q.o.Dir, readChecked(q.o.Dir))
	if err != nil {
		return fmt.Errorf("queue: check files: %w", err)
	}
	q.lastCheck = rep
	if len(rep.Problems) > 0 {
		return &CorruptError{Dir: q.o.Dir, Problems: rep.Problems}
	}
	q.known = kf
	q.log.Info("queue: files checked", "files", rep.Files, "bytes", rep.Bytes,
		"skipped_known_good", rep.Skipped, "skipped_bytes", rep.SkippedBytes,
		"torn_tails", rep.TornTails, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// lockedElsewhere reports ErrInUse when another process holds Badger's directory lock.
func lockedElsewhere(dir string) error {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrInUse
		}
		return err
	}
	return unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

func readAll(p string, rep *CheckReport) ([]byte, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	rep.Files++
	rep.Bytes += int64(len(data))
	return data, nil
}

// checkManifest verifies the MANIFEST's magic and every change record's checksum; an incomplete
// last record is a torn tail.
func checkManifest(p string, rep *CheckReport) ([]Problem, bool, error) {
	data, err := readAll(p, rep)
	if err != nil {
		return nil, false, err
	}
	if len(data) < 8 || !bytes.Equal(data[:4], []byte("Bdgr")) {
		return []Problem{{p, 0, "not a Badger MANIFEST (bad magic)"}}, false, nil
	}
	off := int64(8)
	for {
		if off == int64(len(data)) {
			return nil, false, nil
		}
		if off+8 > int64(len(data)) {
			return nil, true, nil
		}
		n := int64(binary.BigEndian.Uint32(data[off:]))
		if n > int64(len(data)) {
			return []Problem{{p, off, "change record length beyond the file"}}, false, nil
		}
		if off+8+n > int64(len(data)) {
			return nil, true, nil
		}
		if crc32.Checksum(data[off+8:off+8+n], castagnoli) != binary.BigEndian.Uint32(data[off+4:]) {
			return []Problem{{p, off, "change record checksum mismatch"}}, false, nil
		}
		off += 8 + n
	}
}

// checkTable opens a table from a copy of its bytes (so nothing can touch the file) and verifies
// its index and every block's checksum. A damaged table makes Badger's table code panic, which
// is recovered here.
func checkTable(p string, rep *CheckReport) (probs []Problem, err error) {
	data, err := readAll(p, rep)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			probs = []Problem{{p, -1, fmt.Sprintf("table unreadable: %v", r)}}
			err = nil
		}
	}()
	t, terr := table.OpenInMemoryTable(data, 1, &table.Options{ChkMode: options.OnTableAndBlockRead, Compression: options.None})
	if terr != nil {
		return []Problem{{p, -1, "table unreadable: " + terr.Error()}}, nil
	}
	if verr := t.VerifyChecksum(); verr != nil {
		return []Problem{{p, -1, "table checksum mismatch: " + verr.Error()}}, nil
	}
	return nil, nil
}

// Badger's log entry (value-log and memtable-log files), after a 20-byte file header:
//
//	meta (1) | user meta (1) | uvarint key length | uvarint value length | uvarint expiresAt |
//	key (with its 8-byte version) | value | crc32c of all before (4)
const (
	logHeaderSize = 20
	metaBits      = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<6 | 1<<7
	metaValuePtr  = 1 << 1
	metaDelete    = 1 << 0
)

type logEntry struct {
	meta      byte
	key       []byte // with the version
	value     []byte
	expiresAt uint64
	size      int64
}

// decodeLogEntry decodes the entry at off; ok is false unless it is whole and its checksum holds.
func decodeLogEntry(data []byte, off int64) (e logEntry, ok bool) {
	if off+6 > int64(len(data)) {
		return e, false
	}
	b := data[off:]
	e.meta = b[0]
	if e.meta&^metaBits != 0 {
		return e, false
	}
	i := 2
	kl, n := binary.Uvarint(b[i:])
	if n <= 0 || kl < 8 || kl > 1<<16 {
		return e, false
	}
	i += n
	vl, n := binary.Uvarint(b[i:])
	if n <= 0 || vl > uint64(len(b)) {
		return e, false
	}
	i += n
	exp, n := binary.Uvarint(b[i:])
	if n <= 0 {
		return e, false
	}
	i += n
	end := uint64(i) + kl + vl
	if end+4 > uint64(len(b)) {
		return e, false
	}
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return e, false
	}
	e.key = b[i : uint64(i)+kl]
	e.value = b[uint64(i)+kl : end]
	e.expiresAt = exp
	e.size = int64(end + 4)
	return e, true
}

// scanLog walks the entries of a log file from its header on, calling fn for each valid one, and
// returns where the valid entries end and, when something follows that is not a clean tail, the
// offset of the damage (-1 if none). A sealed file must end exactly at its last entry; another
// may end with a torn entry and zeros or leftovers, but not with valid entries after a bad one.
func scanLog(data []byte, sealed bool, fn func(off int64, e logEntry)) (end, damaged int64) {
	off := int64(logHeaderSize)
	if int64(len(data)) < off {
		return int64(len(data)), -1
	}
	for {
		e, ok := decodeLogEntry(data, off)
		if !ok {
			break
		}
		if fn != nil {
			fn(off, e)
		}
		off += e.size
	}
	end = off
	if end == int64(len(data)) {
		return end, -1
	}
	if sealed {
		return end, end
	}
	if nextEntry(data, end+1) >= 0 {
		return end, end
	}
	return end, -1
}

// nextEntry finds the first offset at or after from where a valid entry of one of the queue's
// keys starts, or -1.
func nextEntry(data []byte, from int64) int64 {
	for p := from; p+6 < int64(len(data)); p++ {
		if data[p] == 0 && data[p+1] == 0 && data[p+2] == 0 {
			// Skip a run of zeros (the unwritten rest of a file), keeping the two bytes before
			// the next non-zero one: an entry may start with meta and user meta both 0.
			q := p + 3
			for q < int64(len(data)) && data[q] == 0 {
				q++
			}
			p = max(p, q-3)
			continue
		}
		if e, ok := decodeLogEntry(data, p); ok && plausibleKey(e.key) {
			return p
		}
	}
	return -1
}

func plausibleKey(k []byte) bool {
	if len(k) < 10 {
		return false
	}
	switch string(k[:2]) {
	case "m/", "e/", "p/", "z/", "x/", "r/", "!b", "\x00f":
		return true
	}
	return false
}

func checkLogFile(p string, sealed bool, rep *CheckReport) ([]Problem, bool, error) {
	data, err := readAll(p, rep)
	if err != nil {
		return nil, false, err
	}
	end, damaged := scanLog(data, sealed, nil)
	if damaged >= 0 {
		what := "bad entry followed by valid entries"
		if sealed {
			what = "bad entry in a finished value-log file"
		}
		return []Problem{{p, damaged, what}}, false, nil
	}
	return nil, end < int64(len(data)) && !allZero(data[end:]), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkJournal checks the segments Open would replay (the epochs after the checkpoint): a bad
// record followed by valid records of the same epoch is damage; a segment whose first record is
// bad while records of a replayable epoch follow is damage too.
func checkJournal(dir string, rep *CheckReport) ([]Problem, []string, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	j := &journal{dir: dir}
	cp, err := j.readCheckpoint()
	if err != nil {
		return nil, nil, err
	}
	var probs []Problem
	var torn []string
	for i := range 2 {
		p := filepath.Join(dir, strconv.Itoa(i))
		done, err := checkpointedSegment(p, cp, rep)
		if err != nil {
			return nil, nil, err
		}
		if done {
			continue
		}
		data, err := readAll(p, rep)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		end, damaged := scanSegment(data, uint64(i), cp)
		if damaged >= 0 {
			probs = append(probs, Problem{p, damaged, "bad journal record followed by valid records of the same epoch"})
		} else if e, ok := firstEpoch(data); ok && e > cp && end+recordHeaderSize <= int64(len(data)) &&
			binary.BigEndian.Uint64(data[end+8:]) == e {
			torn = append(torn, p) // the last record of the epoch was cut short
		}
	}
	return probs, torn, nil
}

// checkpointedSegment reports whether the journal segment p begins with a valid record of an
// epoch the checkpoint cp covers: then nothing in it is replayed and nothing after that record is
// looked at (scanSegment), so only the record is read. A missing segment is not (the caller finds
// it missing).
func checkpointedSegment(p string, cp uint64, rep *CheckReport) (bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := make([]byte, recordHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return false, nil // too short: read as a whole
	}
	e, n := binary.BigEndian.Uint64(h[8:]), int64(binary.BigEndian.Uint32(h[4:]))
	if e > cp || n == 0 || n > 64<<20 {
		return false, nil
	}
	rec := make([]byte, recordHeaderSize+n)
	if _, err := f.ReadAt(rec, 0); err != nil {
		return false, nil
	}
	if _, ok := recordAt(rec, 0, e); !ok {
		return false, nil
	}
	rep.Files++
	rep.Bytes += int64(len(rec))
	return true, nil
}

// scanSegment returns where the valid records of segment i (epochs ≡ i mod 2) end, and the offset
// of damage (-1 if none), considering only epochs after the checkpoint cp.
func scanSegment(data []byte, i, cp uint64) (end, damaged int64) {
	e, ok := firstEpoch(data)
	if ok && e <= cp {
		return 0, -1 // checkpointed: nothing in it is replayed
	}
	if !ok {
		// Nothing to replay here, unless a replayable record follows a damaged start.
		for p := int64(1); p+recordHeaderSize <= int64(len(data)); p++ {
			pe := binary.BigEndian.Uint64(data[p+8:])
			if pe > cp && pe%2 == i {
				if _, ok := recordAt(data, p, pe); ok {
					return 0, 0
				}
			}
		}
		return 0, -1
	}
	off := int64(0)
	for {
		payload, ok := recordAt(data, off, e)
		if !ok {
			break
		}
		off += recordHeaderSize + int64(len(payload))
	}
	for p := off + 1; p+recordHeaderSize <= int64(len(data)); p++ {
		if binary.BigEndian.Uint64(data[p+8:]) == e {
			if _, ok := recordAt(data, p, e); ok {
				return off, off
			}
		}
	}
	return off, -1
}
