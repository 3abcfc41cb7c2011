package main

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgerelay/edgerelay/internal/bustest"
	"github.com/edgerelay/edgerelay/relay/destination"
)

// An external cluster (-kafka-brokers; kfake on its own port stands in for
// one here): the gate lets a client bootstrap only while the broker is
// "up", and every round counts and reads back only its own topic.
func TestExternalKafkaGateAndRoundTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port, err := bustest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	b := &kafkaBroker{port: port, external: splitList(" " + c.ListenAddrs()[0] + " ,"), run: "test"}

	produce := func(n int) {
		t.Helper()
		// Through the gate, as the relay does.
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := range n {
			r := &kgo.Record{Topic: b.topic(false), Value: []byte(fmt.Sprint("body-", i)),
				Headers: []kgo.RecordHeader{{Key: destination.HeaderEventID, Value: []byte(fmt.Sprint("ev-", i))}}}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	for round, n := range []int{7, 3} {
		if err := b.newRound(round + 1); err != nil {
			t.Fatal(err)
		}
		if err := b.start(); err != nil {
			t.Fatal(err)
		}
		if got, err := b.stored(); err != nil || got != 0 {
			t.Fatalf("round %d: a fresh topic holds %d (%v)", round+1, got, err)
		}
		if _, err := b.bare(50, func(i int) []byte { return []byte("x") }, func(i int) string { return fmt.Sprint(i % 4) }); err != nil {
			t.Fatal(err)
		}
		produce(n)
		if got, err := b.stored(); err != nil || got != int64(n) {
			t.Fatalf("round %d: stored %d (%v), want %d: the bare client's records must not count", round+1, got, err, n)
		}
		recs, err := b.readBack()
		if err != nil || len(recs) != n || recs[0].eventID == "" {
			t.Fatalf("round %d: read back %d records (%v), want %d with event ids", round+1, len(recs), err, n)
		}
		b.stop()
		if conn, err := net.DialTimeout("tcp", b.addr(), time.Second); err == nil {
			conn.Close()
			t.Fatalf("round %d: the gate still accepts connections after stop", round+1)
		}
	}
}
