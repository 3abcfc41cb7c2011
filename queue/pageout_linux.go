package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is one memory-mapped value-log file, table or memtable log, as /proc/self/maps lists
// it.
type mapping struct {
	start, end uintptr
	fid        uint64 // the file's number
	table      bool   // a table (.sst)
	mem        bool   // a memtable log (.mem); neither: a value-log file
}

// fileMappings lists the value-log files, tables and memtable logs of dir mapped into this
// process.
func fileMappings(dir string) ([]mapping, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	prefix := []byte(dir + string(filepath.Separator))
	var out []mapping
	for line := range bytes.Lines(data) {
		i := bytes.Index(line, prefix)
		if i < 0 {
			continue
		}
		name := strings.TrimSpace(string(line[i+len(prefix):]))
		num, ok := strings.CutSuffix(name, ".vlog")
		table, mem := false, false
		if !ok {
			num, ok = strings.CutSuffix(name, ".sst")
			table = ok
		}
		if !ok {
			num, ok = strings.CutSuffix(name, ".mem")
			mem = ok
		}
		if !ok || strings.ContainsRune(num, '/') {
			continue // another file, or " (deleted)"
		}
		fid, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		addr, _, _ := bytes.Cut(line, []byte(" "))
		lo, hi, ok := bytes.Cut(addr, []byte("-"))
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(string(lo), 16, 64)
		e, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || e <= s {
			continue
		}
		out = append(out, mapping{start: uintptr(s), end: uintptr(e), fid: fid, table: table, mem: mem})
	}
	return out, nil
}

// pageOutSealedLogs asks the kernel to reclaim the pages of the value-log files Badger has
// finished writing (every one but the newest), and once the pages of each new table. Badger maps
// its value log and its tables into memory, so each page the queue wrote stays resident in the
// relay's memory until the file is deleted: a value-log file by GC, which for a pass-through load
// happens seconds later and for a backlog not until it drains; a table by a compaction, which for
// the tables of a backlog (about 200 bytes per event: a million events make 200 MB of tables)
// may not come for as long. Sealed value-log files were synced when Badger finished them, and a
// table is synced before Badger uses it, so their pages are clean and the kernel drops them
// without I/O; a body or a block read later (a backlog's delivery) is read back from disk, and
// what lookups keep reading stays resident. A table is paged out one tick after it is first seen
// mapped (Badger writes it through its mapping first), and only once: later reads fault in what
// they need. MADV_PAGEOUT only moves pages out of memory, never changes what they hold, so it is
// harmless even on a range that was remapped since /proc/self/maps was read (outside the lock,
// so commits wait only for the madvise calls); the calls are made under writeMu anyway, where
// Badger neither rotates nor deletes value-log files. Kernels before 5.4 reject it (EINVAL):
// nothing happens then.
func (q *Queue) pageOutSealedLogs() {
	if q.absDir == "" || q.pageOutUnsupported {
		return
	}
	maps, err := fileMappings(q.absDir)
	if err != nil {
		return
	}
	if q.tablesSeen == nil {
		q.tablesSeen = map[uint64]bool{}
	}
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	var newest uint64
	vlogs := 0
	for _, m := range maps {
		if !m.table && !m.mem {
			newest = max(newest, m.fid)
			vlogs++
		}
	}
	mapped := map[uint64]bool{}
	for _, m := range maps {
		if m.table {
			mapped[m.fid] = true
			paged, seen := q.tablesSeen[m.fid]
			if !seen {
				q.tablesSeen[m.fid] = false // next tick
				continue
			}
			if paged {
				continue
			}
			q.tablesSeen[m.fid] = true
		} else if m.mem || vlogs < 2 || m.fid == newest {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			q.pageOutUnsupported = true
			return
		}
	}
	for fid := range q.tablesSeen {
		if !mapped[fid] {
			delete(q.tablesSeen, fid)
		}
	}
}

// pageOutTables asks the kernel to reclaim the pages of every table mapped into this process:
// countBacklog reads every key of a backlog once, which would leave all its tables resident.
// Safe from any goroutine (see pageOutSealedLogs); on kernels without MADV_PAGEOUT the calls
// fail and nothing happens.
func (q *Queue) pageOutTables() {
	if q.absDir == "" {
		return
	}
	maps, err := fileMappings(q.absDir)
	if err != nil {
		return
	}
	for _, m := range maps {
		if m.table {
			unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		}
	}
}
