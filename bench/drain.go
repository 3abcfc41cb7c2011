package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// drainHTTP measures a backlog: -n events are posted to the relay while
// its HTTP backend is down; the relay's memory with the backlog is read;
// the relay is stopped and started again on the same data (the time until
// it is ready, and its memory then); then the backend starts on the
// configured address and the rate at which the relay empties the backlog
// into it is measured, and every event checked byte for byte.
func (e *env) drainHTTP() (bool, error) {
	o := e.o
	n := o.n
	ports, err := freePorts(1)
	if err != nil {
		return false, err
	}
	backendAddr := ports[0]
	e.printf("== drain (HTTP): %d events posted with the backend down (%s, nothing listening), relay restarted with the backlog, then the backend started; relay backend concurrency %d, %d senders", n, backendAddr, o.concurrent, o.senders)
	// Short retry delays and breaker: the figure is the rate of the drain, not how long the relay
	// waits before it tries a backend that was down (the defaults back off up to 5 minutes).
	e.printf("relay backend: retry { initial = \"100ms\", max = \"1s\" }, breaker { open_for = \"1s\" }")
	p, err := e.startRelay(relaySpec{backendURL: "http://" + backendAddr + "/events", concurrency: o.concurrent, logLevel: o.logLevel,
		backendExtra: "  retry {\n    initial = \"100ms\"\n    max     = \"1s\"\n  }\n  breaker {\n    open_for = \"1s\"\n  }\n"})
	if err != nil {
		return false, err
	}
	defer func() { e.finish(p) }()

	base := e.seqs.next.Load() + 1
	res, err := e.fill(p, base, n)
	if err != nil {
		return false, err
	}
	e.printf("backlog posted: %d events in %s (%.0f events/s), p99 %s, errors: %s", n, res.elapsed.Round(time.Millisecond), float64(n)/res.elapsed.Seconds(), ms(res.quantile(.99)), res.otherStatuses())
	time.Sleep(time.Second)
	queued := p.memory()
	pending, inFlight, _ := e.backlog(p)
	e.printf("relay with %d queued (pending %d, in flight %d): %s", pending+inFlight, pending, inFlight, queued)
	du := dirSize(filepath.Join(p.dir, "data"))
	e.printf("data_dir size with the backlog: %s", mib(du))

	p.stop()
	p2, ready, err := e.restartRelay(p)
	if err != nil {
		return false, fmt.Errorf("restarting the relay with the backlog: %w", err)
	}
	p = p2
	time.Sleep(500 * time.Millisecond)
	restarted := p.memory()
	pending, inFlight, _ = e.backlog(p)
	e.printf("restart with the backlog: ready (/readyz 200) %s after exec; %d queued; %s", ready.Round(time.Millisecond), pending+inFlight, restarted)

	sk, err := newSink(n)
	if err != nil {
		return false, err
	}
	sk.close() // its own listener; it serves on the backend's address instead
	sk.expect(base, e.ts, o.senders)
	var first, last atomic.Int64
	sk.onDeliver = func() {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		last.Store(now)
	}
	ln, err := net.Listen("tcp", backendAddr)
	if err != nil {
		return false, fmt.Errorf("starting the backend on %s: %w", backendAddr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(sk.serve), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	stopWatch := p.watchMemory()
	c0 := p.cpuSnap()
	started := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	missing := n
	deadline := started.Add(max(o.drain, time.Duration(n/2000)*time.Second))
	for missing > 0 && time.Now().Before(deadline) {
		<-tick.C
		missing = 0
		for i := range sk.seen {
			if sk.seen[i].Load() == 0 {
				missing++
			}
		}
		e.printf("t=%4.1fs drain: delivered %d, missing %d, %s", time.Since(started).Seconds(), sk.total.Load(), missing, p.memory())
	}
	cpu := usage(c0, p.cpuSnap())
	wall := time.Since(started)
	peak := stopWatch()
	time.Sleep(200 * time.Millisecond)
	dups := 0
	for i := range sk.seen {
		if c := sk.seen[i].Load(); c > 1 {
			dups += int(c - 1)
		}
	}
	span := time.Duration(last.Load() - first.Load())
	rate := 0.0
	if span > 0 {
		rate = float64(sk.total.Load()-1) / span.Seconds()
	}
	e.printf("drain: %d delivered, first to last delivery %s: %.0f events/s (%.0f events/s from the backend's start, %s)", sk.total.Load(), span.Round(time.Millisecond), rate, float64(n-missing)/wall.Seconds(), time.Duration(first.Load()-started.UnixNano()).Round(time.Millisecond))
	e.printf("during the drain, %s; relay CPU per event %s; relay peak RSS %s", cpu, cpu.perRequest(rate), mib(max(peak.rss, peak.hwm)))
	ok := true
	ok = e.check("every queued event delivered", missing == 0, "%d missing of %d, %d duplicates", missing, n, dups) && ok
	ok = e.check("bodies delivered byte for byte", sk.bad.Load() == 0 && sk.out.Load() == 0, "%d altered, %d foreign", sk.bad.Load(), sk.out.Load()) && ok
	figures := true
	figures = e.check("drain rate to a live HTTP backend", rate >= targetDrainRate, "%.0f events/s (target ≥ %d)", rate, targetDrainRate) && figures
	figures = e.check("relay RSS with the backlog queued", max(queued.rss, restarted.rss) <= targetQueuedRSS, "%s before the restart, %s after (target ≤ %s with %d queued)", mib(queued.rss), mib(restarted.rss), mib(targetQueuedRSS), n) && figures
	figures = e.check("ready after a restart with the backlog", ready < targetReady, "%s (target < %s with %d queued)", ready.Round(time.Millisecond), targetReady, n) && figures
	if n < 1000000 {
		e.printf("note: -n %d is below the target backlog of 1000000", n)
	}
	return ok && (figures || !o.strict), nil
}

// fill posts n messages (sequence numbers base…) to the relay as fast as
// -conns connections go, each until it is answered 200 (a refused one is
// posted again).
func (e *env) fill(p *proc, base uint64, n int) (*result, error) {
	o := e.o
	var next atomic.Int64
	stats := make([]*workerStats, o.conns)
	var dials atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), max(10*time.Minute, time.Duration(n/1000)*time.Second))
	defer cancel()
	start := time.Now()
	for i := range o.conns {
		ws := &workerStats{lat: make([]time.Duration, 0, n/o.conns+1)}
		stats[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			pl := newPayload(e.ts, o.senders, benchSecret)
			c := newPoster(o.client, p.addr, &dials)
			defer c.close()
			for ctx.Err() == nil {
				idx := next.Add(1) - 1
				if idx >= int64(n) {
					return
				}
				b := pl.body(base + uint64(idx))
				for ctx.Err() == nil {
					t := time.Now()
					status, err := c.post(b, pl.sign(b))
					if ws.record(status, err, time.Since(t)) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	res := merge(stats, start, time.Since(start), dials.Load())
	e.seqs.next.Store(max(e.seqs.next.Load(), base+uint64(n)))
	if ctx.Err() != nil {
		return nil, fmt.Errorf("posting the backlog timed out after %d of %d", res.ok, n)
	}
	return res, nil
}

// dirSize is the disk use of a directory tree.
func dirSize(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return total
}
