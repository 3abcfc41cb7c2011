package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// smallFiles makes a few MB of events span several value-log files and tables.
func smallFiles(o *badger.Options) {
	o.ValueLogFileSize = 1 << 20
	o.MemTableSize = 1 << 20
	o.BaseTableSize = 256 << 10
	o.BaseLevelSize = 1 << 20
	o.NumLevelZeroTables = 1
}

// fillBacklog enqueues n events of 4 KB for backend "b" (never delivered).
func fillBacklog(t *testing.T, q *Queue, n int) {
	t.Helper()
	for i := range n {
		ev := newEvent("", "b")
		ev.Body = []byte(strings.Repeat(string(rune('a'+i%26)), 4000))
		enqueue(t, q, ev)
	}
}

// finishedFiles lists the tables and value-log files but the newest in dir.
func finishedFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := finishedAtClose(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestStartCheckSkipsKnownGoodFiles: after a clean Close, the next Open does not read the
// tables and finished value-log files again (they are recorded with their fingerprints), but a
// recorded file that was changed since is read and refused by name, even with its modification
// time set back; Check still reads every file.
func TestStartCheckSkipsKnownGoodFiles(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, noOverlay: true, GCInterval: -1, tweak: smallFiles}
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	fillBacklog(t, q, 800)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	finished := finishedFiles(t, dir)
	var vlogs, tables []string
	for _, n := range finished {
		if strings.HasSuffix(n, ".vlog") {
			vlogs = append(vlogs, n)
		} else {
			tables = append(tables, n)
		}
	}
	if len(vlogs) < 2 || len(tables) < 1 {
		t.Fatalf("want finished value-log files and tables, have %v", finished)
	}
	rec := readChecked(dir)
	for _, n := range finished {
		if _, ok := rec[n]; !ok {
			t.Fatalf("%s not recorded at Close; record: %v", n, rec)
		}
	}

	// Unchanged: skipped. (Sizes taken first: once Badger runs, a compaction may delete tables.)
	var skippedBytes int64
	for _, n := range finished {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		skippedBytes += fi.Size()
	}
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	rep := q.lastCheck
	if rep.Skipped != len(finished) || rep.SkippedBytes != skippedBytes {
		t.Fatalf("Open skipped %d files (%d bytes), want the %d finished ones (%d bytes)", rep.Skipped, rep.SkippedBytes, len(finished), skippedBytes)
	}
	if st := q.Stats()["b"]; st.Pending != 800 {
		t.Fatalf("pending %d after restart, want 800", st.Pending)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if full.Skipped != 0 || full.Files < len(finished)+2 || full.Bytes < skippedBytes {
		t.Fatalf("Check read %d files (%d bytes) and skipped %d: want every file", full.Files, full.Bytes, full.Skipped)
	}

	// Changed: read and refused, the damaged file named.
	victim := filepath.Join(dir, vlogs[0])
	before, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	damage := func(p string) {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 4)
		off := before.Size() / 2
		f.ReadAt(b, off)
		for i := range b {
			b[i] ^= 0x5a
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	damage(victim)
	// A program setting the modification time back does not hide the change (the change time
	// moves, and no program can set it).
	if err := os.Chtimes(victim, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	_, err = Open(o)
	var ce *CorruptError
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].File != victim {
		t.Fatalf("open after damaging %s: %v, want a CorruptError naming it", victim, err)
	}
}

// TestStartCheckAfterCrash: without a clean Close (a crash), the record written at checkpoints
// lets Open skip what was finished by then, and a file finished since is read in full: damage
// in it is refused.
func TestStartCheckAfterCrash(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, noOverlay: true, GCInterval: -1, tweak: smallFiles, segmentSize: 64 << 10, checkedEvery: time.Millisecond}
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	fillBacklog(t, q, 600)
	// The checkpointer records at its next checkpoint; wait until the record lists finished
	// value-log files.
	waitFor(t, "finished files recorded", func() bool {
		n := 0
		for name := range readChecked(dir) {
			if strings.HasSuffix(name, ".vlog") {
				n++
			}
		}
		return n >= 2
	})
	q.skipCloseCheckpoint = true // Close leaves the journal and the record as a crash would
	q.Close()

	// Restarted after the crash (the recorded files skipped), then more events, and another
	// crash before any checkpoint records the value-log files finished meanwhile.
	o2 := o
	o2.checkedEvery = time.Hour
	q, err = Open(o2)
	if err != nil {
		t.Fatal(err)
	}
	if q.lastCheck.Skipped == 0 {
		t.Fatalf("nothing skipped after the first crash")
	}
	fillBacklog(t, q, 300)
	q.skipCloseCheckpoint = true
	q.Close()
	recorded := readChecked(dir)

	var unrecorded []string
	for _, n := range finishedFiles(t, dir) {
		if _, ok := recorded[n]; !ok && strings.HasSuffix(n, ".vlog") {
			unrecorded = append(unrecorded, n)
		}
	}
	if len(unrecorded) == 0 {
		t.Fatalf("no value-log file finished after the record %v", recorded)
	}

	// Damage in a value-log file finished after the last record is found: that file is read.
	victim := filepath.Join(dir, unrecorded[0])
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	orig := make([]byte, 4)
	f.ReadAt(orig, fi.Size()/2)
	f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, fi.Size()/2)
	_, err = Open(o)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Problems[0].File != victim {
		t.Fatalf("open with %s damaged: %v, want a CorruptError naming it", victim, err)
	}

	// Undamaged, the crashed queue opens with the recorded files skipped and nothing lost.
	f.WriteAt(orig, fi.Size()/2)
	q, err = Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rep := q.lastCheck
	if rep.Skipped == 0 || rep.Skipped > len(recorded) {
		t.Fatalf("skipped %d files, want some of the %d recorded", rep.Skipped, len(recorded))
	}
	if st := q.Stats()["b"]; st.Pending != 900 {
		t.Fatalf("pending %d after the crash, want 900", st.Pending)
	}
}

// TestBacklogCountedWhileRunning: the counters of a reopened backlog are exact although the
// backlog is counted in the background while events are enqueued and delivered.
func TestBacklogCountedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir, noOverlay: true})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				if _, err := q.Enqueue(context.Background(), newEvent("", "b"), 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	q.Close()

	q, err := Open(Options{Dir: dir, MaxSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	for range 5 {
		ev := newEvent("", "b")
		if _, err := q.Enqueue(ctx, ev, 0); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		ack(t, q, next(t, q, "b"))
	}
	if st := q.Stats()["b"]; st.Pending != 2002 || st.InFlight != 0 {
		t.Fatalf("after reopening 2000, enqueueing 5 and delivering 3: %+v, want 2002 pending", st)
	}
	want, err := q.countLive()
	if err != nil {
		t.Fatal(err)
	}
	if got := q.LiveBytes(); got != want {
		t.Fatalf("live bytes %d, a recount says %d", got, want)
	}
}

// TestAdmissionDuringBacklogCount: after a restart with a backlog, callbacks are admitted while
// the backlog is still being counted when the queue's files are well below max_size; near it,
// admission waits for the exact count and then refuses what does not fit.
func TestAdmissionDuringBacklogCount(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir, noOverlay: true})
	for range 300 {
		ev := newEvent("", "b")
		ev.Body = bytes.Repeat([]byte("x"), 4096)
		enqueue(t, q, ev)
	}
	q.Close()

	gate := make(chan struct{})
	q, err := Open(Options{Dir: dir, MaxSize: 1 << 30, countGate: gate})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := q.Enqueue(context.Background(), newEvent("", "b"), 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an event well under max_size waited for the backlog count")
	}
	close(gate)
	q.Close()

	// max_size below what the files hold: the first admission waits for the exact count, which
	// shows the 300 stored events (1.2 MB) leave no room.
	gate = make(chan struct{})
	q, err = Open(Options{Dir: dir, MaxSize: 1 << 20, countGate: gate})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	go func() {
		_, err := q.Enqueue(context.Background(), newEvent("", "b"), 0)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("admitted near max_size before the backlog was counted: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(gate)
	if err := <-done; !errors.Is(err, ErrFull) {
		t.Fatalf("near max_size after the count: %v, want ErrFull", err)
	}
}
