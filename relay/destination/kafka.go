package destination

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaConfig configures a Kafka destination.
type KafkaConfig struct {
	Brokers []string
	// Topic may hold {channel} and {provider}.
	Topic string
	// SASL mechanism: "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism, Username, Password string
	// TLS, when not nil, dials the brokers over TLS with it.
	TLS *tls.Config
	// Timeout bounds how long a record may wait to be written (the
	// backend's timeout).
	Timeout time.Duration
	// MaxBatch is how many deliveries one Send carries (default 1024).
	MaxBatch int
}

// Kafka produces one record per delivery with franz-go's idempotent
// producer and acks=all: key = the order key (the event id when there is
// none, which spreads unordered events over the partitions), value = the
// body, headers = the forwarded ones plus the relay's. Same key, same
// partition: per-sender order is kept within a partition. A delivery is
// made when the partition leader acknowledged it after every in-sync
// replica has it.
type Kafka struct {
	cl       *kgo.Client
	topic    Template
	maxBatch int
}

// SASLMechanisms are the mechanisms a Kafka destination supports.
var SASLMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// NewKafka makes the client; it does not connect until the first Send, so
// a broker that is down at start is an ordinary delivery failure.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("edgerelay"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default; idempotence needs it
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordDeliveryTimeout(timeout),
		kgo.ProduceRequestTimeout(timeout),
		kgo.MaxBufferedRecords(64 << 10),
		// An unknown topic is retried by the relay's own backoff, with a
		// clear error, rather than held inside the client.
		kgo.UnknownTopicRetries(1),
	}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.SASLMechanism != "" {
		m, err := kafkaSASL(cfg.SASLMechanism, cfg.Username, cfg.Password)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	mb := cfg.MaxBatch
	if mb <= 0 {
		mb = 1024
	}
	return &Kafka{cl: cl, topic: NewTemplate(cfg.Topic), maxBatch: mb}, nil
}

type saslMech = sasl.Mechanism

func kafkaSASL(mech, user, pass string) (sasl.Mechanism, error) {
	switch strings.ToUpper(mech) {
	case "PLAIN":
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka: unknown SASL mechanism %q (use %s)", mech, strings.Join(SASLMechanisms, ", "))
}

// MaxBatch is the configured batch size.
func (k *Kafka) MaxBatch() int { return k.maxBatch }

// Close flushes nothing (every Send waited for its records) and closes the
// client.
func (k *Kafka) Close() { k.cl.Close() }

// Send produces every record of the batch at once and waits for each
// acknowledgement. Records already written to a broker are never given up
// before the broker answers (the client's idempotence depends on it), so a
// Send can outlast ctx by the time the answer takes.
func (k *Kafka) Send(ctx context.Context, batch []Delivery) []Result {
	out := make([]Result, len(batch))
	var wg sync.WaitGroup
	wg.Add(len(batch))
	for i, d := range batch {
		k.cl.Produce(ctx, k.record(d), func(r *kgo.Record, err error) {
			if err != nil {
				out[i] = kafkaResult(ctx, r.Topic, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	return out
}

func (k *Kafka) record(d Delivery) *kgo.Record {
	ev := d.Event
	key := ev.OrderKey
	if key == "" {
		key = ev.ID
	}
	// The key and every header value share one allocation.
	n := len(key) + len(ev.ID) + len(ev.Channel) + len(ev.Provider) + 64
	for _, vs := range ev.Header {
		for _, v := range vs {
			n += len(v)
		}
	}
	buf := make([]byte, 0, n)
	take := func(s string) []byte {
		start := len(buf)
		buf = append(buf, s...)
		return buf[start:len(buf):len(buf)]
	}
	r := &kgo.Record{Topic: k.topic.Expand(ev), Key: take(key), Value: ev.Body}
	r.Headers = make([]kgo.RecordHeader, 0, len(ev.Header)+5)
	eachHeader(d, func(hk, hv string) {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: hk, Value: take(hv)})
	})
	return r
}

// kafkaResult classifies a failed produce. Only a record the broker can
// never take (too large, invalid) is permanent; everything else (broker
// down, leader moving, not enough replicas, authorization, unknown topic,
// timeouts) is retried by the relay's backoff, since an operator can fix it.
func kafkaResult(ctx context.Context, topic string, err error) Result {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage):
		return Result{Outcome: Permanent, Err: fmt.Sprintf("kafka refused the record for topic %q: %v", topic, err)}
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return Result{Outcome: Retryable, Err: fmt.Sprintf("kafka topic %q does not exist: create it (the relay creates none)", topic)}
	case errors.Is(err, kerr.InvalidTopicException):
		return Result{Outcome: Permanent, Err: fmt.Sprintf("kafka topic name %q is invalid: %v", topic, err)}
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.DeadlineExceeded):
		return Result{Outcome: Retryable, Err: fmt.Sprintf("kafka produce to %q: not acknowledged within the backend's timeout (%v)", topic, err)}
	case ctx.Err() != nil:
		return Result{Outcome: Retryable, Err: ctxErr(ctx, "kafka produce to "+topic)}
	}
	return Result{Outcome: Retryable, Err: fmt.Sprintf("kafka produce to %q: %v", topic, err)}
}
