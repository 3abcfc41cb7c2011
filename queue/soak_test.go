package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSoakRSS enqueues and delivers 10k events/s (1 KB bodies) for EDGERELAY_QUEUE_SOAK seconds
// and checks the process's peak RSS stays under 150 MB. It is a long test, run on demand:
//
//	EDGERELAY_QUEUE_SOAK=30 go test -run TestSoakRSS -v ./queue/
func TestSoakRSS(t *testing.T) {
	secs, _ := strconv.Atoi(os.Getenv("EDGERELAY_QUEUE_SOAK"))
	if secs <= 0 {
		t.Skip("set EDGERELAY_QUEUE_SOAK=<seconds> to run the soak test")
	}
	q := openDisk(t, Options{GCInterval: 0})
	body := []byte(strings.Repeat("x", 1024))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	const rate = 10000
	var enq, del atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for p := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				// Pace: producer p sends its share of `rate` per second.
				due := start.Add(time.Duration(int64(i)*64*int64(time.Second)/rate + int64(p)*int64(time.Second)/rate))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				ev := &Event{Channel: "meta", Provider: "meta", OrderKey: fmt.Sprintf("s%d", i%500),
					ProviderEventID: fmt.Sprintf("%d-%d", p, i), Method: "POST", Body: body,
					Header: map[string][]string{"Content-Type": {"application/json"}}, Backends: []string{"crm"}}
				if _, err := q.Enqueue(context.Background(), ev, 24*time.Hour); err != nil {
					t.Errorf("enqueue: %v", err)
					return
				}
				enq.Add(1)
			}
		}()
	}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				l, err := q.Next(ctx, "crm")
				if err != nil {
					return
				}
				if err := q.Ack(l); err != nil {
					t.Errorf("ack: %v", err)
					return
				}
				del.Add(1)
			}
		}()
	}
	if os.Getenv("EDGERELAY_QUEUE_SOAK_TRACE") != "" {
		go func() {
			for ctx.Err() == nil {
				time.Sleep(time.Second)
				st, _ := os.ReadFile("/proc/self/status")
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				for _, line := range strings.Split(string(st), "\n") {
					if strings.HasPrefix(line, "RssAnon") || strings.HasPrefix(line, "RssFile") {
						fmt.Print(line, " ")
					}
				}
				fmt.Printf("heap %d MB sys %d MB\n", ms.HeapInuse>>20, ms.HeapSys>>20)
			}
		}()
	}
	wg.Wait()
	if f := os.Getenv("EDGERELAY_QUEUE_SOAK_HEAP"); f != "" {
		if out, err := os.Create(f); err == nil {
			pprof.WriteHeapProfile(out)
			out.Close()
		}
	}
	status, _ := os.ReadFile("/proc/self/status")
	var hwm int64
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if smaps, err := os.ReadFile("/proc/self/smaps"); err == nil {
		byKind := map[string]int64{}
		kind := ""
		for _, line := range strings.Split(string(smaps), "\n") {
			f := strings.Fields(line)
			if len(f) >= 5 && strings.Contains(f[0], "-") {
				kind = "anon"
				if len(f) >= 6 {
					kind = filepath.Ext(f[5])
				}
			} else if len(f) >= 2 && f[0] == "Rss:" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				byKind[kind] += n
			}
		}
		t.Logf("resident by mapping (kB): %v", byKind)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Rss") || strings.HasPrefix(line, "VmRSS") {
			t.Log(line)
		}
	}
	t.Logf("go heap in use %d MB, sys %d MB", ms.HeapInuse>>20, ms.Sys>>20)
	t.Logf("%d enqueued, %d delivered in %ds; peak RSS %d MB; disk %d MB", enq.Load(), del.Load(), secs, hwm/1024, q.Size()>>20)
	if hwm > 150*1024 {
		t.Fatalf("peak RSS %d MB over 150 MB", hwm/1024)
	}
}
