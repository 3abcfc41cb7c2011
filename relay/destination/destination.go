package destination

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Destination sends deliveries to one backend.
type Destination interface {
	// Send hands a batch of deliveries to the backend and waits until each
	// is acknowledged or has failed, or ctx ends (an unfinished delivery is
	// then a retryable failure). It returns one Result per delivery, in the
	// batch's order. Send is safe for concurrent use.
	Send(ctx context.Context, batch []Delivery) []Result
	// MaxBatch is how many deliveries one Send should carry at most.
	MaxBatch() int
	// Close releases connections once no Send is running.
	Close()
}

// Delivery is one attempt to deliver an event to this destination.
type Delivery struct {
	Event *queue.Event
	// Attempt counts from 1 and survives restarts (X-Relay-Attempt).
	Attempt int
}

// Outcome is what one attempt came to.
type Outcome uint8

const (
	// Delivered: the backend acknowledged the delivery.
	Delivered Outcome = iota
	// Retryable: try again later (backend down, timeout, 5xx, broker error).
	Retryable
	// Permanent: the backend refused it for good; a dead letter at once.
	Permanent
)

// Result is the outcome of one delivery of a batch.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status for HTTP backends, 0 otherwise.
	Status int
	// RetryAfter is the backend's requested delay (HTTP Retry-After).
	RetryAfter time.Duration
	// Err says why, when the delivery was not made. It never holds a secret.
	Err string
}

// ReceivedAtFormat is RFC 3339 in UTC with all nine digits of nanoseconds.
const ReceivedAtFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Relay header names; every destination sends them.
const (
	HeaderEventID    = "X-Relay-Event-Id"
	HeaderChannel    = "X-Relay-Channel"
	HeaderProvider   = "X-Relay-Provider"
	HeaderAttempt    = "X-Relay-Attempt"
	HeaderReceivedAt = "X-Relay-Received-At"
)

// eachHeader calls fn for every header a delivery carries: the callback's
// forwarded headers (Content-Type among them) in canonical form, then the
// relay's own, which replace any forwarded header of the same name.
func eachHeader(d Delivery, fn func(k, v string)) {
	ev := d.Event
	for k, vs := range ev.Header {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case HeaderEventID, HeaderChannel, HeaderProvider, HeaderAttempt, HeaderReceivedAt:
			continue
		}
		for _, v := range vs {
			fn(ck, v)
		}
	}
	fn(HeaderEventID, ev.ID)
	fn(HeaderChannel, ev.Channel)
	fn(HeaderProvider, ev.Provider)
	fn(HeaderAttempt, strconv.Itoa(d.Attempt))
	fn(HeaderReceivedAt, ev.ReceivedAt.UTC().Format(ReceivedAtFormat))
}

// Template is a topic or subject with the placeholders {channel} and
// {provider}.
type Template struct {
	raw    string
	static bool
}

// NewTemplate parses s; unknown placeholders are reported by
// TemplatePlaceholders' caller (configuration validation).
func NewTemplate(s string) Template {
	return Template{raw: s, static: !strings.Contains(s, "{")}
}

// Expand fills in the placeholders for ev.
func (t Template) Expand(ev *queue.Event) string {
	if t.static {
		return t.raw
	}
	r := strings.NewReplacer("{channel}", ev.Channel, "{provider}", ev.Provider)
	return r.Replace(t.raw)
}

// UnknownPlaceholders lists the {…} placeholders in s other than {channel}
// and {provider}.
func UnknownPlaceholders(s string) []string {
	var bad []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			return bad
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return append(bad, s[i:])
		}
		if p := s[i : i+j+1]; p != "{channel}" && p != "{provider}" {
			bad = append(bad, p)
		}
		s = s[i+j+1:]
	}
}

// failAll returns a result per delivery, all the same.
func failAll(n int, r Result) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// ctxErr is the text of a delivery cut short by ctx.
func ctxErr(ctx context.Context, what string) string {
	if ctx.Err() == context.DeadlineExceeded {
		return what + ": no acknowledgement within the backend's timeout"
	}
	return what + ": " + ctx.Err().Error()
}
