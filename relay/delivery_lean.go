package relay

// The header fields of a delivery attempt to a url backend (fieldPlan),
// and the lean path: an attempt to a plain-http backend without a proxy
// written straight to the wire by h1.Transport.Send, with no
// http.Request, http.Client or context per attempt (leanDest). Both
// clients send the fields fieldPlan.fields gives: the event's forwarded
// headers, the X-Relay-* headers, the Standard Webhooks signature, the
// backend's static headers and its credentials, each layer replacing the
// fields of the same name before it.

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/h1"
)

// fieldPlan is what every attempt of a url backend takes from its
// settings to build its header fields.
type fieldPlan struct {
	// set holds the canonical names the relay sets itself: 1 for the
	// X-Relay-* and signature fields, 2 for static headers.
	set    map[string]uint8
	static []h1.Field // the backend's headers, canonical names, sorted
}

var relaySet = []string{"X-Relay-Event-Id", "X-Relay-Channel", "X-Relay-Provider", "X-Relay-Attempt", "X-Relay-Received-At"}
var signatureSet = []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}

func newFieldPlan(b *BackendConfig, signed bool) *fieldPlan {
	p := &fieldPlan{set: map[string]uint8{}}
	for _, k := range relaySet {
		p.set[k] = 1
	}
	if signed {
		for _, k := range signatureSet {
			p.set[k] = 1
		}
	}
	for k, v := range b.Headers {
		ck := http.CanonicalHeaderKey(k)
		p.set[ck] = 2
		p.static = append(p.static, h1.Field{Name: ck, Value: v})
	}
	slices.SortFunc(p.static, func(a, b h1.Field) int { return strings.Compare(a.Name, b.Name) })
	return p
}

// leanDest is how the lean path reaches a backend.
type leanDest struct {
	tr   *h1.Transport
	dest h1.Dest // the URL's, when it has no {path} or {query}
	tmpl bool    // the URL has {path} or {query}: a Dest per event
}

// newLeanDest prepares the lean path for b, sent by tr; nil when b's URL
// is one the lean path does not send (user info in it, or not parsable:
// the net/http path then answers for it at every attempt).
func newLeanDest(b *BackendConfig, tr *h1.Transport) *leanDest {
	ld := &leanDest{tr: tr, tmpl: strings.Contains(b.URL, "{")}
	u, err := backendURL(b.URL, "", "")
	if err != nil || u.Scheme != "http" || u.User != nil {
		return nil
	}
	if !ld.tmpl {
		if ld.dest, err = h1.DestOf(u); err != nil {
			return nil
		}
	}
	return ld
}

// destOf is where ev's request goes: the URL's Dest, or with a template
// the Dest of the URL filled in for ev.
func (ld *leanDest) destOf(tmpl string, ev *queue.Event, s *Server) (h1.Dest, error) {
	if !ld.tmpl {
		return ld.dest, nil
	}
	u, err := backendURL(tmpl, ev.Path, s.channelRest(ev))
	if err != nil {
		return h1.Dest{}, err
	}
	return h1.DestOf(u)
}

// exchange sends one try by h1.Send. Its errors read as net/http's
// client words them: Post "http://…": …
func (ld *leanDest) exchange(method string, dest h1.Dest, fields []h1.Field, body []byte, deadline time.Time, snip []byte) (answer, error) {
	rep, err := ld.tr.Send(&h1.Request{Method: method, Dest: dest, Fields: fields, Body: body, Deadline: deadline}, snip)
	if err != nil {
		return answer{}, &url.Error{Op: urlErrorOp(method), URL: "http://" + dest.Host + dest.Target, Err: err}
	}
	return answer{rep.Status, rep.RetryAfter, rep.Snippet}, nil
}

// urlErrorOp is how net/http's client names a method in its errors.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

// fields appends the request's header fields to out: the event's
// forwarded headers (Authorization only with pass_authorization) sorted,
// the X-Relay-* headers, the signature, the static headers sorted, the
// credentials sorted; a field the relay sets replaces the event's of the
// same name, a static header the relay's, a credential every other. (The
// net/http path sends the same fields sorted as one list: the order of
// fields of different names carries no meaning, RFC 9110 §5.3.)
func (p *fieldPlan) fields(out []h1.Field, rt *backendRuntime, l *queue.Lease, injected http.Header) []h1.Field {
	ev := l.Event
	for k, vs := range ev.Header {
		if p.set[k] != 0 || injected[k] != nil || k == "Authorization" && !rt.cfg.PassAuthorization {
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
		if p.set[k] != 2 && injected[k] == nil {
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
	for _, f := range p.static {
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
