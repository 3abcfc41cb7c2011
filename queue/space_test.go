package queue

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileModes: an existing queue directory readable by other users (0755, a 0644 file in it)
// is tightened at Open, and every file and directory the queue holds ends up 0600 / 0700.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	if err := os.MkdirAll(filepath.Join(dir, journalDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, journalDirName, "0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	q := openDisk(t, Options{Dir: dir})
	for range 50 {
		ev := newEvent("", "a")
		ev.Body = bytes.Repeat([]byte("b"), 4<<10)
		enqueue(t, q, ev)
	}
	loose := func() []string {
		var out []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fi, err := os.Stat(p)
			if err != nil {
				return nil
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm() != want {
				out = append(out, p+" "+fi.Mode().Perm().String())
			}
			return nil
		})
		return out
	}
	// Badger creates its files with the process umask; the queue tightens them within a second.
	deadline := time.Now().Add(5 * time.Second)
	for l := loose(); len(l) > 0; l = loose() {
		if time.Now().After(deadline) {
			t.Fatalf("loose modes: %v", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReclaimAfterDrain: once a backlog is delivered and the queue is idle, the disk use falls
// back to its floor and the live bytes to zero.
func TestReclaimAfterDrain(t *testing.T) {
	q := openDisk(t, Options{GCInterval: time.Hour})
	body := bytes.Repeat([]byte("x"), 16<<10)
	const n = 2500 // 40 MB of bodies: three value-log files
	for i := range n {
		ev := newEvent("", "a")
		ev.Body = body
		ev.Body[0] = byte(i)
		enqueue(t, q, ev)
	}
	if lb := q.LiveBytes(); lb < n*16<<10 {
		t.Fatalf("live bytes %d after %d events of 16 KiB", lb, n)
	}
	q.measureSize()
	full := q.Size()
	for range n {
		ack(t, q, next(t, q, "a"))
	}
	if lb := q.LiveBytes(); lb != 0 {
		t.Fatalf("live bytes %d after everything was delivered", lb)
	}
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for q.Size() > full/2 || q.Size() > 40<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("size %d MiB 20 s after the drain (full: %d MiB)", q.Size()>>20, full>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("disk use: %.1f MiB with %d events of 16 KiB queued, %.1f MiB %.1fs after they were delivered",
		float64(full)/(1<<20), n, float64(q.Size())/(1<<20), time.Since(start).Seconds())
	// And the emptied queue accepts again.
	enqueue(t, q, newEvent("", "a"))
	ack(t, q, next(t, q, "a"))
}

// TestLiveBytesPassThrough: events delivered as they arrive leave the live bytes at exactly 0
// (no drift between what Enqueue adds and what the deletion subtracts), before any reclaim.
func TestLiveBytesPassThrough(t *testing.T) {
	q := openDisk(t, Options{})
	for i := range 300 {
		ev := newEvent("", "a")
		ev.Body = bytes.Repeat([]byte("y"), 100+i*97) // below and above the value threshold
		enqueue(t, q, ev)
		ack(t, q, next(t, q, "a"))
	}
	if lb := q.LiveBytes(); lb != 0 {
		t.Fatalf("live bytes %d after every event was delivered", lb)
	}
}
