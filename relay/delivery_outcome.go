package relay

// The outcome of a delivery attempt, whatever the destination: an ack (url
// backends' acks go through one ack loop per backend), a retry with backoff,
// or a dead letter, with the attempt's log line and the breaker told.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// ackReq is a delivered lease on its way to the queue, with what its log line says.
type ackReq struct {
	l       *queue.Lease
	status  int
	elapsed time.Duration
}

// ackLoop records the deliveries the workers of a backend report
// delivered, all those waiting in one queue commit. A worker goes on to its
// next attempt while its ack is written; the delivery keeps its order key
// until then (the queue lets the key go when the ack is committed), so the
// next event of the same sender still waits for it.
func (d *deliverer) ackLoop() {
	defer d.wg.Done()
	var (
		batch []ackReq
		ls    []*queue.Lease
	)
	for a := range d.acks {
		batch = append(batch[:0], a)
	more:
		for len(batch) < cap(d.acks) {
			select {
			case a, ok := <-d.acks:
				if !ok {
					break more
				}
				batch = append(batch, a)
			default:
				break more
			}
		}
		ls = ls[:0]
		for _, a := range batch {
			ls = append(ls, a.l)
		}
		d.ackAll(ls, batch)
	}
}

// ackAll acknowledges delivered leases in one queue commit, then writes
// each one's line: "delivered" at info, or the failure to record it.
func (d *deliverer) ackAll(ls []*queue.Lease, batch []ackReq) {
	err := d.s.q.AckAll(ls)
	if err == nil && !d.s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	for _, a := range batch {
		log := d.attemptLog(a.l, a.status, a.elapsed)
		if err != nil {
			log.Error("delivered but not acknowledged in the queue: it may be delivered again", "err", err)
			continue
		}
		log.Info("delivered")
	}
}

// expired dead-letters l, before any attempt, when it is older than the
// backend's max_age.
func (d *deliverer) expired(rt *backendRuntime, l *queue.Lease) bool {
	if rt.cfg.Retry.MaxAge <= 0 || time.Since(l.Event.ReceivedAt) <= rt.cfg.Retry.MaxAge {
		return false
	}
	d.deadLetter(l, fmt.Sprintf("max_age %s exceeded", rt.cfg.Retry.MaxAge), "max_age")
	return true
}

// attemptResult classifies one answer.
type attemptResult int

const (
	delivered attemptResult = iota
	retryable
	permanent
)

// finish turns the outcome of one attempt, whatever the destination, into
// an ack, a retry or a dead letter, and tells the breaker.
func (d *deliverer) finish(rt *backendRuntime, l *queue.Lease, done func(error), res attemptResult, status int, retryAfter time.Duration, errText string, elapsed time.Duration) {
	ev := l.Event
	d.duration.Observe(elapsed.Seconds())
	if res == delivered {
		// url backends only: a bus batch's delivered leases go to ackDelivered.
		// ackLoop writes the line once the ack is recorded.
		done(nil)
		d.delivered.Inc()
		d.acks <- ackReq{l, status, elapsed}
		return
	}
	log := d.attemptLog(l, status, elapsed)

	switch res {
	case permanent:
		done(nil) // the backend answered: it is up
		d.s.metrics.attempts.WithLabelValues(d.name, "rejected").Inc()
		log.Warn("delivery rejected by backend: dead letter", "err", errText)
		d.deadLetter(l, errText, "rejected")
	case retryable:
		done(errors.New(errText))
		d.s.metrics.attempts.WithLabelValues(d.name, "failed").Inc()
		pol := rt.cfg.Retry
		if pol.MaxAttempts > 0 && l.Attempt >= pol.MaxAttempts {
			log.Warn("delivery failed: max_attempts reached, dead letter", "err", errText)
			d.deadLetter(l, fmt.Sprintf("max_attempts %d reached: %s", pol.MaxAttempts, errText), "max_attempts")
			return
		}
		delay := backoff(pol.Initial, pol.Max, l.Attempt)
		if retryAfter > delay {
			delay = retryAfter
		}
		at := time.Now().Add(delay)
		if pol.MaxAge > 0 {
			deadline := ev.ReceivedAt.Add(pol.MaxAge)
			if !time.Now().Before(deadline) {
				log.Warn("delivery failed: max_age reached, dead letter", "err", errText)
				d.deadLetter(l, fmt.Sprintf("max_age %s reached: %s", pol.MaxAge, errText), "max_age")
				return
			}
			if at.After(deadline) {
				at = deadline // one last attempt at the deadline
			}
		}
		if err := d.s.q.Retry(l, at, errText); err != nil {
			log.Error("cannot record the failed attempt", "err", err)
			return
		}
		log.Warn("delivery failed, will retry", "err", errText, "retry_in_ms", time.Until(at).Milliseconds())
	}
}

// attemptLog is the log of one attempt of l.
func (d *deliverer) attemptLog(l *queue.Lease, status int, elapsed time.Duration) attemptLog {
	return attemptLog{d.s.log, []any{"backend", d.name, "event_id", l.Event.ID, "channel", l.Event.Channel, "attempt", l.Attempt,
		"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000}}
}

// attemptLog writes one delivery attempt's line; the logger is not derived
// per attempt, and nothing is formatted when the level is off.
type attemptLog struct {
	l     *slog.Logger
	attrs []any
}

func (a attemptLog) Info(msg string, args ...any)  { a.log(slog.LevelInfo, msg, args) }
func (a attemptLog) Warn(msg string, args ...any)  { a.log(slog.LevelWarn, msg, args) }
func (a attemptLog) Error(msg string, args ...any) { a.log(slog.LevelError, msg, args) }

func (a attemptLog) log(level slog.Level, msg string, args []any) {
	if a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, msg, append(a.attrs, args...)...)
	}
}

func (d *deliverer) deadLetter(l *queue.Lease, why, reason string) {
	d.s.metrics.deadLetters.WithLabelValues(d.name, reason).Inc()
	if err := d.s.q.Dead(l, why); err != nil {
		d.s.log.Error("cannot record dead letter", "backend", d.name, "event_id", l.Event.ID, "err", err)
	}
}

// backoff is exponential backoff with full jitter: a random delay in
// [initial/2, min(max, initial·2^(attempt-1))]. The floor of initial/2
// keeps a dead backend from being hammered by zero-delay draws.
func backoff(initial, max time.Duration, attempt int) time.Duration {
	ceil := initial
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	floor := initial / 2
	if ceil <= floor {
		return ceil
	}
	return floor + rand.N(ceil-floor)
}
