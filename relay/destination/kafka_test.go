package destination

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgerelay/edgerelay/queue"
)

// testEvent is event n of sender key (key "" = unordered).
func testEvent(n int, key string) *queue.Event {
	return &queue.Event{
		ID:         fmt.Sprintf("ev%06d", n),
		Channel:    "wa",
		Provider:   "meta",
		OrderKey:   key,
		ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Method:     "POST",
		Header:     map[string][]string{"Content-Type": {"application/json"}, "X-Hub-Signature-256": {"sha256=ab"}},
		Body:       fmt.Appendf(nil, `{"n":%d,"bin":"\u0000\u00ff","key":%q}`, n, key),
	}
}

func newKafkaCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(4, "wa.wa")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// consumeAll reads every record of topic from the start.
func consumeAll(t *testing.T, addrs []string, topic string, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	// Anything beyond want would be a duplicate: give it a moment to show.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	cl.PollFetches(short).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

func header(r *kgo.Record, k string) []string {
	var vs []string
	for _, h := range r.Headers {
		if h.Key == k {
			vs = append(vs, string(h.Value))
		}
	}
	return vs
}

func TestKafkaRecordsKeyBodyHeadersAndOrder(t *testing.T) {
	c := newKafkaCluster(t)
	k, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs(), Topic: "wa.{channel}", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const keys, rounds = 40, 10
	sent := map[string]*queue.Event{}
	n := 0
	for r := 0; r < rounds; r++ {
		// One batch per round: each key once (the layer above never has
		// two of one key in flight), plus unordered events.
		var batch []Delivery
		for i := 0; i < keys; i++ {
			ev := testEvent(n, fmt.Sprintf("+1555%04d", i))
			n++
			sent[ev.ID] = ev
			batch = append(batch, Delivery{Event: ev, Attempt: r%3 + 1})
		}
		ev := testEvent(n, "")
		n++
		sent[ev.ID] = ev
		batch = append(batch, Delivery{Event: ev, Attempt: 1})
		for i, res := range k.Send(context.Background(), batch) {
			if res.Outcome != Delivered {
				t.Fatalf("delivery %d: %+v", i, res)
			}
		}
	}
	recs := consumeAll(t, c.ListenAddrs(), "wa.wa", len(sent))
	if len(recs) != len(sent) {
		t.Fatalf("got %d records, want %d", len(recs), len(sent))
	}
	seen := map[string]bool{}
	lastPerKey := map[string]string{}
	partOfKey := map[string]int32{}
	for _, r := range recs {
		id := header(r, HeaderEventID)
		if len(id) != 1 {
			t.Fatalf("record headers %v: want one %s", r.Headers, HeaderEventID)
		}
		ev := sent[id[0]]
		if ev == nil || seen[ev.ID] {
			t.Fatalf("record %s unknown or repeated", id[0])
		}
		seen[ev.ID] = true
		if !bytes.Equal(r.Value, ev.Body) {
			t.Errorf("%s: body %q, want %q", ev.ID, r.Value, ev.Body)
		}
		wantKey := ev.OrderKey
		if wantKey == "" {
			wantKey = ev.ID
		}
		if string(r.Key) != wantKey {
			t.Errorf("%s: key %q, want %q", ev.ID, r.Key, wantKey)
		}
		for hk, want := range map[string]string{
			"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=ab",
			HeaderChannel: "wa", HeaderProvider: "meta", HeaderReceivedAt: "2026-01-02T03:04:05.000000006Z",
		} {
			if got := header(r, hk); len(got) != 1 || got[0] != want {
				t.Errorf("%s: header %s = %q, want %q", ev.ID, hk, got, want)
			}
		}
		if got := header(r, HeaderAttempt); len(got) != 1 || got[0] == "" {
			t.Errorf("%s: attempt header %q", ev.ID, got)
		}
		if ev.OrderKey != "" {
			if p, ok := partOfKey[ev.OrderKey]; ok && p != r.Partition {
				t.Errorf("key %s in partitions %d and %d", ev.OrderKey, p, r.Partition)
			}
			partOfKey[ev.OrderKey] = r.Partition
			if prev := lastPerKey[ev.OrderKey]; prev > ev.ID {
				t.Errorf("key %s: %s after %s", ev.OrderKey, ev.ID, prev)
			}
			lastPerKey[ev.OrderKey] = ev.ID
		}
	}
}

func TestKafkaSASL(t *testing.T) {
	for _, mech := range SASLMechanisms {
		t.Run(mech, func(t *testing.T) {
			c := newKafkaCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "relay", "s3cret-pw"))
			good, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs(), Topic: "wa.wa", SASLMechanism: mech, Username: "relay", Password: "s3cret-pw", Timeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer good.Close()
			ev := testEvent(1, "k")
			if res := good.Send(context.Background(), []Delivery{{Event: ev, Attempt: 1}}); res[0].Outcome != Delivered {
				t.Fatalf("with the right password: %+v", res[0])
			}
			recs := consumeAll(t, c.ListenAddrs(), "wa.wa", 1, kgo.SASL(mustSASL(t, mech, "relay", "s3cret-pw")))
			if len(recs) != 1 || !bytes.Equal(recs[0].Value, ev.Body) {
				t.Fatalf("records %v", recs)
			}

			bad, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs(), Topic: "wa.wa", SASLMechanism: mech, Username: "relay", Password: "wrong-pw", Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			res := bad.Send(context.Background(), []Delivery{{Event: testEvent(2, "k"), Attempt: 1}})
			if res[0].Outcome != Retryable || res[0].Err == "" {
				t.Fatalf("with a wrong password: %+v, want a retryable failure", res[0])
			}
			if strings.Contains(res[0].Err, "wrong-pw") {
				t.Fatalf("error text carries the password: %s", res[0].Err)
			}
		})
	}
}

func mustSASL(t *testing.T, mech, u, p string) saslMech {
	m, err := kafkaSASL(mech, u, p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestKafkaUnknownTopicIsRetryableWithAClearError(t *testing.T) {
	c := newKafkaCluster(t)
	k, err := NewKafka(KafkaConfig{Brokers: c.ListenAddrs(), Topic: "nope.{provider}", Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	res := k.Send(context.Background(), []Delivery{{Event: testEvent(1, ""), Attempt: 1}})
	if res[0].Outcome != Retryable || !strings.Contains(res[0].Err, `"nope.meta"`) {
		t.Fatalf("%+v", res[0])
	}
	t.Log(res[0].Err)
}

func TestKafkaBrokerDownIsRetryable(t *testing.T) {
	c := newKafkaCluster(t)
	addrs := c.ListenAddrs()
	c.Close()
	k, err := NewKafka(KafkaConfig{Brokers: addrs, Topic: "wa.wa", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	start := time.Now()
	res := k.Send(context.Background(), []Delivery{{Event: testEvent(1, "a"), Attempt: 1}, {Event: testEvent(2, "b"), Attempt: 1}})
	for _, r := range res {
		if r.Outcome != Retryable {
			t.Fatalf("%+v", r)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Send took %s with a 1s timeout", d)
	}
}
