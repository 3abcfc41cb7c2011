package relay

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"reflect"
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
	// The series every delivery touches, looked up once.
	duration  prometheus.Observer
	delivered prometheus.Counter

	ctx    context.Context // cancelled by stop: no new leases
	cancel context.CancelFunc
	wg     sync.WaitGroup
	leases chan *queue.Lease // url backends: from feed to the workers
	acks   chan ackReq       // delivered leases, from the workers to ackLoop
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
	plan    *fieldPlan                            // url backends: the fields of every attempt (delivery_lean.go)
	lean    *leanDest                             // plain http without a proxy: sent by h1.Send (delivery_lean.go)
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
		lean := &h1.Transport{Fallback: tr, MaxIdlePerHost: b.Concurrency * 2}
		rt.client.Transport = lean
		rt.client.Timeout = 0
		rt.lean = newLeanDest(b, lean)
	}
	rt.plan = newFieldPlan(b, b.SignSecret != "")
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
	d := &deliverer{s: s, name: name, bcfg: b.Breaker, workers: b.Concurrency,
		duration:  s.metrics.deliveryDuration.WithLabelValues(name),
		delivered: s.metrics.attempts.WithLabelValues(name, "delivered")}
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
	d.acks = make(chan ackReq, b.Concurrency)
	var workers sync.WaitGroup
	spawn := func(n int, work func()) {
		for range n {
			d.wg.Add(1)
			workers.Add(1)
			go func() {
				defer workers.Done()
				work()
			}()
		}
	}
	if rt.bus != nil {
		spawn(busWorkers, d.busWork)
	} else {
		d.leases = make(chan *queue.Lease)
		d.wg.Add(1)
		go d.feed(b.Concurrency)
		spawn(b.Concurrency, d.work)
	}
	d.wg.Add(1)
	go d.ackLoop()
	go func() {
		workers.Wait()
		close(d.acks) // ackLoop records what is left and returns
	}()
	return d
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
