package queue

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"
)

// The journal's syncs go through AIO on Linux, and every Enqueue still returns only after one.
func TestJournalSyncsThroughAIO(t *testing.T) {
	q := openDisk(t, Options{})
	if q.jr == nil || q.jr.fs == nil {
		t.Fatal("the journal has no AIO fdsyncer: io_setup refused on this Linux machine")
	}
	before := q.jr.fs.done.Load()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			enqueue(t, q, newEvent(string(rune('a'+i%8)), "b"))
		})
	}
	wg.Wait()
	if got := q.jr.fs.done.Load() - before; got == 0 {
		t.Fatal("40 Enqueues returned, but no fdatasync completed through AIO")
	}
	if got := stats(q, "b"); got != "pending=40 inflight=0 dead=0" {
		t.Fatalf("backend b: %s, want the 40 events pending", got)
	}
}

// fdatasync reports the kernel's result, whether the completion is waited for or already there,
// and returns after every sync of a long series (a count left on the eventfd must not make one
// return early or hang).
func TestFdsyncerResults(t *testing.T) {
	s, err := newFdsyncer()
	if err != nil {
		t.Fatalf("newFdsyncer: %v", err)
	}
	defer s.close()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range 200 {
		if _, err := f.WriteAt(buf, int64(i%16)*int64(len(buf))); err != nil {
			t.Fatal(err)
		}
		if err := s.fdatasync(f); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if got := s.done.Load(); got != 200 {
		t.Fatalf("completed through AIO: %d, want 200", got)
	}
	// A pipe cannot be synced: the error comes back, it is not taken for a success.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := s.fdatasync(r); err == nil {
		t.Fatal("fdatasync of a pipe: no error")
	}
}

// The iocb and io_event layouts match <linux/aio_abi.h>.
func TestAIOLayout(t *testing.T) {
	if got := unsafe.Sizeof(aioIocb{}); got != 64 {
		t.Fatalf("iocb: %d bytes, want 64", got)
	}
	if got := unsafe.Offsetof(aioIocb{}.opcode); got != 16 {
		t.Fatalf("aio_lio_opcode at %d, want 16", got)
	}
	if got := unsafe.Offsetof(aioIocb{}.fildes); got != 20 {
		t.Fatalf("aio_fildes at %d, want 20", got)
	}
	if got := unsafe.Offsetof(aioIocb{}.flags); got != 56 {
		t.Fatalf("aio_flags at %d, want 56", got)
	}
	if got := unsafe.Offsetof(aioIocb{}.resfd); got != 60 {
		t.Fatalf("aio_resfd at %d, want 60", got)
	}
	if got := unsafe.Sizeof(aioEvent{}); got != 32 {
		t.Fatalf("io_event: %d bytes, want 32", got)
	}
}

// Without AIO (io_setup refused) the journal syncs with fdatasync itself and Enqueue works as
// before.
func TestJournalSyncsWithoutAIO(t *testing.T) {
	q := openDisk(t, Options{})
	q.jr.fs.close()
	q.jr.fs = nil // before any Enqueue: the committer and syncer see it through their channels
	for i := range 10 {
		enqueue(t, q, newEvent(string(rune('a'+i)), "b"))
	}
	if got := stats(q, "b"); got != "pending=10 inflight=0 dead=0" {
		t.Fatalf("backend b: %s, want the 10 events pending", got)
	}
	if _, syncs := q.SyncStats(); syncs == 0 {
		t.Fatal("no journal sync counted")
	}
}
