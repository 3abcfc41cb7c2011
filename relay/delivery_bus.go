package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/destination"
)

// Deliveries to a backend on a message bus (kafka {} or nats {}) go out in
// batches. The queue hands out one delivery at a time, one in flight per
// order key; a bus worker takes the first lease it gets, then whatever else
// is ready within busLinger (many keys, one delivery each), up to its share
// of the backend's concurrency, and hands the lot to the destination in one
// Send. Outcomes go through the same finish as HTTP attempts: the same
// breaker, retries, dead letters and metrics.

// busWorkers is the number of batches in flight per bus backend: while one
// waits for its acknowledgements, the others gather and send.
const busWorkers = 16

// busLinger is how long a worker waits for more ready deliveries once it
// has one. A backlog fills a batch at once; a quiet queue sends what it
// has after this.
const busLinger = 2 * time.Millisecond

// busRuntime is a bus backend's destination and batch size.
type busRuntime struct {
	dest  destination.Destination
	batch int
}

func newBusBackendRuntime(b *BackendConfig) (*backendRuntime, error) {
	var dest destination.Destination
	batch := max(1, (b.Concurrency+busWorkers-1)/busWorkers)
	switch {
	case b.Kafka != nil:
		k := b.Kafka
		kc := destination.KafkaConfig{Brokers: k.Brokers, Topic: k.Topic, SASLMechanism: k.SASLMechanism,
			Username: k.Username, Password: k.Password, Timeout: b.Timeout, MaxBatch: batch}
		if k.TLS != nil {
			tc, err := clientTLS(*k.TLS)
			if err != nil {
				return nil, err
			}
			kc.TLS = tc
		}
		kd, err := destination.NewKafka(kc)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		dest = kd
	case b.NATS != nil:
		n := b.NATS
		nc := destination.NATSConfig{Servers: n.Servers, Subject: n.Subject, CredentialsFile: n.CredentialsFile,
			Token: n.Token, User: n.User, Password: n.Password, NKeySeedFile: n.NKeySeedFile,
			Timeout: b.Timeout, MaxBatch: batch, MaxPending: max(b.Concurrency, 256)}
		if n.TLS != nil {
			tc, err := clientTLS(*n.TLS)
			if err != nil {
				return nil, err
			}
			nc.TLS = tc
		}
		nd, err := destination.NewNATS(nc)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		dest = nd
	default:
		return nil, errors.New("not a bus backend")
	}
	return &backendRuntime{cfg: b, client: &http.Client{}, bus: &busRuntime{dest: dest, batch: min(batch, dest.MaxBatch())}}, nil
}

// release lets go of a runtime that was replaced or stopped. A bus
// client is closed once the Sends that may still use it are over.
func (rt *backendRuntime) release() {
	rt.closeIdle()
	if rt.bus != nil {
		dest := rt.bus.dest
		time.AfterFunc(2*rt.cfg.Timeout+time.Second, dest.Close)
	}
}

// busWork gathers batches of leases and sends them.
func (d *deliverer) busWork() {
	defer d.wg.Done()
	var (
		leases []*queue.Lease
		dones  []func(error)
		batch  []destination.Delivery
	)
	for d.ctx.Err() == nil {
		if d.breaker.State() == gobreaker.StateOpen {
			if !d.sleep(100*time.Millisecond + rand.N(50*time.Millisecond)) {
				return
			}
			continue
		}
		rt := d.rt.Load()
		if rt.bus == nil {
			return // reloaded into a url backend: this deliverer is being replaced
		}
		got, err := d.s.q.NextBatch(d.ctx, d.name, rt.bus.batch)
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
		if rt = d.rt.Load(); rt.bus == nil {
			// Reloaded into a url backend meanwhile: hand the leases back.
			for _, l := range got {
				d.s.q.Release(l)
			}
			return
		}
		leases, dones, batch = leases[:0], dones[:0], batch[:0]
		refused := false
		admit := func(got []*queue.Lease) {
			for _, l := range got {
				if refused {
					d.s.q.Release(l)
					continue
				}
				if d.expired(rt, l) {
					continue
				}
				done, err := d.breaker.Allow()
				if err != nil {
					d.s.q.Release(l)
					refused = true
					continue
				}
				leases = append(leases, l)
				dones = append(dones, done)
				batch = append(batch, destination.Delivery{Event: l.Event, Attempt: l.Attempt})
			}
		}
		admit(got)
		if !refused && len(leases) < rt.bus.batch {
			// Linger for more: a backlog fills the batch at once, a quiet
			// queue sends what it has after busLinger.
			gctx, cancel := context.WithTimeout(d.ctx, busLinger)
			for !refused && len(leases) < rt.bus.batch {
				got, err := d.s.q.NextBatch(gctx, d.name, rt.bus.batch-len(leases))
				if err != nil {
					break
				}
				admit(got)
			}
			cancel()
		}
		if len(leases) > 0 {
			d.sendBatch(rt, leases, dones, batch)
		}
		if refused && !d.sleep(50*time.Millisecond+rand.N(50*time.Millisecond)) {
			return
		}
	}
}

func (d *deliverer) sendBatch(rt *backendRuntime, leases []*queue.Lease, dones []func(error), batch []destination.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.Timeout)
	defer cancel()
	start := time.Now()
	results := rt.bus.dest.Send(ctx, batch)
	elapsed := time.Since(start)
	d.s.metrics.busBatch.WithLabelValues(d.name).Observe(float64(len(batch)))
	// Delivered ones are acknowledged together in one queue commit; each
	// other outcome is recorded on its own goroutine, so the queue's
	// committer takes them together too.
	var ok []*queue.Lease
	var wg sync.WaitGroup
	for i, r := range results {
		res := delivered
		switch r.Outcome {
		case destination.Retryable:
			res = retryable
		case destination.Permanent:
			res = permanent
		}
		if res == delivered {
			dones[i](nil)
			ok = append(ok, leases[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.finish(rt, leases[i], dones[i], res, r.Status, r.RetryAfter, r.Err, elapsed)
		}()
	}
	if len(ok) > 0 {
		d.ackDelivered(ok, elapsed)
	}
	wg.Wait()
}

// ackDelivered records a batch's delivered leases: the metrics finish
// would write for each, then the leases go to the ack loop, which records
// them in one queue commit with whatever else is waiting there, while
// this worker gathers its next batch.
func (d *deliverer) ackDelivered(ls []*queue.Lease, elapsed time.Duration) {
	for range ls {
		d.duration.Observe(elapsed.Seconds())
	}
	d.delivered.Add(float64(len(ls)))
	for _, l := range ls {
		d.acks <- ackReq{l: l, elapsed: elapsed}
	}
}
