package relay

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/2 rapid reset (CVE-2023-44487 and kin): a client opens streams and
// resets them at once, so that every stream costs the server a handler
// while the client pays two frames.
//
// net/http runs at most MaxConcurrentStreams handlers per connection and
// answers a connection that queues more than four times as many with
// GOAWAY ENHANCE_YOUR_CALM, but only while handlers are slow: the relay's
// handlers are fast, so 100,000 HEADERS+RST_STREAM pairs got no GOAWAY.
// h2Guard counts the streams a client cancels before their answer, per
// connection; past h2ResetBudget in h2ResetWindow the connection is
// marked abusive, and each of its further streams holds its handler slot
// for h2AbusePenalty without doing any work. The slots fill up, the queue
// grows past net/http's bound and net/http sends GOAWAY and closes the
// connection. Well-behaved clients (which cancel a stream now and then)
// never reach the budget.
const (
	h2MaxConcurrentStreams = 100
	h2ResetBudget          = 200
	h2ResetWindow          = time.Second
	h2AbusePenalty         = time.Second
)

type connGuardKey struct{}

// connGuard is one connection's reset count.
type connGuard struct {
	mu      sync.Mutex
	start   time.Time
	resets  int
	abusive atomic.Bool
}

// reset counts a canceled stream; it reports true once, when the
// connection crosses the budget.
func (g *connGuard) reset(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.start) > h2ResetWindow {
		g.start, g.resets = now, 0
	}
	g.resets++
	if g.resets > h2ResetBudget && !g.abusive.Load() {
		g.abusive.Store(true)
		return true
	}
	return false
}

// guardConnContext attaches a connGuard to every connection.
func guardConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connGuardKey{}, &connGuard{start: time.Now()})
}

// h2Guard wraps a listener's handler; see the comment above.
func h2Guard(listener string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, _ := r.Context().Value(connGuardKey{}).(*connGuard)
		if r.ProtoMajor != 2 || g == nil {
			next.ServeHTTP(w, r)
			return
		}
		if g.abusive.Load() {
			time.Sleep(h2AbusePenalty)
			return
		}
		next.ServeHTTP(w, r)
		if r.Context().Err() != nil && g.reset(time.Now()) {
			log.Warn("HTTP/2 client resets streams too fast: its connection is being closed",
				"listener", listener, "client", r.RemoteAddr, "reason", "rapid_reset")
		}
	})
}
