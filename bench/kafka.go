package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgerelay/edgerelay/relay/destination"
)

// kafkaBroker is the Kafka side of the bus drains. By default it is a
// one-broker kfake cluster on port (in memory: each start is empty) with
// topics relay.meta and bare.meta of 8 partitions.
//
// With external (-kafka-brokers) it is a cluster run outside the bench,
// which the bench can neither stop nor empty: the relay bootstraps through
// a gate on port, a TCP forwarder to the first broker that listens only
// while the broker is to be up (a relay that cannot bootstrap cannot
// deliver, as with kfake stopped), and every round creates topics of its
// own (relay-<run>-<round>.meta and bare-…), so that counting a topic's
// offsets counts that round's records.
type kafkaBroker struct {
	port int
	c    *kfake.Cluster

	external []string
	run      string // this bench run's part of the topic names (with external)
	round    int
	gate     *gate
}

const kafkaPartitions = 8

// newRound creates the round's topics on an external cluster (kfake seeds
// its own at every start).
func (b *kafkaBroker) newRound(round int) error {
	b.round = round
	if b.external == nil {
		return nil
	}
	return b.createTopics()
}

// topicPrefix is the relay's (or, with bare, the bare client's) topic of
// this round without its provider part: "relay" and "bare" on kfake.
func (b *kafkaBroker) topicPrefix(bare bool) string {
	name := "relay"
	if bare {
		name = "bare"
	}
	if b.external == nil {
		return name
	}
	return fmt.Sprintf("%s-%s-%d", name, b.run, b.round)
}

// topic is the full name of the relay's (or the bare client's) topic: the
// bench's callbacks are all Meta's.
func (b *kafkaBroker) topic(bare bool) string { return b.topicPrefix(bare) + ".meta" }

func (b *kafkaBroker) start() error {
	if b.external != nil {
		g, err := openGate(b.addr(), b.external[0])
		if err != nil {
			return err
		}
		b.gate = g
		return nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(b.port), kfake.SeedTopics(kafkaPartitions, b.topic(false), b.topic(true)))
	if err != nil {
		return err
	}
	b.c = c
	return nil
}

func (b *kafkaBroker) stop() {
	if b.gate != nil {
		b.gate.close()
		b.gate = nil
	}
	if b.c != nil {
		b.c.Close()
		b.c = nil
	}
}

// addr is where the relay bootstraps: kfake, or the gate.
func (b *kafkaBroker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

// seeds is where the bench's own clients connect.
func (b *kafkaBroker) seeds() []string {
	if b.external != nil {
		return b.external
	}
	return []string{b.addr()}
}

func (b *kafkaBroker) dest() string {
	return fmt.Sprintf("kafka {\n    brokers = [%q]\n    topic   = \"%s.{provider}\"\n  }", b.addr(), b.topicPrefix(false))
}

// createTopics creates the round's two topics on the external cluster (its
// default replication factor).
func (b *kafkaBroker) createTopics() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	for _, name := range []string{b.topic(false), b.topic(true)} {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = name, kafkaPartitions, -1
		req.Topics = append(req.Topics, t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

func (b *kafkaBroker) stored() (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds()...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = b.topic(false)
	for p := int32(0); p < kafkaPartitions; p++ {
		pp := kmsg.NewListOffsetsRequestTopicPartition()
		pp.Partition = p
		pp.Timestamp = -1
		t.Partitions = append(t.Partitions, pp)
	}
	req.Topics = append(req.Topics, t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return 0, fmt.Errorf("offsets of %s/%d: %w", rt.Topic, rp.Partition, err)
			}
			sum += rp.Offset
		}
	}
	return sum, nil
}

func (b *kafkaBroker) bare(n int, body func(int) []byte, key func(int) string) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds()...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(64<<10))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	topic := b.topic(true)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		var hs []kgo.RecordHeader
		for _, kv := range relayHeaders(fmt.Sprintf("bare-%d", i)) {
			hs = append(hs, kgo.RecordHeader{Key: kv[0], Value: []byte(kv[1])})
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(key(i)), Value: body(i), Headers: hs}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	wg.Add(n)
	start := time.Now()
	for _, r := range recs {
		cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return time.Since(start), firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (b *kafkaBroker) readBack() ([]busRecord, error) {
	want, err := b.stored()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.seeds()...), kgo.ConsumeTopics(b.topic(false)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out []busRecord
	for int64(len(out)) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var id string
			for _, h := range r.Headers {
				if h.Key == destination.HeaderEventID {
					id = string(h.Value)
				}
			}
			out = append(out, busRecord{eventID: id, body: r.Value})
		})
	}
	return out, ctx.Err()
}

// gate forwards TCP connections from its address to a broker while open;
// close stops listening and cuts the connections it forwards.
type gate struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func openGate(addr, to string) (*gate, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kafka gate: %w", err)
	}
	g := &gate{ln: ln, to: to, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go g.serve()
	return g, nil
}

func (g *gate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", g.to, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !g.track(c, u) {
			return
		}
		g.wg.Add(2)
		go g.pipe(u, c)
		go g.pipe(c, u)
	}
}

// track records a forwarded pair; false once the gate is closed.
func (g *gate) track(cs ...net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		g.conns[c] = struct{}{}
	}
	return true
}

func (g *gate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (g *gate) close() {
	g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.conns = nil
	g.mu.Unlock()
	g.wg.Wait()
}

// splitList splits a comma-separated list, dropping empty items; nil for
// none.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
