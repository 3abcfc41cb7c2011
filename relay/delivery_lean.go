package relay

// The lean delivery path: an attempt to a plain-http backend without a
// proxy written straight to the wire by h1.Transport.Send, with no
// http.Request, http.Client or context per attempt. It sends what the
// net/http path (request, in delivery_http.go) sends, field for field:
// the event's forwarded headers, the X-Relay-* headers, the Standard
// Webhooks signature, the backend's static headers and its credentials,
// each layer replacing the fields of the same name before it (the order
// of the fields differs: see fields).

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/h1"
	"github.com/edgerelay/edgerelay/relay/inject"
)

// leanBackend is what the lean path keeps of a backend's settings.
type leanBackend struct {
	tr   *h1.Transport
	dest h1.Dest // the URL's, when it has no {path} or {query}
	tmpl bool    // the URL has {path} or {query}: Dest per event
	// set holds the canonical names the relay sets itself: 1 for the
	// X-Relay-* and signature fields, 2 for static headers.
	set    map[string]uint8
	static []h1.Field // the backend's headers, canonical names, sorted
}

var relaySet = []string{"X-Relay-Event-Id", "X-Relay-Channel", "X-Relay-Provider", "X-Relay-Attempt", "X-Relay-Received-At"}
var signatureSet = []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

// newLeanBackend prepares the lean path for b, sent by tr; nil when b's
// URL is one the lean path does not send (user info in it, or not
// parsable: the net/http path then answers for it at every attempt).
func newLeanBackend(b *BackendConfig, tr *h1.Transport, signed bool) *leanBackend {
	lb := &leanBackend{tr: tr, set: map[string]uint8{}, tmpl: strings.Contains(b.URL, "{")}
	u, err := backendURL(b.URL, "", "")
	if err != nil || u.Scheme != "http" || u.User != nil {
		return nil
	}
	if !lb.tmpl {
		if lb.dest, err = h1.DestOf(u); err != nil {
			return nil
		}
	}
	for _, k := range relaySet {
		lb.set[k] = 1
	}
	if signed {
		for _, k := range signatureSet {
			lb.set[k] = 1
		}
	}
	for k, v := range b.Headers {
		ck := http.CanonicalHeaderKey(k)
		lb.set[ck] = 2
		lb.static = append(lb.static, h1.Field{Name: ck, Value: v})
	}
	slices.SortFunc(lb.static, func(a, b h1.Field) int { return strings.Compare(a.Name, b.Name) })
	return lb
}

// leanScratch is one attempt's reusable memory.
type leanScratch struct {
	fields []h1.Field
	snip   [256]byte
}

var leanScratches = sync.Pool{New: func() any { return &leanScratch{fields: make([]h1.Field, 0, 32)} }}

// urlErrorOp is how net/http's client names a method in its errors.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// sendLean is send (delivery_http.go) on the lean path.
func (d *deliverer) sendLean(rt *backendRuntime, l *queue.Lease) (res attemptResult, status int, retryAfter time.Duration, errText string) {
	lb := rt.lean
	ev := l.Event
	deadline := time.Now().Add(rt.cfg.Timeout)
	dest := lb.dest
	if lb.tmpl {
		u, err := backendURL(rt.cfg.URL, ev.Path, d.s.channelRest(ev))
		if err == nil {
			dest, err = h1.DestOf(u)
		}
		if err != nil {
			return permanent, 0, 0, "building request: " + err.Error()
		}
	}
	sc := leanScratches.Get().(*leanScratch)
	defer leanScratches.Put(sc)
	var rep h1.Reply
	for try := 0; ; try++ {
		var injected http.Header
		var att *inject.Attempt
		if len(rt.cfg.Inject) > 0 {
			injected = http.Header{}
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			var err error
			att, err = rt.inject.Apply(ctx, injected, ev.Body)
			cancel()
			if err != nil {
				if isCredentialErr(err) {
					return retryable, 0, 0, "credentials: " + err.Error()
				}
				return permanent, 0, 0, "building request: " + err.Error()
			}
		}
		sc.fields = lb.fields(sc.fields[:0], rt, l, injected)
		var err error
		rep, err = lb.tr.Send(&h1.Request{Method: ev.Method, Dest: dest, Fields: sc.fields, Body: ev.Body, Deadline: deadline}, sc.snip[:])
		clear(sc.fields)
		if err != nil {
			// Worded as net/http's client words it: Post "http://…": …
			return retryable, 0, 0, "request failed: " + urlErrorOp(ev.Method) + ` "http://` + dest.Host + dest.Target + `": ` + err.Error()
		}
		if rep.Status != http.StatusUnauthorized || try > 0 || !att.Unauthorized() {
			break
		}
	}
	return classify(rep.Status, rep.RetryAfter, rep.Snippet)
}

// fields appends the request's header fields to out: the event's
// forwarded headers (Authorization only with pass_authorization) sorted,
// the X-Relay-* headers, the signature, the static headers sorted, the
// credentials sorted; a field the relay sets replaces the event's of the
// same name, a static header the relay's, a credential every other. (The
// net/http path sends the same fields sorted as one list: the order of
// fields of different names carries no meaning, RFC 9110 §5.3.)
func (lb *leanBackend) fields(out []h1.Field, rt *backendRuntime, l *queue.Lease, injected http.Header) []h1.Field {
	ev := l.Event
	for k, vs := range ev.Header {
		if lb.set[k] != 0 || injected[k] != nil || k == "Authorization" && !rt.cfg.PassAuthorization {
			continue
		}
		for _, v := range vs {
			out = append(out, h1.Field{Name: k, Value: v})
		}
	}
	// Map order is random: sorted, as net/http sends them (values of one
	// name keep their order).
	slices.SortStableFunc(out, func(a, b h1.Field) int { return strings.Compare(a.Name, b.Name) })
	add := func(k, v string) {
		if lb.set[k] != 2 && injected[k] == nil {
			out = append(out, h1.Field{Name: k, Value: v})
		}
	}
	add("X-Relay-Event-Id", ev.ID)
	add("X-Relay-Channel", ev.Channel)
	add("X-Relay-Provider", ev.Provider)
	add("X-Relay-Attempt", strconv.Itoa(l.Attempt))
	add("X-Relay-Received-At", ev.ReceivedAt.UTC().Format(receivedAtFormat))
	if rt.signer != nil {
		now := time.Now()
		add("Webhook-Id", ev.ID)
		add("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
		add("Webhook-Signature", rt.signer.Sign(ev.ID, now, ev.Body))
	}
	for _, f := range lb.static {
		if injected[f.Name] == nil {
			out = append(out, f)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(injected)) {
		for _, v := range injected[k] {
			out = append(out, h1.Field{Name: k, Value: v})
		}
	}
	return out
}
