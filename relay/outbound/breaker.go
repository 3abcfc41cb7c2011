package outbound

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// breaker wraps the upstream's gobreaker with what gobreaker does not
// expose: when it opened, for Retry-After.
type breaker struct {
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor time.Duration

	mu       sync.Mutex
	openedAt time.Time
}

func (p *Proxy) newBreaker(bs BreakerSpec) *breaker {
	b := &breaker{openFor: bs.OpenFor}
	failures := uint32(bs.Failures)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        p.name,
		MaxRequests: uint32(bs.HalfOpenRequests),
		Timeout:     bs.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// Called with gobreaker's lock held: touch only our own state.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
			// A breaker replaced by a reload may still see its last
			// requests finish: only the current one is exported.
			if cur := p.cur.Load(); cur == nil || cur.br == b {
				p.m.breaker(p.name, stateValue(to))
			}
			lvl := slog.LevelWarn
			if to == gobreaker.StateClosed {
				lvl = slog.LevelInfo
			}
			p.log.Log(context.Background(), lvl, "upstream breaker state change",
				"from", from.String(), "to", to.String())
		},
		IsSuccessful: breakerSuccessful,
		IsExcluded:   breakerExcluded,
	})
	return b
}

// retryAfter returns the whole seconds until an open breaker lets a probe
// through, at least 1.
func (b *breaker) retryAfter() int {
	b.mu.Lock()
	left := time.Until(b.openedAt.Add(b.openFor))
	b.mu.Unlock()
	secs := int(math.Ceil(left.Seconds()))
	return max(secs, 1)
}

func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}
