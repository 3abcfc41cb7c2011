package main

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// sink is the live backend: it answers 200 to every delivery and records
// which bench messages arrived, how often, and whether byte for byte.
type sink struct {
	url   string
	srv   *http.Server
	base  uint64
	ts    int64
	seen  []atomic.Int32 // deliveries per message (index seq-base)
	total atomic.Int64
	bad   atomic.Int64 // bodies that are not a bench message or differ from what was sent
	noID  atomic.Int64 // deliveries without X-Relay-Event-Id
	out   atomic.Int64 // messages outside the tracked range
	pool  sync.Pool
	check func(seq uint64, body []byte) bool
	// onDeliver, when set before the sink serves, is called for every delivery.
	onDeliver func()
}

// newSink starts a sink tracking n messages from base (n = 0: count only).
func newSink(n int) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{url: "http://" + ln.Addr().String() + "/events", seen: make([]atomic.Int32, n)}
	s.pool.New = func() any { return new(bytes.Buffer) }
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// expect sets what the bodies must be (see payload) before the load.
func (s *sink) expect(base uint64, ts int64, senders int) {
	s.base, s.ts = base, ts
	payloads := sync.Pool{New: func() any { return newPayload(ts, senders, benchSecret) }}
	s.pool.New = func() any { return new(bytes.Buffer) }
	s.check = func(seq uint64, b []byte) bool {
		p := payloads.Get().(*payload)
		defer payloads.Put(p)
		return bytes.Equal(p.body(seq), b)
	}
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	buf := s.pool.Get().(*bytes.Buffer)
	defer s.pool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.total.Add(1)
	if s.onDeliver != nil {
		s.onDeliver()
	}
	if r.Header.Get("X-Relay-Event-Id") == "" {
		s.noID.Add(1)
	}
	w.WriteHeader(http.StatusOK)
	if len(s.seen) == 0 {
		return
	}
	seq, err := seqOf(buf.Bytes())
	if err != nil {
		s.bad.Add(1)
		return
	}
	if seq < s.base || seq-s.base >= uint64(len(s.seen)) {
		s.out.Add(1)
		return
	}
	if s.check != nil && !s.check(seq, buf.Bytes()) {
		s.bad.Add(1)
	}
	s.seen[seq-s.base].Add(1)
}

func (s *sink) close() { s.srv.Close() }

// passthrough offers a paced load to the relay in front of a live backend
// and checks that every acknowledged event arrives.
func (e *env) passthrough() (bool, error) {
	o := e.o
	n := int(float64(o.rate)*o.ptDuration.Seconds()) + o.rate
	base := e.seqs.next.Load() + 1<<20
	sk, err := newSink(n)
	if err != nil {
		return false, err
	}
	defer sk.close()
	sk.expect(base, e.ts, o.senders)
	e.printf("== passthrough: %d events/s offered open-loop over %d connections (%s client) for %s; live backend %s (answers 200 at once); backend concurrency %d; %d senders", o.rate, o.conns, o.client, o.ptDuration, sk.url, o.concurrent, o.senders)
	profileFor := e.profileFor(max(time.Second, o.ptDuration-2*time.Second))
	p, err := e.startRelay(relaySpec{backendURL: sk.url, concurrency: o.concurrent, logLevel: o.logLevel, profileFor: profileFor})
	if err != nil {
		return false, err
	}
	defer e.finish(p)

	acked := make([]atomic.Bool, n)
	c0 := p.cpuSnap()
	load := newOpenLoop(o.client, p.addr, o.conns, o.rate, o.ptDuration, base, n, e.ts, o.senders, func(i int) { acked[i].Store(true) })

	countAcked := func() (acks, missing int) {
		for i := range acked {
			if acked[i].Load() {
				acks++
				if sk.seen[i].Load() == 0 {
					missing++
				}
			}
		}
		return
	}
	type sample struct {
		t       time.Duration
		backlog int
	}
	var samples []sample
	var peakRSS, peakAnon int64
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastDelivered int64
	report := func(phase string) (backlog int, missing int) {
		pending, inFlight, err := e.backlog(p)
		m := p.memory()
		peakRSS = max(peakRSS, m.rss)
		peakAnon = max(peakAnon, m.anon)
		acks, missing := countAcked()
		d := sk.total.Load()
		el := time.Since(start)
		if err != nil {
			e.printf("t=%4.1fs %s: acked %d, delivered %d (+%d), backlog unknown (%v), %s", el.Seconds(), phase, acks, d, d-lastDelivered, err, m)
		} else {
			e.printf("t=%4.1fs %s: acked %d, delivered %d (+%d), backlog %d (pending %d, in flight %d), acked not yet delivered %d, %s",
				el.Seconds(), phase, acks, d, d-lastDelivered, pending+inFlight, pending, inFlight, missing, m)
		}
		lastDelivered = d
		return pending + inFlight, missing
	}
loading:
	for {
		select {
		case <-load.done:
			break loading
		case <-tick.C:
			b, _ := report("load")
			samples = append(samples, sample{time.Since(start), b})
		}
	}
	res := load.result()
	res.cpu = usage(c0, p.cpuSnap())
	loadEnd := time.Now()
	deliveredAtEnd := sk.total.Load()
	acks, missing := countAcked()
	drainDeadline := loadEnd.Add(o.drain)
	for missing > 0 && time.Now().Before(drainDeadline) {
		time.Sleep(100 * time.Millisecond)
		if _, missing = countAcked(); missing == 0 {
			break
		}
		select {
		case <-tick.C:
			report("drain")
		default:
		}
	}
	drained := time.Since(loadEnd)
	_, missing = countAcked()
	endMem := p.memory()
	hwm := endMem.hwm
	// A last look at deliveries still arriving (duplicates after a retry).
	time.Sleep(200 * time.Millisecond)
	dups := 0
	for i := range sk.seen {
		if c := sk.seen[i].Load(); c > 1 {
			dups += int(c - 1)
		}
	}

	// Backlog trend over the load, leaving out the first two seconds.
	var xs, ys []float64
	maxBacklog := 0
	for _, s := range samples {
		maxBacklog = max(maxBacklog, s.backlog)
		if s.t >= 2*time.Second {
			xs = append(xs, s.t.Seconds())
			ys = append(ys, float64(s.backlog))
		}
	}
	slope := slopeOf(xs, ys)
	loadSecs := res.elapsed.Seconds()

	e.printf("offered rate: %.0f events/s (%d due, %d not sent because every connection was busy)", float64(load.issued.Load())/o.ptDuration.Seconds(), load.issued.Load(), load.behind.Load())
	e.printf("acknowledged rate: %.0f events/s (%d acknowledged in %s, other answers: %s)", float64(acks)/loadSecs, acks, res.elapsed.Round(time.Millisecond), res.otherStatuses())
	e.printf("ack latency from due time: p50 %s, p99 %s", ms(res.quantile(.5)), ms(res.quantile(.99)))
	e.printf("delivered rate during the load: %.0f events/s", float64(deliveredAtEnd)/loadSecs)
	e.printf("backlog: max %d, trend %+.1f events/s over the load (samples after 2s: %d)", maxBacklog, slope, len(xs))
	e.printf("drain after the load: %s", drained.Round(time.Millisecond))
	e.printf("during the load, %s (the load generator includes the backend); relay CPU per event %s", res.cpu, res.cpu.perRequest(float64(acks)/loadSecs))
	e.printf("delivered: %d deliveries, %d duplicate(s), %d altered or foreign bodies, %d without X-Relay-Event-Id", sk.total.Load(), dups, sk.bad.Load(), sk.noID.Load())
	e.printf("missing (acknowledged, never delivered): %d", missing)
	e.printf("relay peak RSS: %s (at the end: %s)", mib(max(hwm, peakRSS)), endMem)

	correct := true
	correct = e.check("every acknowledged event delivered", missing == 0 && acks > 0, "%d missing of %d acknowledged (waited %s)", missing, acks, drained.Round(time.Millisecond)) && correct
	correct = e.check("bodies delivered byte for byte", sk.bad.Load() == 0 && sk.out.Load() == 0, "%d altered, %d foreign", sk.bad.Load(), sk.out.Load()) && correct
	figures := true
	figures = e.check("acknowledged rate", float64(acks)/loadSecs >= 0.99*float64(o.rate), "%.0f events/s of %d offered (target ≥ 99%%)", float64(acks)/loadSecs, o.rate) && figures
	// A flat backlog proves nothing when the relay did not take the load.
	sustained := float64(acks)/loadSecs >= 0.99*float64(o.rate)
	figures = e.check("no growing backlog at the offered rate", sustained && slope <= backlogSlopeFrac*float64(o.rate),
		"trend %+.1f events/s (target ≤ %.0f, with the offered rate acknowledged: %v)", slope, backlogSlopeFrac*float64(o.rate), sustained) && figures
	figures = e.check("relay peak RSS under load", max(hwm, peakRSS) <= targetRSS, "%s (target ≤ %s)", mib(max(hwm, peakRSS)), mib(targetRSS)) && figures
	e.printf("check relay peak anonymous RSS under load: %s: %s (sampled each second; the target applied to anonymous memory only)", verdict(peakAnon <= targetRSS), mib(peakAnon))
	if profileFor > 0 {
		e.printf("relay CPU profile: %s (go tool pprof -top %s %s)", o.cpuprofile, e.bin, o.cpuprofile)
	}
	if o.rate < targetPassRate {
		e.printf("note: -rate %d is below the target load of %d events/s", o.rate, targetPassRate)
	}
	return correct && (figures || !o.strict), nil
}

// slopeOf is the least-squares slope of ys over xs (0 with fewer than two
// points).
func slopeOf(xs, ys []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	n := float64(len(xs))
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// openLoop is a paced load: a pacer issues one token per 1/rate second,
// stamped with the time it is due; workers take tokens and post. Tokens the
// workers cannot take within a second are counted as not sent.
type openLoop struct {
	done   chan struct{}
	issued atomic.Int64
	behind atomic.Int64
	stats  []*workerStats
	dials  atomic.Int64
	start  time.Time
	end    time.Time
}

func newOpenLoop(client, addr string, conns, rate int, d time.Duration, base uint64, n int, ts int64, senders int, onAck func(int)) *openLoop {
	l := &openLoop{done: make(chan struct{})}
	tokens := make(chan time.Time, rate)
	var next atomic.Int64
	var wg sync.WaitGroup
	l.stats = make([]*workerStats, conns)
	for i := range conns {
		ws := &workerStats{lat: make([]time.Duration, 0, 1<<12)}
		l.stats[i] = ws
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := newPayload(ts, senders, benchSecret)
			c := newPoster(client, addr, &l.dials)
			defer c.close()
			for due := range tokens {
				idx := int(next.Add(1) - 1)
				if idx >= n {
					continue
				}
				b := p.body(base + uint64(idx))
				status, err := c.post(b, p.sign(b))
				if ws.record(status, err, time.Since(due)) {
					onAck(idx)
				}
			}
		}()
	}
	l.start = time.Now()
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		interval := time.Second / time.Duration(rate)
		total := int64(float64(rate) * d.Seconds())
		var issued int64
		for issued < total {
			now := <-t.C
			due := min(total, int64(float64(rate)*now.Sub(l.start).Seconds()))
			for ; issued < due; issued++ {
				select {
				case tokens <- l.start.Add(time.Duration(issued) * interval):
				default:
					l.behind.Add(1)
				}
			}
			l.issued.Store(issued)
		}
		close(tokens)
		wg.Wait()
		l.end = time.Now()
		close(l.done)
	}()
	return l
}

func (l *openLoop) result() *result {
	<-l.done
	return merge(l.stats, l.start, l.end.Sub(l.start), l.dials.Load())
}
