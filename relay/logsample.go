package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log sampling: a log line must never be an attacker's amplifier. Every
// WARN and ERROR record goes through sampleHandler, keyed by its message
// and its "reason" (or "code") attribute: the first sampleBurst records of
// a key in each sampleInterval are written, the rest are counted, and the
// next record of that key after the interval is preceded by one summary
// line "repeated log lines suppressed" with the count. INFO and DEBUG
// records (one line per accepted callback and per delivery attempt, which
// cost the sender a verified request) pass unchanged.

const (
	sampleBurst    = 20
	sampleInterval = 10 * time.Second
	sampleMaxKeys  = 4096 // beyond it, new keys share one bucket
)

type sampleKey struct{ msg, reason string }

type sampleBucket struct {
	start      time.Time
	n          int
	suppressed int
}

type sampleState struct {
	mu      sync.Mutex
	buckets map[sampleKey]*sampleBucket
	now     func() time.Time
}

type sampleHandler struct {
	next slog.Handler
	st   *sampleState
}

// newSampleHandler wraps next; now may be nil (time.Now).
func newSampleHandler(next slog.Handler, now func() time.Time) *sampleHandler {
	if now == nil {
		now = time.Now
	}
	return &sampleHandler{next: next, st: &sampleState{buckets: map[sampleKey]*sampleBucket{}, now: now}}
}

func (h *sampleHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *sampleHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sampleHandler{next: h.next.WithAttrs(as), st: h.st}
}

func (h *sampleHandler) WithGroup(name string) slog.Handler {
	return &sampleHandler{next: h.next.WithGroup(name), st: h.st}
}

func (h *sampleHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	k := sampleKey{msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" || a.Key == "code" {
			k.reason = a.Value.String()
			return false
		}
		return true
	})
	now := h.st.now()
	h.st.mu.Lock()
	b := h.st.buckets[k]
	if b == nil {
		if len(h.st.buckets) >= sampleMaxKeys {
			k = sampleKey{msg: "(other)"}
			b = h.st.buckets[k]
		}
		if b == nil {
			b = &sampleBucket{start: now}
			h.st.buckets[k] = b
		}
	}
	var summary int
	if now.Sub(b.start) >= sampleInterval {
		summary = b.suppressed
		b.start, b.n, b.suppressed = now, 0, 0
	}
	pass := b.n < sampleBurst
	if pass {
		b.n++
	} else {
		b.suppressed++
	}
	h.st.mu.Unlock()
	if summary > 0 {
		sr := slog.NewRecord(now, slog.LevelWarn, "repeated log lines suppressed", 0)
		sr.AddAttrs(slog.String("message", k.msg), slog.String("reason", k.reason),
			slog.Int("suppressed", summary), slog.Duration("interval", sampleInterval))
		h.next.Handle(ctx, sr)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// flush writes the summaries of every key with suppressed records (at
// shutdown, so that the last burst is accounted for).
func (h *sampleHandler) flush() {
	h.st.mu.Lock()
	type item struct {
		k sampleKey
		n int
	}
	var items []item
	for k, b := range h.st.buckets {
		if b.suppressed > 0 {
			items = append(items, item{k, b.suppressed})
			b.suppressed = 0
		}
	}
	h.st.mu.Unlock()
	for _, it := range items {
		sr := slog.NewRecord(h.st.now(), slog.LevelWarn, "repeated log lines suppressed", 0)
		sr.AddAttrs(slog.String("message", it.k.msg), slog.String("reason", it.k.reason), slog.Int("suppressed", it.n))
		h.next.Handle(context.Background(), sr)
	}
}
