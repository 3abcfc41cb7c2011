// Package destination is where a backend's deliveries leave the process.
//
// Start with [Destination]: one small interface with three implementations:
// HTTP (one request per delivery, 2xx = delivered; it lives in package relay,
// relay/delivery_http.go, because building its request needs the channel's
// routing and the backend's credential injectors), [Kafka] (a record per
// delivery through franz-go's idempotent producer, acks=all; delivered when
// the partition leader acknowledged it) and [NATS] (a JetStream publish per
// delivery with Nats-Msg-Id = the event id; delivered when the PubAck
// arrives). They differ only in how a batch of deliveries leaves the process
// and what "acknowledged" means. Retries, the circuit breaker, dead letters,
// metrics, ordering and de-duplication are one implementation above this
// package (relay/delivery.go), which leases deliveries from the queue, hands
// them here in batches and turns each [Result] into an ack, a retry or a
// dead letter.
//
// Batching: the queue hands out one delivery at a time and keeps one in
// flight per order key. A bus destination's [Destination.MaxBatch] is large,
// so the layer above gathers what the queue has ready (many keys, one
// delivery each) into one Send; Send puts every record of the batch into
// the producer at once and waits for the acknowledgements. franz-go groups
// the records of concurrent batches per partition (with its linger), and
// JetStream's asynchronous publishes keep a bounded window of unacknowledged
// messages, so a backlog drains at the broker's pace instead of one round
// trip per event.
package destination
