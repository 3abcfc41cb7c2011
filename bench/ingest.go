package main

import (
	"fmt"
	"runtime"
	"slices"
	"time"
)

func goVersion() string { return runtime.Version() }
func goos() string      { return runtime.GOOS }
func goarch() string    { return runtime.GOARCH }
func numCPU() int       { return runtime.NumCPU() }

// Targets of the current round of figures (the numbers).
const (
	targetRatio      = 0.60
	targetP99        = 15 * time.Millisecond
	targetRSS        = 100 << 20
	targetPassRate   = 10000
	backlogSlopeFrac = 0.02 // a backlog growing by more than 2% of the offered rate is growing
	targetNginxRatio = 0.70 // pass-through at saturating load against nginx proxy_pass
	targetNginxP99   = 2.0  // and its p99 against nginx's, at most this many times
	targetDrainRate  = 15000
	targetQueuedRSS  = 200 << 20 // with the -n backlog queued
	targetReady      = 2 * time.Second
)

// relayRun is one loaded relay run.
type relayRun struct {
	res            *result
	mem            memInfo // at the end of the load
	peak           memInfo // peaks sampled during the load
	commits, syncs float64
	attempts       float64 // delivery attempts during the load
}

func (r *relayRun) perSync() float64 {
	if r.syncs == 0 {
		return 0
	}
	return r.commits / r.syncs
}

// ingest alternates baseline and relay runs and compares them.
func (e *env) ingest() (bool, error) {
	o := e.o
	e.printf("== ingest: %d connections (%s client), 1 KB Meta callbacks signed with X-Hub-Signature-256, %s per run (after %s warm-up), %d round(s)", o.conns, o.client, o.duration, o.warmup, o.rounds)
	var sinkURL string
	if o.backend == "down" {
		e.printf("relay backend: down (a closed local port, distinct from the relay's own): the relay makes every event durable and keeps it on disk, so this is the durable ingest rate alone")
	} else {
		sk, err := newSink(0)
		if err != nil {
			return false, err
		}
		defer sk.close()
		sinkURL = sk.url
		e.printf("relay backend: live sink in the bench process (%s): deliveries run during the load", sinkURL)
	}
	e.printf("relay log level: %s, log file in the work dir", o.logLevel)

	var base []*result
	var rel []*relayRun
	for round := 1; round <= o.rounds; round++ {
		order := []string{"baseline", "relay"}
		if round%2 == 0 {
			order = []string{"relay", "baseline"}
		}
		for _, which := range order {
			if which == "baseline" {
				r, err := e.loadBaseline()
				if err != nil {
					return false, err
				}
				base = append(base, r)
				e.printf("round %d baseline: %.0f req/s, p50 %s, p99 %s, %d connections, errors: %s, %s, server CPU per request %s",
					round, r.rate(), ms(r.quantile(.5)), ms(r.quantile(.99)), r.dials, r.otherStatuses(), r.cpu, r.cpu.perRequest(r.rate()))
				continue
			}
			rr, err := e.loadRelay(sinkURL, o.logLevel, e.profileFor(o.duration))
			if err != nil {
				return false, err
			}
			rel = append(rel, rr)
			e.printf("round %d relay:    %.0f events/s, p50 %s, p99 %s, %d connections, errors: %s, %s, %.1f commits per fsync, %.0f delivery attempts, %s, server CPU per event %s",
				round, rr.res.rate(), ms(rr.res.quantile(.5)), ms(rr.res.quantile(.99)), rr.res.dials, rr.res.otherStatuses(),
				rr.mem, rr.perSync(), rr.attempts, rr.res.cpu, rr.res.cpu.perRequest(rr.res.rate()))
		}
	}

	bRate := median(base, func(r *result) float64 { return r.rate() })
	rRate := median(rel, func(r *relayRun) float64 { return r.res.rate() })
	bP50 := median(base, func(r *result) float64 { return float64(r.quantile(.5)) })
	bP99 := median(base, func(r *result) float64 { return float64(r.quantile(.99)) })
	rP50 := median(rel, func(r *relayRun) float64 { return float64(r.res.quantile(.5)) })
	rP99 := median(rel, func(r *relayRun) float64 { return float64(r.res.quantile(.99)) })
	var ratios []float64
	for i := range min(len(base), len(rel)) {
		ratios = append(ratios, rel[i].res.rate()/base[i].rate())
	}
	hwm := slices.MaxFunc(rel, func(a, b *relayRun) int { return int(a.mem.hwm - b.mem.hwm) }).mem.hwm
	perSync := median(rel, func(r *relayRun) float64 { return r.perSync() })
	e.printf("baseline rate (median): %.0f req/s", bRate)
	e.printf("baseline latency (median): p50 %s, p99 %s", ms(time.Duration(bP50)), ms(time.Duration(bP99)))
	e.printf("relay rate (median): %.0f events/s", rRate)
	e.printf("relay latency (median): p50 %s, p99 %s", ms(time.Duration(rP50)), ms(time.Duration(rP99)))
	e.printf("ratio relay/baseline (of medians): %.2f", rRate/bRate)
	e.printf("ratio relay/baseline (per round): %s (median %.2f)", fmtFloats(ratios), medianF(ratios))
	anon := slices.MaxFunc(rel, func(a, b *relayRun) int { return int(a.peak.anon - b.peak.anon) }).peak.anon
	e.printf("relay peak RSS: %s (VmHWM)", mib(hwm))
	e.printf("relay peak anonymous RSS: %s (heap, stacks, Badger memtables; the rest is file-backed: mmapped value log, WAL and tables)", mib(anon))
	e.printf("relay commits per fsync (median): %.1f", perSync)
	bCPU := median(base, func(r *result) float64 { return r.cpu.server / r.rate() * 1e6 })
	rCPU := median(rel, func(r *relayRun) float64 { return r.res.cpu.server / r.res.rate() * 1e6 })
	e.printf("server CPU per request (median): baseline %.0fµs, relay %.0fµs (%.1f×)", bCPU, rCPU, rCPU/bCPU)

	ok := true
	ok = e.check("durable ingest ratio", rRate/bRate >= targetRatio, "%.2f (target ≥ %.2f)", rRate/bRate, targetRatio) && ok
	ok = e.check("relay p99 ack latency", time.Duration(rP99) <= targetP99, "%s (target ≤ %s)", ms(time.Duration(rP99)), ms(targetP99)) && ok
	if o.backend == "down" {
		// Every event stays queued (200k and more, on disk and partly in the page cache): memory
		// grows with that backlog by design. The RSS target is for a live backend (-mode
		// passthrough, or -backend live here).
		e.printf("relay peak RSS not checked with the backend down (the backlog grows by design; see -mode passthrough)")
	} else {
		ok = e.check("relay peak RSS", hwm <= targetRSS, "%s (target ≤ %s)", mib(hwm), mib(targetRSS)) && ok
		e.printf("check relay peak anonymous RSS: %s: %s (the target applied to anonymous memory only)", verdict(anon <= targetRSS), mib(anon))
	}
	for _, rr := range rel {
		if rr.res.ok == 0 || len(rr.res.statuses) > 0 {
			ok = e.check("relay answered only 200", false, "other answers: %s", rr.res.otherStatuses()) && ok
			break
		}
	}

	if o.infoRound {
		rr, err := e.loadRelay(sinkURL, "info", 0)
		if err != nil {
			return false, err
		}
		e.printf("relay at log level info: %.0f events/s (%.2f × the baseline median), p50 %s, p99 %s, %s",
			rr.res.rate(), rr.res.rate()/bRate, ms(rr.res.quantile(.5)), ms(rr.res.quantile(.99)), rr.mem)
	}
	if o.cpuprofile != "" && e.profiled {
		e.printf("relay CPU profile: %s (go tool pprof -top %s %s)", o.cpuprofile, e.bin, o.cpuprofile)
	}
	return ok || !o.strict, nil
}

// check prints a check line and returns whether it passed.
func (e *env) check(name string, pass bool, format string, args ...any) bool {
	e.printf("check %s: %s: %s", name, verdict(pass), fmt.Sprintf(format, args...))
	return pass
}

func verdict(pass bool) string {
	if pass {
		return "ok"
	}
	return "MISSED"
}

func (e *env) loadBaseline() (*result, error) {
	p, err := e.startBaseline()
	if err != nil {
		return nil, err
	}
	defer p.stop()
	c0 := p.cpuSnap()
	res := closedLoop(e.o.client, p.addr, e.o.conns, e.o.warmup, e.o.duration, &e.seqs, e.ts, e.o.senders, e.o.timeline)
	res.cpu = usage(c0, p.cpuSnap())
	e.printTimeline("baseline", res)
	return res, nil
}

// printTimeline prints a run's windows (with -timeline).
func (e *env) printTimeline(name string, r *result) {
	for _, w := range r.timeline {
		e.printf("timeline %s %5.2fs: %6.0f/s, p50 %s, p99 %s, max %s", name, w.from.Seconds(), float64(w.n)/windowSize.Seconds(), ms(w.p50), ms(w.p99), ms(w.max))
	}
}

func (e *env) loadRelay(sinkURL, level string, profileFor time.Duration) (*relayRun, error) {
	p, err := e.startRelay(relaySpec{backendURL: sinkURL, concurrency: 16, logLevel: level, profileFor: profileFor})
	if err != nil {
		return nil, err
	}
	defer e.finish(p)
	before, err := e.metrics(p)
	if err != nil {
		return nil, fmt.Errorf("scraping the relay's metrics: %w", err)
	}
	stopWatch := p.watchMemory()
	c0 := p.cpuSnap()
	res := closedLoop(e.o.client, p.addr, e.o.conns, e.o.warmup, e.o.duration, &e.seqs, e.ts, e.o.senders, e.o.timeline)
	res.cpu = usage(c0, p.cpuSnap())
	peak := stopWatch()
	after, err := e.metrics(p)
	if err != nil {
		return nil, fmt.Errorf("scraping the relay's metrics: %w", err)
	}
	rr := &relayRun{res: res, peak: peak}
	rr.mem = p.memory()
	e.printTimeline("relay", res)
	rr.commits = after["edgerelay_queue_commits_total"] - before["edgerelay_queue_commits_total"]
	rr.syncs = after["edgerelay_queue_syncs_total"] - before["edgerelay_queue_syncs_total"]
	rr.attempts = after["edgerelay_delivery_attempts_total"] - before["edgerelay_delivery_attempts_total"]
	if profileFor > 0 {
		// The profile ends on its own timer; give it time to be written.
		time.Sleep(500 * time.Millisecond)
	}
	return rr, nil
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return medianF(v)
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func fmtFloats(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%.2f", x)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
