package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapping is one memory-mapped value-log file, as /proc/self/maps lists it.
type mapping struct {
	start, end uintptr
	fid        uint64
}

// vlogMappings lists the value-log files of dir mapped into this process.
func vlogMappings(dir string) ([]mapping, error) {
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
		if !ok || strings.ContainsRune(num, '/') {
			continue // another file, or " (deleted)"
		}
		fid, err := strconv.ParseUint(num, 10, 32)
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
		out = append(out, mapping{start: uintptr(s), end: uintptr(e), fid: fid})
	}
	return out, nil
}

// pageOutSealedLogs asks the kernel to reclaim the pages of the value-log files Badger has
// finished writing (every one but the newest). Badger maps its value log into memory, so each
// page the queue wrote stays resident in the relay's memory until the file is deleted by GC,
// which for a pass-through load happens seconds later and for a backlog not until it drains.
// Sealed files were synced when Badger finished them, so their pages are clean and the kernel
// drops them without I/O; a body read later (a backlog's delivery) is read back from disk.
// MADV_PAGEOUT only moves pages out of memory, never changes what they hold, so it is harmless
// even on a range that was remapped since /proc/self/maps was read (outside the lock, so commits
// wait only for the madvise calls); the calls are made under writeMu anyway, where Badger neither
// rotates nor deletes value-log files. Kernels before 5.4 reject it (EINVAL): nothing
// happens then.
func (q *Queue) pageOutSealedLogs() {
	if q.absDir == "" || q.pageOutUnsupported {
		return
	}
	maps, err := vlogMappings(q.absDir)
	if err != nil || len(maps) < 2 {
		return
	}
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	var newest uint64
	for _, m := range maps {
		newest = max(newest, m.fid)
	}
	for _, m := range maps {
		if m.fid == newest {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		if errno == unix.EINVAL {
			q.pageOutUnsupported = true
			return
		}
	}
}
