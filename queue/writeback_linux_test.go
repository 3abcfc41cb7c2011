package queue

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dirtyVlogKB returns the dirty pages (Shared_Dirty + Private_Dirty in /proc/self/smaps, kB) of
// the value-log files of dir mapped into this process, summed.
func dirtyVlogKB(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) == 6 && filepath.Dir(fields[5]) == dir && strings.HasSuffix(fields[5], ".vlog")
			continue
		}
		if in && (strings.HasPrefix(line, "Shared_Dirty:") || strings.HasPrefix(line, "Private_Dirty:")) {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			total += kb
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
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
