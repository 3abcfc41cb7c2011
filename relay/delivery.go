package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/h1"
	"github.com/edgerelay/edgerelay/relay/inject"
)

// receivedAtFormat is RFC 3339 in UTC with all nine digits of nanoseconds.
const receivedAtFormat = "2006-01-02T15:04:05.000000000Z07:00"

// deliverer runs the deliveries of one backend: Concurrency workers that
// lease from the queue, a circuit breaker, and the retry policy. Each
// backend has its own, so a dead backend never holds another back.
type deliverer struct {
	s       *Server
	name    string
	rt      atomic.Pointer[backendRuntime]
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	bcfg    BreakerConfig
	workers int

	ctx    context.Context // cancelled by stop: no new leases
	cancel context.CancelFunc
	wg     sync.WaitGroup
	leases chan *queue.Lease // url backends: from feed to the workers
	acks   chan ackReq       // url backends: from the workers to ackLoop
}

// ackReq is a delivered lease on its way to the queue, with what its log line says.
type ackReq struct {
	l       *queue.Lease
	status  int
	elapsed time.Duration
}

// backendRuntime is what an attempt needs; swapped whole on reload.
type backendRuntime struct {
	cfg     *BackendConfig
	client  *http.Client
	tokenTr *http.Transport // token calls (oauth2, huawei_iam); nil without
	signer  *auth.WebhookSigner
	inject  *inject.Set
	limiter *rate.Limiter                         // nil without rate
	proxy   func(*http.Request) (*url.URL, error) // nil: direct
	bus     *busRuntime                           // nil for url backends
}

// newBackendRuntime builds the client, credentials and pacing of b. The
// token caches and the rate limiter of old (the previous runtime, may be
// nil) are kept when their settings did not change.
func newBackendRuntime(b *BackendConfig, old *backendRuntime) (*backendRuntime, error) {
	if b.Kafka != nil || b.NATS != nil {
		return newBusBackendRuntime(b)
	}
	tc, err := clientTLS(b.Trust)
	if err != nil {
		return nil, err
	}
	proxy, err := inject.Proxy(b.Proxy)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", b.Name, err)
	}
	tr := &http.Transport{
		Proxy:                 proxy, // nil: direct, never an environment proxy unless proxy = "env"
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          b.Concurrency * 2,
		MaxIdleConnsPerHost:   b.Concurrency * 2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: b.Timeout,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	rt := &backendRuntime{
		cfg:   b,
		proxy: proxy,
		client: &http.Client{
			Transport: tr,
			Timeout:   b.Timeout,
			// A backend's redirect is its answer; following it could send
			// an event somewhere nobody configured.
			CheckRedirect: noRedirect,
		},
	}
	if u, err := url.Parse(b.URL); err == nil && u.Scheme == "http" && proxy == nil {
		// Plain http, no proxy: the lean HTTP/1.1 transport, with tr for
		// what it does not handle. The attempt's context (send) bounds
		// each exchange, body included, as Timeout did.
		// Its dial, keep-alive and idle defaults are tr's settings.
		rt.client.Transport = &h1.Transport{Fallback: tr, MaxIdlePerHost: b.Concurrency * 2}
		rt.client.Timeout = 0
	}
	if b.SignSecret != "" {
		if rt.signer, err = auth.NewWebhookSigner(b.SignSecret); err != nil {
			return nil, fmt.Errorf("backend %q sign: %w", b.Name, err)
		}
	}
	specs, err := injectSpecs(b.Inject)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", b.Name, err)
	}
	var tokenClient *http.Client
	for i, ic := range b.Inject {
		if ic.Type != "oauth2" && ic.Type != "huawei_iam" {
			continue
		}
		// Token calls go through the backend's proxy, with its TLS unless
		// the oauth2 block names its own trust store.
		ttc := tc
		if o, ok := specs[i].(inject.OAuth2); ok && o.TLS != nil {
			ttc = o.TLS
		}
		rt.tokenTr = &http.Transport{
			Proxy:               proxy,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     ttc,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}
		tokenClient = &http.Client{Transport: rt.tokenTr, Timeout: b.Timeout, CheckRedirect: noRedirect}
		break
	}
	var keep *inject.Set
	if old != nil {
		keep = old.inject
	}
	if rt.inject, err = inject.Compile(fmt.Sprintf("backend %q", b.Name), specs, keep, tokenClient, b.Timeout); err != nil {
		return nil, err
	}
	if b.Rate > 0 {
		if old != nil && old.limiter != nil && old.cfg.Rate == b.Rate {
			rt.limiter = old.limiter
		} else {
			// Burst 1: a steady stream, never a burst above the rate.
			rt.limiter = rate.NewLimiter(rate.Limit(b.Rate), 1)
		}
	}
	return rt, nil
}

// closeIdle closes the idle connections of the runtime's clients.
func (rt *backendRuntime) closeIdle() {
	rt.client.CloseIdleConnections()
	if rt.tokenTr != nil {
		rt.tokenTr.CloseIdleConnections()
	}
}

// syncDeliverers starts, updates and stops deliverers to match st.
// Called with s.mu held.
func (s *Server) syncDeliverers(st *state) {
	for name, b := range st.backends {
		d := s.deliverers[name]
		if d != nil && reflect.DeepEqual(d.rt.Load().cfg, b) {
			continue // unchanged: keep its client and connections
		}
		var prev *backendRuntime
		if d != nil {
			prev = d.rt.Load()
		}
		rt, err := newBackendRuntime(b, prev)
		if err != nil {
			s.log.Error("backend not started", "backend", name, "err", err)
			continue
		}
		if d != nil && d.workers == b.Concurrency && d.bcfg == b.Breaker {
			old := d.rt.Load()
			d.rt.Store(rt)
			old.release()
			continue
		}
		if d != nil {
			// Concurrency or breaker changed: the old workers finish their
			// attempts in the background while the new ones start.
			d.stop()
			go d.wait(context.Background())
		}
		s.deliverers[name] = s.startDeliverer(name, b, rt)
	}
	for name, d := range s.deliverers {
		if _, ok := st.backends[name]; !ok {
			d.stop()
			go d.wait(context.Background())
			delete(s.deliverers, name)
			s.log.Warn("backend removed from the configuration: its pending deliveries stay queued until it returns", "backend", name)
		}
	}
}

func (s *Server) startDeliverer(name string, b *BackendConfig, rt *backendRuntime) *deliverer {
	d := &deliverer{s: s, name: name, bcfg: b.Breaker, workers: b.Concurrency}
	d.rt.Store(rt)
	d.ctx, d.cancel = context.WithCancel(s.ctx)
	failures := uint32(b.Breaker.Failures)
	d.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(b.Breaker.HalfOpenRequests),
		Timeout:     b.Breaker.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			s.metrics.breakerState.WithLabelValues(name).Set(breakerValue(to))
			s.log.Warn("backend circuit breaker changed state", "backend", name, "from", from.String(), "to", to.String())
		},
	})
	s.metrics.breakerState.WithLabelValues(name).Set(0)
	if rt.bus != nil {
		for i := 0; i < busWorkers; i++ {
			d.wg.Add(1)
			go d.busWork()
		}
		return d
	}
	d.leases = make(chan *queue.Lease)
	d.acks = make(chan ackReq, b.Concurrency)
	d.wg.Add(1)
	go d.feed(b.Concurrency)
	var workers sync.WaitGroup
	for i := 0; i < b.Concurrency; i++ {
		d.wg.Add(1)
		workers.Add(1)
		go func() {
			defer workers.Done()
			d.work()
		}()
	}
	d.wg.Add(1)
	go d.ackLoop()
	go func() {
		workers.Wait()
		close(d.acks) // ackLoop records what is left and returns
	}()
	return d
}

// ackLoop records the deliveries the workers of a url backend report
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
		d.ackAll(ls, func(i int) attemptLog { return d.attemptLog(batch[i].l, batch[i].status, batch[i].elapsed) })
	}
}

// ackAll acknowledges delivered leases in one queue commit, then writes
// each one's line (line(i) is lease i's log): "delivered" at info, or the
// failure to record it.
func (d *deliverer) ackAll(ls []*queue.Lease, line func(i int) attemptLog) {
	err := d.s.q.AckAll(ls)
	if err == nil && !d.s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	for i := range ls {
		log := line(i)
		if err != nil {
			log.Error("delivered but not acknowledged in the queue: it may be delivered again", "err", err)
			continue
		}
		log.Info("delivered")
	}
}

func breakerValue(st gobreaker.State) float64 {
	switch st {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

func (d *deliverer) stop() { d.cancel() }

func (d *deliverer) wait(ctx context.Context) {
	waitCtx(&d.wg, ctx)
	d.rt.Load().release()
}

// sleep waits for d, or until the deliverer stops; false when stopped.
func (d *deliverer) sleep(dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-d.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// feed leases deliveries for the workers of a url backend, several at a
// time (their events are read together), and hands each to a free worker.
// What it holds when the deliverer stops goes back to the queue.
func (d *deliverer) feed(concurrency int) {
	defer d.wg.Done()
	batch := max(1, min(concurrency/2, 64))
	for d.ctx.Err() == nil {
		if d.breaker.State() == gobreaker.StateOpen {
			// No lease while the backend is known down: nothing is
			// attempted, nothing is counted, the events wait on disk.
			if !d.sleep(100*time.Millisecond + rand.N(50*time.Millisecond)) {
				return
			}
			continue
		}
		ls, err := d.s.q.NextBatch(d.ctx, d.name, batch)
		if err != nil {
			if d.ctx.Err() != nil || errors.Is(err, queue.ErrClosed) {
				return
			}
			d.s.log.Error("queue lease failed", "backend", d.name, "err", err)
			if !d.sleep(time.Second) {
				return
			}
			continue
		}
		for i, l := range ls {
			select {
			case d.leases <- l:
			case <-d.ctx.Done():
				for _, l := range ls[i:] {
					d.s.q.Release(l)
				}
				return
			}
		}
	}
}

func (d *deliverer) work() {
	defer d.wg.Done()
	for {
		var l *queue.Lease
		select {
		case l = <-d.leases:
		case <-d.ctx.Done():
			return
		}
		if d.ctx.Err() != nil {
			d.s.q.Release(l) // stopped: no new attempt
			return
		}
		rt := d.rt.Load()
		if d.expired(rt, l) {
			continue
		}
		if rt.limiter != nil {
			// Pacing: the attempt waits for its turn; nothing fails,
			// nothing is dropped, the breaker sees nothing.
			if err := rt.limiter.Wait(d.ctx); err != nil {
				d.s.q.Release(l)
				return
			}
		}
		done, err := d.breaker.Allow()
		if err != nil {
			// Open or half-open with its probe already out: give the
			// lease back untouched and wait.
			d.s.q.Release(l)
			if !d.sleep(50*time.Millisecond + rand.N(50*time.Millisecond)) {
				return
			}
			continue
		}
		d.attempt(rt, l, done)
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

func (d *deliverer) attempt(rt *backendRuntime, l *queue.Lease, done func(error)) {
	start := time.Now()
	res, status, retryAfter, errText := d.send(rt, l)
	d.finish(rt, l, done, res, status, retryAfter, errText, time.Since(start))
}

// finish turns the outcome of one attempt, whatever the destination, into
// an ack, a retry or a dead letter, and tells the breaker.
func (d *deliverer) finish(rt *backendRuntime, l *queue.Lease, done func(error), res attemptResult, status int, retryAfter time.Duration, errText string, elapsed time.Duration) {
	ev := l.Event
	d.s.metrics.deliveryDuration.WithLabelValues(d.name).Observe(elapsed.Seconds())
	if res == delivered {
		// url backends only: a bus batch's delivered leases go to ackDelivered.
		// ackLoop writes the line once the ack is recorded.
		done(nil)
		d.s.metrics.attempts.WithLabelValues(d.name, "delivered").Inc()
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

// send makes one HTTP attempt and classifies its outcome. A 401 to a
// fetched token (oauth2, huawei_iam) drops it and sends once more with a
// fresh one, inside the same attempt.
func (d *deliverer) send(rt *backendRuntime, l *queue.Lease) (res attemptResult, status int, retryAfter time.Duration, errText string) {
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.Timeout)
	defer cancel()
	rest := d.s.channelRest(l.Event)
	var resp *http.Response
	for try := 0; ; try++ {
		req, att, err := rt.request(ctx, l, rest)
		if err != nil {
			if errors.Is(err, inject.ErrExpired) || errors.Is(err, inject.ErrTokenEndpoint) {
				return retryable, 0, 0, "credentials: " + err.Error()
			}
			return permanent, 0, 0, "building request: " + err.Error()
		}
		resp, err = rt.client.Do(req)
		if err != nil {
			return retryable, 0, 0, "request failed: " + err.Error()
		}
		if resp.StatusCode != http.StatusUnauthorized || try > 0 || !att.Unauthorized() {
			break
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	status = resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		return delivered, status, 0, ""
	case status == 408 || status == 425 || status == 429 || status >= 500:
		return retryable, status, parseRetryAfter(resp.Header.Get("Retry-After")), fmt.Sprintf("backend answered %d %s", status, trimSnippet(snippet))
	default:
		return permanent, status, 0, fmt.Sprintf("backend answered %d %s", status, trimSnippet(snippet))
	}
}

// request builds the HTTP request of one attempt: the URL (with {path}
// and {query} filled in, rest being the path after a prefix channel's
// prefix), the event's method, body and headers (Authorization only with
// pass_authorization), the X-Relay-* headers, the Standard Webhooks
// signature, the backend's static headers and, last, its credentials
// (which replace any header of the same name).
func (rt *backendRuntime) request(ctx context.Context, l *queue.Lease, rest string) (*http.Request, *inject.Attempt, error) {
	ev := l.Event
	target, err := backendURL(rt.cfg.URL, ev.Path, rest)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, ev.Method, rt.cfg.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return nil, nil, err
	}
	if target.Opaque != "" && target.Scheme == "http" && rt.proxy != nil {
		// A path sent as written, to a proxy: in absolute form.
		if pu, _ := rt.proxy(&http.Request{URL: target}); pu != nil {
			target.Opaque = "//" + target.Host + target.Opaque
		}
	}
	req.URL = target
	req.Host = target.Host
	// The event is shared by every backend's lease: cap each value slice
	// so nothing appended here can write into another delivery's header.
	for k, v := range ev.Header {
		req.Header[k] = v[:len(v):len(v)]
	}
	if !rt.cfg.PassAuthorization {
		req.Header.Del("Authorization")
	}
	req.ContentLength = int64(len(ev.Body))
	req.Header.Set("X-Relay-Event-Id", ev.ID)
	req.Header.Set("X-Relay-Channel", ev.Channel)
	req.Header.Set("X-Relay-Provider", ev.Provider)
	req.Header.Set("X-Relay-Attempt", strconv.Itoa(l.Attempt))
	req.Header.Set("X-Relay-Received-At", ev.ReceivedAt.UTC().Format(receivedAtFormat))
	if rt.signer != nil {
		now := time.Now()
		req.Header.Set("webhook-id", ev.ID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", rt.signer.Sign(ev.ID, now, ev.Body))
	}
	for k, v := range rt.cfg.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	att, err := rt.inject.Apply(ctx, req.Header, ev.Body)
	if err != nil {
		return nil, nil, err
	}
	return req, att, nil
}

func trimSnippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return strconv.Quote(string(b))
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, 24*time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), 24*time.Hour)
	}
	return 0
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
