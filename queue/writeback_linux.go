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
// count, this only moves when the writing happens.
func (q *Queue) writebackLoop() {
	defer q.wg.Done()
	open := map[string]*os.File{}
	defer func() {
		for _, f := range open {
			f.Close()
		}
	}()
	t := time.NewTicker(writebackEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-q.closing:
			return
		}
		ents, err := os.ReadDir(q.o.Dir)
		if err != nil {
			continue
		}
		// The two newest value-log files (Badger writes the newest; the one before may have
		// been finished since the last checkpoint) and every memtable log.
		var vlogs []string
		seen := map[string]bool{}
		for _, e := range ents {
			name := e.Name()
			switch {
			case strings.HasSuffix(name, ".mem"):
				seen[name] = true
			case strings.HasSuffix(name, ".vlog"):
				vlogs = append(vlogs, name)
			}
		}
		for _, name := range newestVlogs(vlogs, 2) {
			seen[name] = true
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
				if f, err = os.Open(filepath.Join(q.o.Dir, name)); err != nil {
					continue
				}
				open[name] = f
			}
			unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}
}

// newestVlogs returns the n value-log file names with the highest numbers.
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
