package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// TestGroupCommit: concurrent Enqueues share fsyncs.
func TestGroupCommit(t *testing.T) {
	q := openDisk(t, Options{})
	// Alone, every Enqueue waits for an fsync of its own.
	for i := range 5 {
		_, s0 := q.SyncStats()
		enqueue(t, q, newEvent("", "a"))
		if _, s1 := q.SyncStats(); s1 != s0+1 {
			t.Fatalf("enqueue %d returned after %d syncs, want 1", i, s1-s0)
		}
	}
	c0, s0 := q.SyncStats()
	const producers, each = 64, 40
	var wg sync.WaitGroup
	ids := make([][]string, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				ev := newEvent(fmt.Sprintf("k%d", p), "a")
				res, err := q.Enqueue(context.Background(), ev, 0)
				if err != nil {
					t.Errorf("enqueue: %v", err)
					return
				}
				ids[p] = append(ids[p], res.ID)
			}
		}()
	}
	wg.Wait()
	commits, syncs := q.SyncStats()
	commits, syncs = commits-c0, syncs-s0
	t.Logf("%d commits, %d syncs (%.1f per sync)", commits, syncs, float64(commits)/float64(syncs))
	if commits != producers*each {
		t.Fatalf("commits %d, want %d", commits, producers*each)
	}
	if syncs == 0 || syncs > commits/4 {
		t.Fatalf("%d syncs for %d commits: not grouped", syncs, commits)
	}
	// Each producer's ids are in its own order (arrival order).
	for p := range producers {
		for i := 1; i < len(ids[p]); i++ {
			if ids[p][i] <= ids[p][i-1] {
				t.Fatalf("producer %d: id %s not after %s", p, ids[p][i], ids[p][i-1])
			}
		}
	}
}

// TestValueLogGC: the GC goroutine runs every GCInterval, reclaims value-log space once events
// are delivered, and stops with Close.
func TestValueLogGC(t *testing.T) {
	dir := t.TempDir()
	q := openDisk(t, Options{Dir: dir, GCInterval: 20 * time.Millisecond, noOverlay: true, tweak: func(o *badger.Options) {
		// Small files so a few MB of events span several value-log files and memtable flushes.
		o.ValueLogFileSize = 1 << 20
		o.MemTableSize = 1 << 20
		o.BaseTableSize = 256 << 10
		o.BaseLevelSize = 1 << 20
		o.NumLevelZeroTables = 1
	}})
	vlogBytes := func() int64 {
		var n int64
		files, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				n += diskUsage(fi)
			}
		}
		return n
	}
	body := strings.Repeat("b", 8<<10)
	for range 4 {
		for range 250 {
			ev := newEvent("", "a")
			ev.Body = []byte(body)
			enqueue(t, q, ev)
		}
		for range 250 {
			ack(t, q, next(t, q, "a"))
		}
	}
	peak := vlogBytes()
	// Keep writing small batches so memtables flush and compaction records the discarded
	// values; GC then rewrites or drops the old files.
	deadline := time.Now().Add(20 * time.Second)
	for vlogBytes() > peak/2 {
		if time.Now().After(deadline) {
			t.Fatalf("value log not reclaimed: %d bytes, peak %d, gc runs %d", vlogBytes(), peak, q.gcRuns.Load())
		}
		for range 50 {
			ev := newEvent("", "a")
			ev.Body = []byte(body)
			enqueue(t, q, ev)
			ack(t, q, next(t, q, "a"))
		}
	}
	t.Logf("value log %d bytes after GC, peak %d, %d gc runs", vlogBytes(), peak, q.gcRuns.Load())
	if q.gcRuns.Load() < 2 {
		t.Fatalf("gc ran %d times", q.gcRuns.Load())
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	runs := q.gcRuns.Load()
	time.Sleep(100 * time.Millisecond)
	if q.gcRuns.Load() != runs {
		t.Fatal("gc still running after Close")
	}
}

// BenchmarkEnqueueParallel measures durable enqueues (1 KB bodies, every one fsynced before it
// returns) from 64 concurrent producers on GOMAXPROCS=2 (b.SetParallelism(32)), with nothing
// delivered: the durable ingest of a relay whose backend is down. It reports the process's CPU
// per event too (Badger's and the queue's background work included), with the writeback loop's
// unmapping of the files Badger writes (unmap=on, the default) and without it.
func BenchmarkEnqueueParallel(b *testing.B) {
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("unmap=%v", on), func(b *testing.B) { benchEnqueueParallel(b, Options{Dir: b.TempDir(), noUnmap: !on}) })
	}
}

func benchEnqueueParallel(b *testing.B, o Options) {
	q, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		b.StopTimer() // Badger's Close flushes memtables; not part of enqueueing
		q.Close()
	}()
	body := []byte(strings.Repeat("x", 1024))
	header := map[string][]string{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {"sha256=" + strings.Repeat("a", 64)}}
	c0, s0 := q.SyncStats()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(max(1, 64/runtimeProcs()))
	cpu0 := processCPU(b)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			ev := &Event{Channel: "meta", Provider: "meta", OrderKey: fmt.Sprintf("sender-%d", i%100),
				ProviderEventID: fmt.Sprintf("wamid.%d.%p", i, &i), Method: "POST", Path: "/hooks/meta",
				Header: header, Body: body, Backends: []string{"crm"}}
			if _, err := q.Enqueue(context.Background(), ev, 24*time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	cpu := processCPU(b) - cpu0
	c1, s1 := q.SyncStats()
	b.ReportMetric(float64(c1-c0)/el.Seconds(), "events/s")
	if c1 > c0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(c1-c0), "cpu-µs/event")
	}
	if s1 > s0 {
		b.ReportMetric(float64(c1-c0)/float64(s1-s0), "commits/sync")
	}
}

// BenchmarkDeliver measures Next + Ack throughput with 8 workers on one backend.
func BenchmarkDeliver(b *testing.B) {
	q, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		b.StopTimer()
		q.Close()
	}()
	body := []byte(strings.Repeat("x", 1024))
	var wg sync.WaitGroup
	for p := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < b.N; i += 16 {
				ev := &Event{Channel: "meta", OrderKey: fmt.Sprintf("sender-%d", i%100), Method: "POST",
					Body: body, Backends: []string{"crm"}}
				if _, err := q.Enqueue(context.Background(), ev, 0); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done sync.WaitGroup
	done.Add(b.N)
	for range 8 {
		go func() {
			for {
				l, err := q.Next(ctx, "crm")
				if err != nil {
					return
				}
				if err := q.Ack(l); err != nil {
					b.Error(err)
				}
				done.Done()
			}
		}()
	}
	done.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// processCPU returns the CPU time (user and system) this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
