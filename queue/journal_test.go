package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// copyDir copies the files under src to dst (created), as a crash would leave them: what the
// page cache holds.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if d.Name() == "LOCK" {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// syncLog is a concurrency-safe log buffer.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// replayed returns the records count of the queue's "journal replayed" log line, 0 if none.
func replayed(t *testing.T, log string) int {
	t.Helper()
	m := regexp.MustCompile(`journal replayed.* records=(\d+)`).FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func openLogged(t *testing.T, dir string, o Options) (*Queue, *syncLog) {
	t.Helper()
	l := &syncLog{}
	o.Dir = dir
	o.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
	q, err := Open(o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { q.Close() })
	return q, l
}

func bodyOf(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("event-%04d;", i)), 120) // 1.3 KB: in the value log
}

// wantState checks the events of ids against q: the ones in gone are absent, the others are
// there with their bodies; and the backend's pending and dead counts.
func wantState(t *testing.T, q *Queue, ids []string, gone map[string]bool, pending, dead int) {
	t.Helper()
	for i, id := range ids {
		ev, _, err := q.Get(id)
		if gone[id] {
			if err == nil {
				t.Errorf("event %d (%s) is back after its delivery was acknowledged", i, id)
			}
			continue
		}
		if err != nil {
			t.Errorf("event %d (%s) lost: %v", i, id, err)
			continue
		}
		if !bytes.Equal(ev.Body, bodyOf(i)) {
			t.Errorf("event %d (%s): body differs", i, id)
		}
	}
	if s := q.Stats()["a"]; s.Pending != pending || s.Dead != dead {
		t.Errorf("backend a: pending %d dead %d, want %d and %d", s.Pending, s.Dead, pending, dead)
	}
}

// TestJournalRestoresLostBadgerWrites simulates a power cut: Badger's files are taken as they
// were at a checkpoint (everything after it unsynced and lost), the journal as it was at the
// cut. Open must bring back every event enqueued after the checkpoint, and the acknowledgements
// and dead letter that followed. Without the journal the same files hold only the first events.
func TestJournalRestoresLostBadgerWrites(t *testing.T) {
	dir, crash := t.TempDir(), t.TempDir()
	q := openDisk(t, Options{Dir: dir})
	ctx := context.Background()
	var ids []string
	add := func(i int) {
		ev := &Event{Channel: "c", Provider: "meta", Body: bodyOf(i), Backends: []string{"a"},
			ProviderEventID: fmt.Sprintf("wamid.%d", i)}
		res, err := q.Enqueue(ctx, ev, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	for i := 0; i < 20; i++ {
		add(i)
	}
	// The checkpoint: Badger durable up to here; its files are what survives.
	q.writeMu.Lock()
	if err := q.checkpointAll(); err != nil {
		t.Fatal(err)
	}
	copyDir(t, dir, crash)
	q.writeMu.Unlock()
	noJournal := t.TempDir()
	copyDir(t, crash, noJournal)
	if err := os.RemoveAll(filepath.Join(noJournal, journalDirName)); err != nil {
		t.Fatal(err)
	}

	for i := 20; i < 50; i++ {
		add(i)
	}
	gone := map[string]bool{}
	for range 5 {
		l := next(t, q, "a")
		ack(t, q, l)
		gone[l.Event.ID] = true
	}
	l := next(t, q, "a")
	if err := q.Dead(l, "400 from backend"); err != nil {
		t.Fatal(err)
	}
	wantState(t, q, ids, gone, 44, 1)
	// The cut: the journal as written (its acknowledged records are synced), Badger as above.
	if err := os.RemoveAll(filepath.Join(crash, journalDirName)); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(dir, journalDirName), filepath.Join(crash, journalDirName))

	bare, _ := openLogged(t, noJournal, Options{})
	if _, _, err := bare.Get(ids[20]); err == nil {
		t.Fatal("the files at the checkpoint already hold a later event: the test proves nothing")
	}
	q2, log := openLogged(t, crash, Options{})
	if n := replayed(t, log.String()); n < 36 {
		t.Fatalf("replayed %d journal records, want at least 36 (30 enqueues, 5 acks, 1 dead letter)\n%s", n, log)
	}
	wantState(t, q2, ids, gone, 44, 1)
	dls, err := q2.DeadLetters("a", 10)
	if err != nil || len(dls) != 1 || dls[0].EventID != l.Event.ID {
		t.Fatalf("dead letters after replay: %+v, %v; want %s", dls, err, l.Event.ID)
	}
	// De-duplication and ids carry on from the replayed state.
	res, err := q2.Enqueue(ctx, &Event{Channel: "c", Provider: "meta", Body: bodyOf(7), Backends: []string{"a"},
		ProviderEventID: "wamid.45"}, time.Hour)
	if err != nil || !res.Duplicate || res.ID != ids[45] {
		t.Fatalf("repeat of event 45 after replay: %+v, %v; want a duplicate of %s", res, err, ids[45])
	}
	res, err = q2.Enqueue(ctx, &Event{Channel: "c", Provider: "meta", Body: bodyOf(50), Backends: []string{"a"}}, 0)
	if err != nil || res.ID <= ids[49] {
		t.Fatalf("new event after replay: id %q, %v; want above %s", res.ID, err, ids[49])
	}
	// A clean close checkpoints: the next open replays nothing.
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	q3, log3 := openLogged(t, crash, Options{})
	if n := replayed(t, log3.String()); n != 0 {
		t.Fatalf("replayed %d records after a clean close", n)
	}
	wantState(t, q3, ids, gone, 45, 1)
}

// TestJournalTornRecord: a record cut short by the crash (not synced, so never acknowledged) is
// where replay stops; everything before it is applied.
func TestJournalTornRecord(t *testing.T) {
	dir, crash := t.TempDir(), t.TempDir()
	q := openDisk(t, Options{Dir: dir})
	ctx := context.Background()
	q.writeMu.Lock()
	if err := q.checkpointAll(); err != nil {
		t.Fatal(err)
	}
	copyDir(t, dir, crash)
	q.writeMu.Unlock()
	var ids []string
	var lastOff int64
	for i := 0; i < 10; i++ {
		lastOff = q.jr.off
		res, err := q.Enqueue(ctx, &Event{Channel: "c", Provider: "meta", Body: bodyOf(i), Backends: []string{"a"}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	seg := strconv.FormatUint(q.jr.epoch%2, 10)
	if err := os.RemoveAll(filepath.Join(crash, journalDirName)); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(dir, journalDirName), filepath.Join(crash, journalDirName))
	// Tear the last record: its second half never reached the disk.
	f, err := os.OpenFile(filepath.Join(crash, journalDirName, seg), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, recordHeaderSize)
	if _, err := f.ReadAt(hdr, lastOff); err != nil {
		t.Fatal(err)
	}
	n := int64(binary.BigEndian.Uint32(hdr[4:]))
	if _, err := f.WriteAt(make([]byte, n/2), lastOff+recordHeaderSize+n/2); err != nil {
		t.Fatal(err)
	}
	f.Close()

	q2, log := openLogged(t, crash, Options{})
	if got := replayed(t, log.String()); got != 9 {
		t.Fatalf("replayed %d records, want the 9 before the torn one\n%s", got, log)
	}
	wantState(t, q2, ids[:9], nil, 9, 0)
	if _, _, err := q2.Get(ids[9]); err == nil {
		t.Fatal("the torn record's event was applied")
	}
}

// TestJournalSegmentsCycle: with tiny segments the committer moves through many epochs, waiting
// for checkpoints to free a segment, under concurrent enqueues and acknowledgements. Then the
// queue stops without its final checkpoint (Badger's own close still writes everything), so the
// next Open applies the last epochs again on top of a state that already has them: the state
// must not change, and no acknowledged event may come back.
func TestJournalSegmentsCycle(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir, segmentSize: 8 << 10})
	ctx := context.Background()
	const workers, per = 8, 40
	ids := make([]string, workers*per)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				i := w*per + k
				res, err := q.Enqueue(ctx, &Event{Channel: "c", Provider: "meta", Body: bodyOf(i), Backends: []string{"a"}}, 0)
				if err != nil {
					errs <- err
					return
				}
				ids[i] = res.ID
			}
		}()
	}
	gone := map[string]bool{}
	for range 100 {
		l := next(t, q, "a")
		ack(t, q, l)
		gone[l.Event.ID] = true
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e := q.jr.epoch; e < 20 {
		t.Fatalf("only %d epochs for %d events in 8 KiB segments", e, len(ids))
	}
	wantState(t, q, ids, gone, len(ids)-100, 0)

	q.skipCloseCheckpoint = true
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, log := openLogged(t, dir, Options{segmentSize: 8 << 10})
	if n := replayed(t, log.String()); n == 0 {
		t.Fatalf("nothing replayed after a stop without checkpoint\n%s", log)
	}
	wantState(t, q2, ids, gone, len(ids)-100, 0)
}
