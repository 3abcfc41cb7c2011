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
// {provider}. It is split once into literal text and placeholders, so an
// expansion per record only joins strings.
type Template struct {
	raw   string
	parts []tmplPart // nil when raw has no placeholder
}

// tmplPart is literal text followed by a placeholder (0 none, 1 channel,
// 2 provider).
type tmplPart struct {
	lit string
	ph  uint8
}

// NewTemplate parses s; unknown placeholders are reported by
// TemplatePlaceholders' caller (configuration validation) and are kept as
// literal text here.
func NewTemplate(s string) Template {
	t := Template{raw: s}
	rest, lit := s, ""
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		var ph uint8
		switch {
		case strings.HasPrefix(rest[i:], "{channel}"):
			ph = 1
		case strings.HasPrefix(rest[i:], "{provider}"):
			ph = 2
		default:
			lit += rest[:i+1]
			rest = rest[i+1:]
			continue
		}
		t.parts = append(t.parts, tmplPart{lit: lit + rest[:i], ph: ph})
		lit = ""
		if ph == 1 {
			rest = rest[i+len("{channel}"):]
		} else {
			rest = rest[i+len("{provider}"):]
		}
	}
	if t.parts != nil {
		t.parts = append(t.parts, tmplPart{lit: lit + rest})
	}
	return t
}

// Expand fills in the placeholders for ev.
func (t Template) Expand(ev *queue.Event) string {
	if t.parts == nil {
		return t.raw
	}
	n := 0
	for _, p := range t.parts {
		n += len(p.lit)
		switch p.ph {
		case 1:
			n += len(ev.Channel)
		case 2:
			n += len(ev.Provider)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range t.parts {
		b.WriteString(p.lit)
		switch p.ph {
		case 1:
			b.WriteString(ev.Channel)
		case 2:
			b.WriteString(ev.Provider)
		}
	}
	return b.String()
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
