package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// residentVlogKB returns the resident memory (Rss in /proc/self/smaps, kB) of each value-log
// file of dir mapped into this process, by file number.
func residentVlogKB(t *testing.T, dir string) map[uint64]int { return residentKB(t, dir, ".vlog") }

// residentKB returns the resident memory (Rss in /proc/self/smaps, kB) of each file of dir
// named <number><suffix> mapped into this process, by file number.
func residentKB(t *testing.T, dir, suffix string) map[uint64]int {
	t.Helper()
	return smapsKB(t, []string{"Rss:"}, func(_ uint64, path string) (uint64, bool) {
		if filepath.Dir(path) != dir || !strings.HasSuffix(path, suffix) {
			return 0, false
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), suffix), 10, 32)
		return n, err == nil
	})
}

// smapsKB sums the given fields (kB) of the mappings /proc/self/smaps lists, by the key which
// of returns for a mapping's start address and path; of's false leaves the mapping out.
func smapsKB(t *testing.T, fields []string, of func(start uint64, path string) (uint64, bool)) map[uint64]int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[uint64]int{}
	key, in := uint64(0), false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if head := strings.Fields(line); len(head) > 0 && strings.Contains(head[0], "-") && !strings.HasSuffix(head[0], ":") {
			in = false
			lo, _, _ := strings.Cut(head[0], "-")
			if start, err := strconv.ParseUint(lo, 16, 64); err == nil && len(head) == 6 {
				key, in = of(start, head[5])
			}
			continue
		}
		if !in {
			continue
		}
		for _, name := range fields {
			if strings.HasPrefix(line, name) {
				kb, _ := strconv.Atoi(strings.Fields(line)[1])
				out[key] += kb
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPageOutSealedLogs: the pages of value-log files Badger has finished writing leave the
// process's resident memory (the size loop does it within a tick), and every body is still read
// back intact from disk. (The file being written is unmapped by writebackLoop, without leaving
// the page cache: TestUnmapWriting.)
func TestPageOutSealedLogs(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir, noOverlay: true, tweak: func(o *badger.Options) {
		o.ValueLogFileSize = 1 << 20
	}})
	ctx := context.Background()
	var ids []string
	var bodies [][]byte
	for i := 0; i < 800; i++ { // 3.2 MB of bodies: at least three sealed files
		body := bytes.Repeat([]byte{byte('a' + i%26)}, 4000)
		ev := &Event{Channel: "c", Provider: "meta", Body: body, Backends: []string{"b"}}
		res, err := q.Enqueue(ctx, ev, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids, bodies = append(ids, res.ID), append(bodies, body)
	}
	var last map[uint64]int
	waitFor(t, "sealed value-log files paged out", func() bool {
		last = residentVlogKB(t, dir)
		var newest uint64
		for fid := range last {
			newest = max(newest, fid)
		}
		if len(last) < 4 {
			return false
		}
		for fid, kb := range last {
			if fid != newest && kb > 0 {
				return false
			}
		}
		return true
	})
	t.Logf("resident kB per value-log file: %v", last)
	bodiesIntact(t, q, ids, bodies, "reclaimed")
}

// TestPageOutTables: the pages of the tables Badger writes leave the process's resident memory
// (once, a tick after the table appears), and every event is still read back intact.
func TestPageOutTables(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir, noOverlay: true, GCInterval: -1, tweak: smallFiles})
	ctx := context.Background()
	// Bodies under the value threshold stay in the tree: 4000 of them fill several memtables.
	const n = 4000
	ids := make([]string, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ev := &Event{Channel: "c", Provider: "meta", Body: bytes.Repeat([]byte{byte('a' + i%26)}, 600), Backends: []string{"b"}}
				res, err := q.Enqueue(ctx, ev, 0)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = res.ID
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var last map[uint64]int
	waitFor(t, "tables paged out", func() bool {
		last = residentKB(t, dir, ".sst")
		if len(last) < 2 {
			return false
		}
		for _, kb := range last {
			if kb > 8 { // a lookup since may have read a page back
				return false
			}
		}
		return true
	})
	t.Logf("resident kB per table: %v", last)
	for i, id := range ids {
		ev, _, err := q.Get(id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if !bytes.Equal(ev.Body, bytes.Repeat([]byte{byte('a' + i%26)}, 600)) {
			t.Fatalf("event %s: body changed after its table's pages were reclaimed", id)
		}
	}
	// Reading every event brought table pages back; pageOutTables (what the count of a reopened
	// backlog calls as it goes) drops them again.
	read := 0
	for _, kb := range residentKB(t, dir, ".sst") {
		read += kb
	}
	// Badger's own compactions may read a table meanwhile (or write a new one): each try pages
	// out again, and the tables must come down within the wait.
	var after map[uint64]int
	waitFor(t, fmt.Sprintf("table pages dropped by pageOutTables (all tables: %d kB before)", read), func() bool {
		q.pageOutTables()
		after = residentKB(t, dir, ".sst")
		for _, kb := range after {
			if kb > 8 {
				return false
			}
		}
		return true
	})
	t.Logf("tables resident after reading every event: %d kB; after pageOutTables: %v", read, after)
}
