package queue

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// writebackEvery is how often writebackLoop starts the write-out of Badger's newest files.
const writebackEvery = 20 * time.Millisecond

// writebackLoop starts, every writebackEvery, the kernel's write-out of the pages Badger has
// written to its newest value-log files and its memtable logs since the last checkpoint
// (sync_file_range SYNC_FILE_RANGE_WRITE: start writing, wait for nothing). A checkpoint syncs
// those files (syncBadger); without this, the megabytes written since the previous checkpoint
// went to the disk all at once there, and the journal's fdatasync, which the answers to callbacks
// wait for, queued behind them: 10–20 ms instead of a fraction of one, several times a second
// under a sustained ingest load. Started this way, the same pages go out in small steps and the
// checkpoint finds little left to write. Durability is unchanged: only the checkpoint's syncs
// count, this only moves when the writing happens. Before each write-out the files being
// written are unmapped (unmapWriting).
func (q *Queue) writebackLoop() {
	defer q.wg.Done()
	open := map[string]*os.File{}
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	var wr writing
	t := time.NewTicker(writebackEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-q.closing:
			return
		}
		seen, ok := q.unmapWriting(&wr)
		if !ok {
			continue
		}
		for name, f := range open {
			if !seen[name] {
				f.Close()
				delete(open, name)
			}
		}
		for name := range seen {
			f := open[name]
			if f == nil {
				var err error
				if f, err = os.Open(filepath.Join(q.o.Dir, name)); err != nil {
					continue
				}
				open[name] = f
			}
			unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}
}

// writing is what writebackLoop knows of the files Badger is writing: the newest value-log
// file and memtable log.
type writing [2]writingFile

// writingFile is one file Badger is writing: its name, its mappings as /proc/self/maps last
// listed them, and its modification time when it was last unmapped.
type writingFile struct {
	name  string
	maps  []mapping
	mtime unix.Timespec
}

// unmap drops the file's mappings from the page tables unless the file has not been written
// since the last time: a write through an unmapped page faults, and the fault updates the
// file's modification time. (Unless it comes within the same clock tick as the last unmapping;
// the pages then stay mapped one more tick, which costs only what unmapping saves.) Pass-through
// writes nearly nothing to the value log (the overlay), and unmapping an unchanged range still
// cost a TLB flush of both processors each tick. Only the modification time counts: the change
// time also moves with no write at all (seen 12–24 ms after the last write, as the kernel
// writes the pages out), and unmapping then was a flush for nothing.
func (f *writingFile) unmap(dir string) {
	if len(f.maps) == 0 {
		return
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, f.name), &st); err == nil {
		if st.Mtim == f.mtime {
			return
		}
		f.mtime = st.Mtim
	}
	for _, m := range f.maps {
		unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED)
	}
}

// unmapWriting lists the files writebackLoop writes out (the two newest value-log files, since
// the one before may have been finished since the last checkpoint, and every memtable log), and
// drops this process's page-table entries for the two Badger is writing, the newest value-log
// file and memtable log (MADV_DONTNEED on their whole mappings). Badger writes both through
// shared mappings, and the kernel write-protects every mapped page it writes out, with a TLB
// flush of both processors for each page (folio_mkclean), and the next write to such a page
// faults; unmapped first, the pages are written out without either, and the whole range costs
// one flush. In a durable ingest that was a tenth of the relay's CPU. Nothing is lost: on a
// shared file mapping MADV_DONTNEED only drops the entries (a dirty entry's page is marked dirty
// in the page cache), and the next access maps the same page again.
//
// It is not harmless on memory that is not one of these files, so the ranges are looked up and
// unmapped with no Badger write possible: Badger creates, rotates and remaps its newest
// value-log file and memtable only while writing, and never deletes or remaps them otherwise;
// the queue writes to Badger only under writeMu (the committer, value-log GC, reclaiming space)
// or under the journal's cpMu (a checkpoint moving the overlay into Badger). Both are held here,
// writeMu first as everywhere; while a checkpoint runs, the tick unmaps nothing rather than hold
// up the committer behind it (the checkpoint's own sync writes the pages out then). The
// mappings are read from /proc/self/maps again whenever the newest names change (reading it
// every time cost more than a tenth of what the unmapping saves).
func (q *Queue) unmapWriting(wr *writing) (map[string]bool, bool) {
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	unmap := q.absDir != "" && !q.o.noUnmap
	if unmap && q.jr != nil {
		if unmap = q.jr.cpMu.TryLock(); unmap {
			defer q.jr.cpMu.Unlock()
		}
	}
	ents, err := os.ReadDir(q.o.Dir)
	if err != nil {
		return nil, false
	}
	var vlogs []string
	seen := map[string]bool{}
	mem, memFid := "", uint64(0)
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".mem"):
			seen[name] = true
			if fid, ok := fileID(name, ".mem"); ok && fid >= memFid {
				mem, memFid = name, fid
			}
		case strings.HasSuffix(name, ".vlog"):
			vlogs = append(vlogs, name)
		}
	}
	newest := newestVlogs(vlogs, 2)
	for _, name := range newest {
		seen[name] = true
	}
	if !unmap || len(newest) == 0 {
		return seen, true
	}
	if newest[0] != wr[0].name || mem != wr[1].name {
		maps, err := fileMappings(q.absDir)
		if err != nil {
			*wr = writing{}
			return seen, true
		}
		*wr = writing{{name: newest[0]}, {name: mem}}
		vlogFid, _ := vlogID(newest[0])
		for _, m := range maps {
			switch {
			case m.mem && mem != "" && m.fid == memFid:
				wr[1].maps = append(wr[1].maps, m)
			case !m.mem && !m.table && m.fid == vlogFid:
				wr[0].maps = append(wr[0].maps, m)
			}
		}
	}
	for i := range wr {
		wr[i].unmap(q.o.Dir)
	}
	return seen, true
}

// newestVlogs returns the n value-log file names with the highest numbers, newest first.
func newestVlogs(names []string, n int) []string {
	type vlog struct {
		fid  uint64
		name string
	}
	var vs []vlog
	for _, name := range names {
		if fid, ok := vlogID(name); ok {
			vs = append(vs, vlog{fid, name})
		}
	}
	slices.SortFunc(vs, func(a, b vlog) int { return cmp.Compare(b.fid, a.fid) })
	out := make([]string, 0, n)
	for _, v := range vs[:min(n, len(vs))] {
		out = append(out, v.name)
	}
	return out
}
