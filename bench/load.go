package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// channelPath is the path of the bench's Meta channel (and of the baseline).
const channelPath = "/hooks/meta/bench"

// poster posts signed bodies over one keep-alive connection.
type poster interface {
	post(body, sig []byte) (int, error)
	close()
}

// newPoster returns a worker's connection: "raw" writes requests by hand,
// "http" uses net/http's client.
func newPoster(kind, addr string, dials *atomic.Int64) poster {
	if kind == "http" {
		return newHTTPConn(addr, dials)
	}
	return &conn{addr: addr, dials: dials}
}

// conn is one keep-alive HTTP/1.1 connection of a worker. Requests are
// written by hand and answers read with http.ReadResponse: the load
// generator shares the CPU with the server under test and must cost as
// little as possible.
type conn struct {
	addr  string
	c     net.Conn
	br    *bufio.Reader
	req   []byte
	dials *atomic.Int64
}

// httpConn is a worker's net/http client, limited to one connection.
type httpConn struct {
	url    string
	tr     *http.Transport
	client *http.Client
}

func newHTTPConn(addr string, dials *atomic.Int64) *httpConn {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, a)
		},
	}
	return &httpConn{url: "http://" + addr + channelPath, tr: tr, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (h *httpConn) post(body, sig []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(bytes.Clone(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "edgerelay-bench")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", string(sig))
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (h *httpConn) close() { h.tr.CloseIdleConnections() }

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// post sends one signed body and returns the answer's status.
func (c *conn) post(body, sig []byte) (int, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.dials.Add(1)
		c.c = nc
		c.br = bufio.NewReaderSize(nc, 4096)
	}
	c.req = append(c.req[:0], "POST "+channelPath+" HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\nUser-Agent: edgerelay-bench\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\nX-Hub-Signature-256: "...)
	c.req = append(c.req, sig...)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(c.req); err != nil {
		c.close()
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
	}
	return resp.StatusCode, nil
}

// result is what one load run measured.
type result struct {
	elapsed   time.Duration
	ok        int64           // 200 answers
	statuses  map[int]int64   // other answers by status
	errors    int64           // transport errors
	lat       []time.Duration // latency of every 200, sorted
	timeline  []window        // with -timeline
	cpu       cpuUse          // cores used during the run
	dials     int64           // connections opened
	lastError error
}

func (r *result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r *result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(r.lat))+0.5) - 1
	i = max(0, min(i, len(r.lat)-1))
	return r.lat[i]
}

func (r *result) otherStatuses() string {
	if len(r.statuses) == 0 && r.errors == 0 {
		return "none"
	}
	s := ""
	for _, code := range slices.Sorted(mapKeys(r.statuses)) {
		s += fmt.Sprintf("%d×%d ", r.statuses[code], code)
	}
	if r.errors > 0 {
		s += fmt.Sprintf("%d transport errors (last: %v)", r.errors, r.lastError)
	}
	return s
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// workerStats is one worker's share of a result.
type workerStats struct {
	ok       int64
	statuses map[int]int64
	errors   int64
	lat      []time.Duration
	lastErr  error
	timeline bool    // also record when each 200 arrived
	at       []int64 // completion times (UnixNano) of the 200s, with timeline
}

func (w *workerStats) record(status int, err error, d time.Duration) bool {
	switch {
	case err != nil:
		w.errors++
		w.lastErr = err
	case status == http.StatusOK:
		w.ok++
		w.lat = append(w.lat, d)
		if w.timeline {
			w.at = append(w.at, time.Now().UnixNano())
		}
		return true
	default:
		if w.statuses == nil {
			w.statuses = map[int]int64{}
		}
		w.statuses[status]++
	}
	return false
}

func merge(stats []*workerStats, start time.Time, elapsed time.Duration, dials int64) *result {
	r := &result{elapsed: elapsed, statuses: map[int]int64{}, dials: dials}
	r.timeline = timeline(stats, start, elapsed)
	n := 0
	for _, s := range stats {
		n += len(s.lat)
	}
	r.lat = make([]time.Duration, 0, n)
	for _, s := range stats {
		r.ok += s.ok
		r.errors += s.errors
		if s.lastErr != nil {
			r.lastError = s.lastErr
		}
		for k, v := range s.statuses {
			r.statuses[k] += v
		}
		r.lat = append(r.lat, s.lat...)
	}
	slices.Sort(r.lat)
	return r
}

// seqSource hands out unique message sequence numbers across a bench run.
type seqSource struct{ next atomic.Uint64 }

func (s *seqSource) take() uint64 { return s.next.Add(1) }

// closedLoop runs conns workers against addr, each posting as fast as its
// answers come, for warmup (not measured) and then d.
func closedLoop(client, addr string, conns int, warmup, d time.Duration, seqs *seqSource, ts int64, senders int, withTimeline bool) *result {
	return closedLoopHooks(client, addr, conns, warmup, d, seqs, ts, senders, withTimeline, loopHooks{})
}

// loopHooks lets a caller follow a closed loop: onAck gets the sequence
// number of every message answered 200 (warm-up included), measuring is
// called when the measured span starts (true) and ends (false).
type loopHooks struct {
	onAck     func(seq uint64)
	measuring func(on bool)
}

func closedLoopHooks(client, addr string, conns int, warmup, d time.Duration, seqs *seqSource, ts int64, senders int, withTimeline bool, hooks loopHooks) *result {
	var dials atomic.Int64
	var measuring, stop atomic.Bool
	stats := make([]*workerStats, conns)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(conns)
	for i := range conns {
		stats[i] = &workerStats{lat: make([]time.Duration, 0, 1<<14), timeline: withTimeline}
		wg.Add(1)
		go func(ws *workerStats) {
			defer wg.Done()
			p := newPayload(ts, senders, benchSecret)
			c := newPoster(client, addr, &dials)
			defer c.close()
			readyDone := false
			for !stop.Load() {
				seq := seqs.take()
				b := p.body(seq)
				sig := p.sign(b)
				start := time.Now()
				status, err := c.post(b, sig)
				el := time.Since(start)
				if err == nil && status == http.StatusOK && hooks.onAck != nil {
					hooks.onAck(seq)
				}
				if !readyDone {
					ready.Done()
					readyDone = true
				}
				if measuring.Load() {
					ws.record(status, err, el)
				} else if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if !readyDone {
				ready.Done()
			}
		}(stats[i])
	}
	ready.Wait()
	time.Sleep(warmup)
	measuring.Store(true)
	if hooks.measuring != nil {
		hooks.measuring(true)
	}
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	elapsed := time.Since(start)
	if hooks.measuring != nil {
		hooks.measuring(false)
	}
	stop.Store(true)
	wg.Wait()
	return merge(stats, start, elapsed, dials.Load())
}

// window is one slice of a run's timeline.
type window struct {
	from          time.Duration
	n             int
	p50, p99, max time.Duration
}

const windowSize = 250 * time.Millisecond

// timeline cuts the run into windows by completion time and gives each
// its count and latency quantiles: stalls show up as windows with few
// answers and a high maximum.
func timeline(stats []*workerStats, start time.Time, elapsed time.Duration) []window {
	if len(stats) == 0 || !stats[0].timeline {
		return nil
	}
	nw := int(elapsed/windowSize) + 1
	lats := make([][]time.Duration, nw)
	for _, s := range stats {
		for i, at := range s.at {
			w := int(time.Duration(at-start.UnixNano()) / windowSize)
			if w < 0 || w >= nw {
				continue
			}
			lats[w] = append(lats[w], s.lat[i])
		}
	}
	out := make([]window, nw)
	for i, l := range lats {
		slices.Sort(l)
		r := result{lat: l}
		out[i] = window{from: time.Duration(i) * windowSize, n: len(l), p50: r.quantile(.5), p99: r.quantile(.99)}
		if len(l) > 0 {
			out[i].max = l[len(l)-1]
		}
	}
	return out
}
