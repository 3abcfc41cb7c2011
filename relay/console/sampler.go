package console

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// Overview is the relay's state at one moment, as the Source reports it.
// Counters (Requests, Delivered, ...) are cumulative since the start; the
// sampler turns them into rates.
type Overview struct {
	Channels     []Channel
	Backends     []Backend
	Upstreams    []Upstream
	Certificates []Certificate
	Credentials  []Credential
	QueueBytes   int64
}

// Channel is one inbound channel.
type Channel struct {
	Name, Provider string
	// Requests counts callbacks answered (any status).
	Requests float64
	// AuthFailures counts rejected callbacks by reason.
	AuthFailures map[string]float64
}

// Backend is one delivery backend.
type Backend struct {
	Name                    string
	Pending, InFlight, Dead int
	// Oldest is the arrival of the oldest undelivered event (zero: none).
	Oldest time.Time
	// Breaker: 0 closed, 1 half-open, 2 open.
	Breaker int
	// Delivered and Failed count attempts by outcome.
	Delivered, Failed float64
}

// Upstream is one outbound proxy.
type Upstream struct {
	Name    string
	Breaker int
	// Requests counts answers to callers; Errors those with status >= 500.
	Requests, Errors float64
}

// Certificate is one served certificate.
type Certificate struct {
	Listener, Source string
	Names            []string
	NotAfter         time.Time
}

// Credential is one expiring secret (channel auth, upstream injection).
type Credential struct {
	Owner, Name string
	Expires     time.Time
}

// sample is the counters of one Overview.
type sample struct {
	at time.Time
	v  map[string]float64
}

// sampler is a ring of the last n samples.
type sampler struct {
	mu   sync.Mutex
	ring []sample
	next int
	full bool
}

func newSampler(n int) *sampler { return &sampler{ring: make([]sample, n)} }

func counters(o Overview) map[string]float64 {
	v := map[string]float64{}
	for _, c := range o.Channels {
		v["ch\x00"+c.Name] = c.Requests
		total := 0.0
		for reason, n := range c.AuthFailures {
			v["cf\x00"+c.Name+"\x00"+reason] = n
			total += n
		}
		v["cft\x00"+c.Name] = total
	}
	for _, b := range o.Backends {
		v["bd\x00"+b.Name] = b.Delivered
		v["bf\x00"+b.Name] = b.Failed
	}
	for _, u := range o.Upstreams {
		v["ur\x00"+u.Name] = u.Requests
		v["ue\x00"+u.Name] = u.Errors
	}
	return v
}

func (s *sampler) add(at time.Time, o Overview) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ring[s.next] = sample{at: at, v: counters(o)}
	s.next = (s.next + 1) % len(s.ring)
	if s.next == 0 {
		s.full = true
	}
}

// samples returns the kept samples, oldest first, plus now as the last.
func (s *sampler) samples(now sample) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sample
	if s.full {
		out = append(out, s.ring[s.next:]...)
	}
	out = append(out, s.ring[:s.next]...)
	if len(out) == 0 || now.at.Sub(out[len(out)-1].at) > 500*time.Millisecond {
		out = append(out, now)
	}
	return out
}

// series is the per-second rate of one counter between samples.
type series struct {
	rates []float64
	// Window is the time the samples span; Delta the counter's increase.
	Window time.Duration
	Delta  float64
}

func rateSeries(ss []sample, key string) series {
	var out series
	if len(ss) < 2 {
		return out
	}
	for i := 1; i < len(ss); i++ {
		dt := ss[i].at.Sub(ss[i-1].at).Seconds()
		d := ss[i].v[key] - ss[i-1].v[key]
		if dt <= 0 || d < 0 {
			d = 0
			dt = math.Max(dt, 1)
		}
		out.rates = append(out.rates, d/dt)
	}
	out.Window = ss[len(ss)-1].at.Sub(ss[0].at)
	out.Delta = math.Max(0, ss[len(ss)-1].v[key]-ss[0].v[key])
	return out
}

// Now is the latest rate per second.
func (s series) Now() float64 {
	if len(s.rates) == 0 {
		return 0
	}
	return s.rates[len(s.rates)-1]
}

// chart is a sparkline of one or two series, drawn as SVG polylines.
type chart struct {
	W, H       int
	Line, Alt  string // points attributes
	Max        float64
	HasAlt     bool
	Title      string
	Empty      bool
	ViewBox    string
	BaselineY  int
	AltIsError bool
}

// sparkline scales main (and alt, on the same axis) into a W×H box.
func sparkline(main series, alt *series, title string) chart {
	c := chart{W: 160, H: 30, Title: title}
	c.ViewBox = fmt.Sprintf("0 0 %d %d", c.W, c.H)
	c.BaselineY = c.H - 1
	maxV := 0.0
	for _, v := range main.rates {
		maxV = math.Max(maxV, v)
	}
	if alt != nil {
		for _, v := range alt.rates {
			maxV = math.Max(maxV, v)
		}
	}
	c.Max = maxV
	c.Empty = len(main.rates) < 2
	if maxV == 0 {
		maxV = 1
	}
	c.Line = points(main.rates, c.W, c.H, maxV)
	if alt != nil {
		c.HasAlt = true
		c.Alt = points(alt.rates, c.W, c.H, maxV)
	}
	return c
}

func points(rates []float64, w, h int, maxV float64) string {
	if len(rates) == 0 {
		return ""
	}
	if len(rates) == 1 {
		rates = append(rates, rates[0])
	}
	var b strings.Builder
	step := float64(w-1) / float64(len(rates)-1)
	for i, v := range rates {
		y := float64(h-2) - v/maxV*float64(h-4)
		fmt.Fprintf(&b, "%.1f,%.1f ", float64(i)*step+0.5, y)
	}
	return strings.TrimSpace(b.String())
}
