package destination

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConfig configures a NATS JetStream destination. At most one of
// CredentialsFile, Token, User (+Password) and NKeySeedFile is set.
type NATSConfig struct {
	Servers []string
	// Subject may hold {channel} and {provider}.
	Subject         string
	CredentialsFile string
	Token           string
	User, Password  string
	NKeySeedFile    string
	// TLS, when not nil, connects over TLS with it.
	TLS *tls.Config
	// Timeout bounds each publish (the backend's timeout).
	Timeout time.Duration
	// MaxBatch is how many deliveries one Send carries (default 1024).
	MaxBatch int
	// MaxPending bounds the unacknowledged asynchronous publishes of the
	// connection (default 4096).
	MaxPending int
}

// NATS publishes one JetStream message per delivery: subject from the
// template, data = the body, headers = the forwarded ones plus the relay's,
// and Nats-Msg-Id = the event id, so the stream drops a retry of a message
// it already stored (within its duplicate window). A delivery is made when
// the stream's PubAck arrives.
type NATS struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	subject  Template
	timeout  time.Duration
	maxBatch int
}

// NewNATS connects in the background: a server that is down at start is an
// ordinary delivery failure, and the connection keeps reconnecting.
func NewNATS(cfg NATSConfig) (*NATS, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("nats: no servers")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []nats.Option{
		nats.Name("edgerelay"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// No buffering while disconnected: a publish then fails at once
		// and is retried by the relay, rather than waiting unseen.
		nats.ReconnectBufSize(-1),
		nats.Timeout(timeout),
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	switch {
	case cfg.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredentialsFile))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nkey seed file: %w", err)
		}
		opts = append(opts, o)
	}
	nc, err := nats.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	pending := cfg.MaxPending
	if pending <= 0 {
		pending = 4096
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(pending), jetstream.WithPublishAsyncTimeout(timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	mb := cfg.MaxBatch
	if mb <= 0 {
		mb = 1024
	}
	return &NATS{nc: nc, js: js, subject: NewTemplate(cfg.Subject), timeout: timeout, maxBatch: min(mb, pending)}, nil
}

// MaxBatch is the configured batch size.
func (n *NATS) MaxBatch() int { return n.maxBatch }

// Close closes the connection.
func (n *NATS) Close() { n.nc.Close() }

// Send publishes every message of the batch asynchronously and waits for
// each PubAck.
func (n *NATS) Send(ctx context.Context, batch []Delivery) []Result {
	out := make([]Result, len(batch))
	if !n.nc.IsConnected() {
		return failAll(len(batch), Result{Outcome: Retryable, Err: "nats: not connected (" + n.nc.Status().String() + ")"})
	}
	futs := make([]jetstream.PubAckFuture, len(batch))
	for i, d := range batch {
		m := n.msg(d)
		f, err := n.js.PublishMsgAsync(m, jetstream.WithStallWait(n.timeout))
		if err != nil {
			out[i] = n.result(ctx, m.Subject, err)
			continue
		}
		futs[i] = f
	}
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			out[i] = n.result(ctx, f.Msg().Subject, err)
		case <-ctx.Done():
			out[i] = Result{Outcome: Retryable, Err: ctxErr(ctx, "nats publish to "+f.Msg().Subject)}
		}
	}
	return out
}

func (n *NATS) msg(d Delivery) *nats.Msg {
	ev := d.Event
	m := &nats.Msg{Subject: n.subject.Expand(ev), Data: ev.Body, Header: make(nats.Header, len(ev.Header)+6)}
	// Single values (nearly all of them) share one backing array.
	vals := make([]string, 0, len(ev.Header)+6)
	eachHeader(d, func(k, v string) {
		if old, ok := m.Header[k]; ok {
			m.Header[k] = append(old[:len(old):len(old)], v)
			return
		}
		vals = append(vals, v)
		m.Header[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	})
	m.Header[jetstream.MsgIDHeader] = []string{ev.ID}
	return m
}

// result classifies a failed publish: a message the server can never take
// (over its max payload or the stream's message size) is permanent;
// everything else is retried.
func (n *NATS) result(ctx context.Context, subject string, err error) Result {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return Result{Outcome: Permanent, Err: fmt.Sprintf("nats refused the message for %q: %v", subject, err)}
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return Result{Outcome: Permanent, Err: fmt.Sprintf("nats stream refused the message for %q: %v", subject, err)}
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return Result{Outcome: Retryable, Err: fmt.Sprintf("no JetStream stream answered for subject %q: create a stream whose subjects cover it (the relay creates none), or the stream has no leader", subject)}
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return Result{Outcome: Retryable, Err: fmt.Sprintf("nats publish to %q: no PubAck within the backend's timeout", subject)}
	case ctx.Err() != nil:
		return Result{Outcome: Retryable, Err: ctxErr(ctx, "nats publish to "+subject)}
	}
	return Result{Outcome: Retryable, Err: fmt.Sprintf("nats publish to %q: %v", subject, err)}
}
