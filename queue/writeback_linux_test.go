package queue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// touched takes the reads that map a file's pages in dirtyVlogKB, so the compiler keeps them.
var touched byte

// dirtyVlogKB returns how much of the value-log files of dir is dirty in the page cache (kB):
// it maps each file read-only itself, touches every page, and sums Shared_Dirty and
// Private_Dirty of its own mappings in /proc/self/smaps, which count a page dirty in the page
// cache whoever wrote it. Badger's own mappings cannot tell: writebackLoop unmaps their pages.
func dirtyVlogKB(t *testing.T, dir string) int {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	mine := map[uint64]bool{}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			f.Close()
			continue
		}
		b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Munmap(b)
		for i := 0; i < len(b); i += os.Getpagesize() {
			touched += b[i]
		}
		mine[uint64(uintptr(unsafe.Pointer(&b[0])))] = true
	}
	return smapsKB(t, []string{"Shared_Dirty:", "Private_Dirty:"}, func(start uint64, _ string) (uint64, bool) {
		return 0, mine[start]
	})[0]
}

// TestWritebackBeforeCheckpoint: what Badger writes to its value log goes to the disk within a
// few writeback ticks (much of it while the events are still being written), long before the
// checkpoint that syncs it (2 MB written, 8 MiB journal segments: no checkpoint comes); with the
// loop off, the same pages are still dirty after two seconds (a hundred ticks), waiting for the checkpoint to
// write them all at once.
func TestWritebackBeforeCheckpoint(t *testing.T) {
	for _, on := range []bool{true, false} {
		dir := t.TempDir()
		q := openDisk(t, Options{Dir: dir, noOverlay: true, noWriteback: !on, GCInterval: -1})
		for i := 0; i < 500; i++ {
			ev := &Event{Channel: "c", Provider: "meta", Body: bytes.Repeat([]byte{byte('a' + i%26)}, 4000), Backends: []string{"b"}}
			if _, err := q.Enqueue(context.Background(), ev, 0); err != nil {
				t.Fatal(err)
			}
		}
		written := dirtyVlogKB(t, dir)
		if !on && written < 1000 {
			t.Fatalf("without the loop, only %d kB of the value log dirty after 2 MB of bodies", written)
		}
		start := time.Now()
		deadline := start.Add(2 * time.Second)
		left := written
		for time.Now().Before(deadline) && (!on || left > 64) {
			time.Sleep(writebackEvery)
			left = dirtyVlogKB(t, dir)
		}
		t.Logf("loop on=%v: %d kB dirty after the writes, %d kB %v later", on, written, left, time.Since(start).Round(time.Millisecond))
		if on && left > 64 {
			t.Fatalf("with the writeback loop, %d kB of the value log still dirty after %v", left, time.Since(start).Round(time.Millisecond))
		}
		if !on && left < written/2 {
			t.Fatalf("without the loop, the value log went from %d to %d kB dirty: the test cannot tell the loop's effect", written, left)
		}
		q.Close()
	}
}

// TestUnmapWriting: the writeback loop's unmapping takes the pages of the value-log file and the
// memtable log Badger is writing out of the process's page tables, follows Badger to each new
// file as it rotates them (never touching a range it no longer maps), and loses nothing: every
// body reads back intact, and so does the queue reopened.
func TestUnmapWriting(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, noOverlay: true, noWriteback: true, GCInterval: -1, tweak: func(o *badger.Options) {
		o.ValueLogFileSize = 1 << 20
	}}
	q := openDisk(t, o)
	ctx := context.Background()
	var ids []string
	var bodies [][]byte
	var wr writing
	newest := func(kb map[uint64]int) uint64 {
		var n uint64
		for fid := range kb {
			n = max(n, fid)
		}
		return n
	}
	var names []string
	for round := 0; round < 4; round++ {
		for i := 0; i < 150; i++ { // 600 kB of bodies a round: a new value-log file every two
			body := bytes.Repeat([]byte{byte('a' + (round*150+i)%26)}, 4000)
			res, err := q.Enqueue(ctx, &Event{Channel: "c", Provider: "meta", Body: body, Backends: []string{"b"}}, 0)
			if err != nil {
				t.Fatal(err)
			}
			ids, bodies = append(ids, res.ID), append(bodies, body)
		}
		vlogs, mems := residentVlogKB(t, dir), residentKB(t, dir, ".mem")
		v, m := newest(vlogs), newest(mems)
		if vlogs[v] < 100 || mems[m] == 0 {
			t.Fatalf("round %d: before unmapping, the newest value-log file has %d kB resident, the memtable log %d kB: nothing to tell", round, vlogs[v], mems[m])
		}
		// A tick that comes while a checkpoint runs unmaps nothing: a few more ticks.
		var after, afterMem map[uint64]int
		for try := 0; try < 50; try++ {
			if _, ok := q.unmapWriting(&wr); !ok {
				t.Fatal("unmapWriting: directory not listed")
			}
			after, afterMem = residentVlogKB(t, dir), residentKB(t, dir, ".mem")
			if after[v] == 0 && afterMem[m] == 0 {
				break
			}
			time.Sleep(writebackEvery)
		}
		t.Logf("round %d: %s and %s: %d and %d kB resident before, %d and %d after", round, wr[0].name, wr[1].name, vlogs[v], mems[m], after[v], afterMem[m])
		if after[v] != 0 || afterMem[m] != 0 {
			t.Fatalf("round %d: after unmapping, %d kB of value-log file %d and %d kB of memtable log %d still mapped", round, after[v], v, afterMem[m], m)
		}
		if fid, _ := vlogID(wr[0].name); fid != v || len(wr[0].maps) != 1 || len(wr[1].maps) != 1 {
			t.Fatalf("round %d: unmapping %s with %d and %d mappings, want value-log file %d and the memtable log, one each", round, wr[0].name, len(wr[0].maps), len(wr[1].maps), v)
		}
		maps, err := fileMappings(q.absDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range wr {
			for _, w := range f.maps {
				if !slices.Contains(maps, w) {
					t.Fatalf("round %d: unmapping %+v, which /proc/self/maps does not list", round, w)
				}
			}
		}
		names = append(names, wr[0].name)
	}
	if names = slices.Compact(names); len(names) < 3 {
		t.Fatalf("the value-log files unmapped were %v: Badger rotated too seldom to tell", names)
	}
	// Reading maps pages back without writing the file: the next tick leaves them mapped (no
	// TLB flush for nothing), and a write makes it unmap again.
	v, _ := vlogID(wr[0].name)
	if _, _, err := q.Get(ids[len(ids)-1]); err != nil {
		t.Fatal(err)
	}
	read := residentVlogKB(t, dir)[v]
	q.unmapWriting(&wr)
	if kb := residentVlogKB(t, dir)[v]; read == 0 || kb != read {
		t.Fatalf("value-log file %d only read: %d kB resident after the read, %d after the next tick; want the same, above 0", v, read, kb)
	}
	time.Sleep(2 * writebackEvery) // past the clock tick of the last unmapping
	for try := 0; ; try++ {
		enqueue(t, q, &Event{Channel: "c", Provider: "meta", Body: bytes.Repeat([]byte{'z'}, 4000), Backends: []string{"b"}})
		q.unmapWriting(&wr)
		if residentVlogKB(t, dir)[v] == 0 {
			break
		}
		if try == 50 {
			t.Fatalf("value-log file %d written again, still %d kB mapped after the tick", v, residentVlogKB(t, dir)[v])
		}
		time.Sleep(writebackEvery)
	}
	bodiesIntact(t, q, ids, bodies, "unmapped")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	bodiesIntact(t, openDisk(t, o), ids, bodies, "unmapped, after a reopen")
}
