package queue

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Files known good. Open reads every file of the queue before Badger opens it (check.go), which
// makes a start with a large backlog as slow as reading the backlog from disk (about 1.5 GB for a
// million events). Most of that backlog sits in files that never change once written: tables
// (.sst) and value-log files Badger has finished (every .vlog but the newest). Such a file, read
// through once without a problem or written by the queue itself and closed cleanly, is recorded
// in <Dir>/checked with its fingerprint: size, modification and change times in nanoseconds,
// inode and device. At the next Open, a table or finished value-log file whose fingerprint is
// the recorded one is not read again; any other file is (the newest value-log file, memtable
// logs, the MANIFEST and the journal segments after the checkpoint always are: they are the ones
// being written, where a crash leaves torn or damaged data, and they change with every run).
//
// What this gives up: a file damaged in place without its size, times or inode changing, which
// only happens below the file system (a disk returning wrong bytes, a write to the raw device).
// Every write through the file system changes the modification time, and setting the times
// back changes the change time, which no program can set. Badger verifies the checksum of every
// value it reads (a delivery of a damaged value fails with an error naming it) and `edgerelay
// queue check` (Check) still reads everything.
//
// The record is written after an Open that checked the files, at a clean Close, and after
// checkpoints while the queue runs (at most every checkedEvery), so that a restart after a crash
// also finds the bulk of a backlog recorded. It lists only files that cannot change any more: at
// a checkpoint, the tables in Badger's levels (written and synced before Badger adds them) and
// the value-log files older than the newest one the checkpoint synced; at Close, after Badger
// closed, every table and every value-log file but the newest. A file that was finished at Open
// and has another fingerprint later was changed by something else than the queue: it is left
// out. The record is replaced by rename and carries a checksum; one that is missing, damaged or
// from another format makes Open read everything.

const (
	checkedName   = "checked"
	checkedHeader = "edgerelay-queue-checked 1"
	// checkedEvery is how often checkpoints rewrite the record.
	checkedEvery = 10 * time.Second
)

// fingerprint identifies one state of a file's content, as far as the file system tells.
type fingerprint struct {
	size         int64
	mtime, ctime int64 // nanoseconds
	ino, dev     uint64
}

func (f fingerprint) String() string {
	return fmt.Sprintf("%d %d %d %d %d", f.size, f.mtime, f.ctime, f.ino, f.dev)
}

// vlogID returns the file id of a value-log file name ("000012.vlog" → 12).
func vlogID(name string) (uint64, bool) { return fileID(name, ".vlog") }

// fileID returns the number of a Badger file named NUMBER+suffix.
func fileID(name, suffix string) (uint64, bool) {
	num, ok := strings.CutSuffix(name, suffix)
	if !ok {
		return 0, false
	}
	fid, err := strconv.ParseUint(num, 10, 32)
	return fid, err == nil
}

// skippable reports whether name is a file the start-up check may skip when it is recorded:
// a table, or a value-log file older than the newest one (newestVlog).
func skippable(name string, newestVlog uint64) bool {
	if strings.HasSuffix(name, ".sst") {
		return true
	}
	fid, ok := vlogID(name)
	return ok && fid < newestVlog
}

// readChecked returns the record of dir; an empty one when it is missing or unreadable.
func readChecked(dir string) map[string]fingerprint {
	out := map[string]fingerprint{}
	data, err := os.ReadFile(filepath.Join(dir, checkedName))
	if err != nil {
		return out
	}
	body, sum, ok := bytes.Cut(bytes.TrimSuffix(data, []byte("\n")), []byte("\ncrc32c "))
	if !ok {
		return out
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || crc32.Checksum(body, castagnoli) != uint32(want) {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	if !sc.Scan() || sc.Text() != checkedHeader {
		return out
	}
	rec := map[string]fingerprint{}
	for sc.Scan() {
		var name string
		var f fingerprint
		if n, err := fmt.Sscanf(sc.Text(), "%s %d %d %d %d %d", &name, &f.size, &f.mtime, &f.ctime, &f.ino, &f.dev); n != 6 || err != nil {
			return out
		}
		rec[name] = f
	}
	return rec
}

// writeChecked replaces the record of dir with files.
func writeChecked(dir string, files map[string]fingerprint) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(checkedHeader + "\n")
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", n, files[n])
	}
	body := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	out := fmt.Appendf(append([]byte(nil), body...), "\ncrc32c %08x\n", crc32.Checksum(body, castagnoli))
	tmp := filepath.Join(dir, checkedName+".tmp")
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, checkedName)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// statFingerprint returns the fingerprint of the file at p.
func statFingerprint(p string) (fingerprint, bool) {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return fingerprint{}, false
	}
	return fingerprintOf(fi)
}

// knownFiles is what the queue knows of its finished files: what Open found (read through or
// recorded), and what it may record. Guarded by the journal's cpMu once the queue runs.
type knownFiles struct {
	// atOpen holds the fingerprint at Open of every table and finished value-log file that
	// Open read through without a problem or found recorded.
	atOpen map[string]fingerprint
	// seenAtOpen holds the names of every table and value-log file present at Open.
	seenAtOpen map[string]bool
	// writing is the value-log file Badger was to go on writing at Open (the newest).
	writing string
	// synced holds the value-log files Open skipped: recorded, so synced before the record was
	// written, and unchanged since. Checkpoints need not sync them again.
	synced map[string]bool
}

// admit reports whether the finished file name, now with fingerprint f, may be recorded: a
// file created since Open (the queue wrote it), the newest value-log file of Open (the queue
// finished it), or a file that is as Open found it good.
func (k *knownFiles) admit(name string, f fingerprint) bool {
	if !k.seenAtOpen[name] || name == k.writing {
		return true
	}
	old, ok := k.atOpen[name]
	return ok && old == f
}

// recordFinished writes the record of dir from the finished files listed (names), keeping
// only those admit accepts.
func (q *Queue) recordFinished(names []string) error {
	if q.known == nil {
		return nil
	}
	rec := map[string]fingerprint{}
	for _, n := range names {
		p := filepath.Join(q.o.Dir, n)
		if fi, err := os.Lstat(p); err == nil {
			// Open tightens loose modes before it checks (prepareDir), which would change the
			// change time: tighten first.
			tightenNew(p, fi)
		}
		f, ok := statFingerprint(p)
		if ok && q.known.admit(n, f) {
			rec[n] = f
		}
	}
	return writeChecked(q.o.Dir, rec)
}

// finishedAtClose lists the files of dir that are finished once Badger is closed: every table
// and every value-log file but the newest.
func finishedAtClose(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	newest := newestVlog(ents)
	var out []string
	for _, e := range ents {
		if skippable(e.Name(), newest) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// newestVlog returns the highest value-log file id among ents (0 when there is none).
func newestVlog(ents []fs.DirEntry) uint64 {
	var newest uint64
	for _, e := range ents {
		if fid, ok := vlogID(e.Name()); ok {
			newest = max(newest, fid)
		}
	}
	return newest
}

// finishedAtCheckpoint lists the files that cannot change any more while Badger is open: the
// tables in its levels and the value-log files older than vlogFrom (the newest one the last
// checkpoint synced). The caller holds cpMu, after a checkpoint.
func (q *Queue) finishedAtCheckpoint() []string {
	var out []string
	for _, t := range q.db.Tables() {
		out = append(out, fmt.Sprintf("%06d.sst", t.ID))
	}
	ents, err := os.ReadDir(q.o.Dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		if skippable(e.Name(), q.jr.vlogFrom) && strings.HasSuffix(e.Name(), ".vlog") {
			out = append(out, e.Name())
		}
	}
	return out
}

// recordKnown writes the record from the files finished at the checkpoint just made, unless one
// was written less than checkedEvery ago (the first checkpoint, Open's, always writes it). The
// caller holds cpMu.
func (q *Queue) recordKnown() {
	every := checkedEvery
	if q.o.checkedEvery > 0 {
		every = q.o.checkedEvery
	}
	if q.known == nil || time.Since(q.recordedAt) < every {
		return
	}
	q.recordedAt = time.Now()
	if err := q.recordFinished(q.finishedAtCheckpoint()); err != nil {
		q.log.Warn("queue: record of known good files not written", "err", err)
	}
}
