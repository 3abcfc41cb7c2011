package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgerelay/edgerelay/internal/bustest"
	"github.com/edgerelay/edgerelay/relay/destination"
)

// targetBusRatio is SPEC §15: the relay drains into a bus at least half as
// fast as a bare client publishes to the same broker.
const targetBusRatio = 0.5

// broker is a message broker run inside the bench process on a fixed
// port, so that it can be down while the relay queues.
type broker interface {
	start() error
	stop()
	// dest is the relay backend's kafka {} or nats {} block.
	dest() string
	// stored counts what the relay's topic or stream holds.
	stored() (int64, error)
	// bare publishes n bodies with a bare client and returns the time.
	bare(n int, body func(i int) []byte, key func(i int) string) (time.Duration, error)
	// readBack returns every record of the relay's topic or stream.
	readBack() ([]busRecord, error)
	// newRound is called before each round's first start.
	newRound(round int) error
}

type busRecord struct {
	eventID string
	body    []byte
}

// drainBus runs -rounds rounds of bare client and relay drain against one
// broker kind and reports both rates, their medians and the ratio.
func (e *env) drainBus(kind string) (bool, error) {
	o := e.o
	n := o.busN
	port, err := bustest.FreePort()
	if err != nil {
		return false, err
	}
	var b broker
	switch kind {
	case "nats":
		b = &natsBroker{dir: filepath.Join(e.dir, "nats"), port: port}
	default:
		b = &kafkaBroker{port: port, external: splitList(o.kafkaAt), run: time.Now().UTC().Format("20060102T150405")}
	}
	e.printf("== drain (%s): %d events per round, %d rounds; a bare client's publish rate to the same broker, then the relay's drain of a backlog queued while the broker was down; relay backend concurrency %d (the bus default), %d senders", kind, n, o.rounds, 2048, o.senders)
	if kb, ok := b.(*kafkaBroker); ok && kb.external != nil {
		e.printf("kafka: the cluster at %s (run outside the bench: not stopped, not emptied); the relay bootstraps through a gate at %s that listens only while the broker is to be up; topics of their own every round", strings.Join(kb.external, ","), kb.addr())
	} else if kind == "kafka" {
		e.printf("kafka: franz-go's kfake, an in-memory broker in this process (no disk, no replication): the bare figure is the client's own CPU; give -kafka-brokers for a real cluster")
	}
	var bares, relays []float64
	ok := true
	for round := 1; round <= o.rounds; round++ {
		if err := b.newRound(round); err != nil {
			return false, err
		}
		if err := b.start(); err != nil {
			return false, err
		}
		pl := newPayload(e.ts, o.senders, benchSecret)
		bareBase := e.seqs.next.Add(uint64(n)) - uint64(n) + 1
		d, err := b.bare(n, func(i int) []byte { return bytes.Clone(pl.body(bareBase + uint64(i))) },
			func(i int) string { return strconv.Itoa(i % o.senders) })
		if err != nil {
			b.stop()
			return false, fmt.Errorf("bare client: %w", err)
		}
		bare := float64(n) / d.Seconds()
		bares = append(bares, bare)
		e.printf("round %d: bare client %d messages in %s: %.0f msg/s", round, n, d.Round(time.Millisecond), bare)
		b.stop()

		rate, good, err := e.relayBusDrain(b, n)
		if err != nil {
			return false, err
		}
		ok = ok && good
		relays = append(relays, rate)
		e.printf("round %d: relay drain %.0f events/s, ratio %.2f", round, rate, rate/bare)
	}
	mb, mr := medianF(bares), medianF(relays)
	e.printf("%s bare client publish rate (median of %d): %.0f msg/s %s", kind, len(bares), mb, fmtFloats(bares))
	e.printf("%s relay drain rate (median of %d): %.0f events/s %s", kind, len(relays), mr, fmtFloats(relays))
	figures := e.check("drain into "+kind+" against a bare client", mr >= targetBusRatio*mb, "%.2f × (target ≥ %.1f)", mr/mb, targetBusRatio)
	return ok && (figures || !o.strict), nil
}

// relayBusDrain posts n events with the broker down, starts it and times
// the drain from the first stored record to the last, then reads every
// record back.
func (e *env) relayBusDrain(b broker, n int) (float64, bool, error) {
	o := e.o
	p, err := e.startRelay(relaySpec{backendDest: b.dest(), concurrency: 2048, logLevel: o.logLevel,
		backendExtra: "  retry {\n    initial = \"100ms\"\n    max     = \"1s\"\n  }\n  breaker {\n    open_for = \"1s\"\n  }\n"})
	if err != nil {
		return 0, false, err
	}
	defer e.finish(p)
	base := e.seqs.next.Load() + 1
	res, err := e.fill(p, base, n)
	if err != nil {
		return 0, false, err
	}
	e.printf("backlog posted: %d events in %s (%.0f events/s)", n, res.elapsed.Round(time.Millisecond), float64(n)/res.elapsed.Seconds())
	if err := b.start(); err != nil {
		return 0, false, err
	}
	defer b.stop()
	c0 := p.cpuSnap()
	started := time.Now()
	var first, last time.Time
	deadline := started.Add(max(o.drain, time.Duration(n/1000)*time.Second))
	for time.Now().Before(deadline) {
		c, err := b.stored()
		if err == nil && c > 0 && first.IsZero() {
			first = time.Now()
		}
		if err == nil && c >= int64(n) {
			last = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cpu := usage(c0, p.cpuSnap())
	if last.IsZero() {
		c, _ := b.stored()
		return 0, false, fmt.Errorf("drain incomplete: %d of %d stored after %s", c, n, time.Since(started).Round(time.Second))
	}
	span := last.Sub(first)
	rate := float64(n) / span.Seconds()
	e.printf("drain: %d stored, first to last %s (the first %s after the broker's start); during the drain %s", n, span.Round(time.Millisecond), first.Sub(started).Round(time.Millisecond), cpu)
	if m, err := e.metrics(p); err == nil && m["edgerelay_bus_batch_size_count"] > 0 {
		e.printf("relay batches: %.0f, %.0f deliveries each on average, %.1f ms per batch on average", m["edgerelay_bus_batch_size_count"],
			m["edgerelay_bus_batch_size_sum"]/m["edgerelay_bus_batch_size_count"], 1000*m["edgerelay_delivery_duration_seconds_sum"]/m["edgerelay_delivery_duration_seconds_count"])
	}
	recs, err := b.readBack()
	if err != nil {
		return 0, false, fmt.Errorf("reading back: %w", err)
	}
	pl := newPayload(e.ts, o.senders, benchSecret)
	seen := map[string]int{}
	bad := 0
	for _, r := range recs {
		seen[r.eventID]++
		seq, err := seqOf(r.body)
		if err != nil || seq < base || seq >= base+uint64(n) || !bytes.Equal(r.body, pl.body(seq)) {
			bad++
		}
	}
	dups := len(recs) - len(seen)
	ok := e.check("every queued event on the bus once per X-Relay-Event-Id", len(seen) == n && dups == 0, "%d distinct of %d, %d duplicates", len(seen), n, dups)
	ok = e.check("bodies on the bus byte for byte", bad == 0, "%d altered or foreign", bad) && ok
	return rate, ok, nil
}

// relayHeaders are the headers the relay puts on a record or message of
// the bench's callbacks (what it forwards of the callback, then its
// delivery headers), so that the bare client publishes the same bytes.
func relayHeaders(id string) [][2]string {
	return [][2]string{
		{"Accept-Encoding", "gzip"}, {"Content-Type", "application/json"}, {"User-Agent", "edgerelay-bench"},
		{destination.HeaderEventID, id}, {destination.HeaderChannel, "meta"}, {destination.HeaderProvider, "meta"},
		{destination.HeaderAttempt, "1"}, {destination.HeaderReceivedAt, time.Now().UTC().Format(destination.ReceivedAtFormat)},
	}
}

// natsBroker is nats-server with JetStream storing in dir; streams RELAY
// (relay.>) and BARE (bare.>).
type natsBroker struct {
	dir  string
	port int
	s    *server.Server
}

func (b *natsBroker) newRound(int) error { return nil }

func (b *natsBroker) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", b.port) }

func (b *natsBroker) start() error {
	s, err := bustest.NATS(b.dir, b.port, nil)
	if err != nil {
		return err
	}
	b.s = s
	nc, err := nats.Connect(b.url())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, subj := range map[string]string{"RELAY": "relay.>", "BARE": "bare.>"} {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
			return err
		}
	}
	return nil
}

// stop purges nothing: the relay's stream is purged when read back.
func (b *natsBroker) stop() {
	if b.s != nil {
		b.s.Shutdown()
		b.s.WaitForShutdown()
		b.s = nil
	}
}

func (b *natsBroker) dest() string {
	return fmt.Sprintf("nats {\n    servers = [%q]\n    subject = \"relay.{provider}\"\n  }", b.url())
}

func (b *natsBroker) stream(name string) (jetstream.Stream, *nats.Conn, error) {
	nc, err := nats.Connect(b.url())
	if err != nil {
		return nil, nil, err
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return st, nc, nil
}

func (b *natsBroker) stored() (int64, error) {
	st, nc, err := b.stream("RELAY")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.State.Msgs), nil
}

func (b *natsBroker) bare(n int, body func(int) []byte, _ func(int) string) (time.Duration, error) {
	st, nc, err := b.stream("BARE")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx := context.Background()
	st.Purge(ctx)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, err
	}
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("bare-%d-%d", time.Now().UnixNano(), i)
		h := nats.Header{"Nats-Msg-Id": {id}}
		for _, kv := range relayHeaders(id) {
			h[kv[0]] = []string{kv[1]}
		}
		msgs[i] = &nats.Msg{Subject: "bare.meta", Data: body(i), Header: h}
	}
	start := time.Now()
	futs := make([]jetstream.PubAckFuture, n)
	for i, m := range msgs {
		if futs[i], err = js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return 0, errors.New("bare publishes not acknowledged")
	}
	d := time.Since(start)
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return 0, err
		}
	}
	return d, nil
}

func (b *natsBroker) readBack() ([]busRecord, error) {
	st, nc, err := b.stream("RELAY")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	msgs, err := bustest.ReadStream(ctx, nc, "RELAY")
	if err != nil {
		return nil, err
	}
	out := make([]busRecord, len(msgs))
	for i, m := range msgs {
		out[i] = busRecord{eventID: m.Header.Get("Nats-Msg-Id"), body: m.Data}
	}
	st.Purge(ctx)
	return out, nil
}
