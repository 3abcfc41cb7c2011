// Package profile describes the messaging providers (BSPs) whose callbacks edgerelay receives, and
// reads from a callback the three things the relay needs before it queues an event: the provider's
// event id (for de-duplication), the sender (the ordering key) and the routing fields.
//
// Start with [Lookup], which returns a fresh [Profile] for a provider name ("meta", "twilio", ...),
// and [Profile.Classify], which never fails: a body it cannot read gives a [Result] of kind
// [KindUnknown] with no event id and no order key, and the event is still stored and forwarded.
//
// A profile also carries the provider's defaults: the auth block it normally uses and that block's
// attributes ([HMACDefaults], [JWTDefaults], HeaderName), the answer the provider expects on success,
// and sample callbacks used by `edgerelay simulate`. The profiles are plain data built by a function
// on every Lookup; nothing is registered globally and nothing a caller does to a returned Profile
// changes another caller's.
//
// The per-provider rules are summarised in PROFILES.md next to this file; the fixtures under
// testdata/ are built from the providers' published sample payloads, and testdata/README.md
// names the source of each.
package profile

import (
	"net/http"
	"net/url"
	"time"
)

// Kinds of event reported in [Result.Kind]. They are informational (for logs and metrics); the
// relay routes and queues every kind the same way.
const (
	// KindMessage is a message sent by an end user to the business.
	KindMessage = "message"
	// KindStatus is a delivery report (sent, delivered, read, failed, ...) of a business message.
	KindStatus = "status"
	// KindEvent is a well-formed provider callback that is neither a message nor a status
	// (template review, opt-in, account update, ...).
	KindEvent = "event"
	// KindUnknown is a body the profile could not read.
	KindUnknown = "unknown"
)

// Auth block names used in [Profile.DefaultAuth]; they are the names of the HCL auth blocks.
const (
	AuthHMAC             = "hmac"
	AuthBasic            = "basic"
	AuthHeader           = "header"
	AuthJWT              = "jwt"
	AuthTwilio           = "twilio"
	AuthStandardWebhooks = "standard_webhooks"
	AuthNone             = "none"
)

// Request is the part of an inbound callback a profile reads. Body is the raw body exactly as
// received; Classify never modifies it.
type Request struct {
	Method      string
	Header      http.Header
	Query       url.Values
	ContentType string // the Content-Type header as received (parameters included)
	Body        []byte
}

// Options are the per-channel settings a profile may need. The generic profile reads both; the
// standard profile reads OrderKeyHeader; the others ignore them.
type Options struct {
	// EventIDHeader names the request header holding the event id (generic profile; the channel's
	// event_id_header). Empty: no event id, no de-duplication.
	EventIDHeader string
	// OrderKeyHeader names the request header holding the ordering key (generic and standard
	// profiles; the channel's order_key_header). Empty: no ordering.
	OrderKeyHeader string
}

// Result is what a profile read from one callback.
type Result struct {
	// EventID is the provider's id of the event, used for de-duplication; "" means unknown (the
	// event is not de-duplicated). For a batch it is the combination of all items' ids, joined
	// with "," in payload order; if any item of a batch has no id, EventID is "". Ids longer than
	// [MaxEventIDLen] are replaced by their digest.
	EventID string
	// OrderKey is the end user the event belongs to (the sender of a message, the recipient of a
	// status); "" means none (the event is not ordered). Bounded like EventID.
	OrderKey string
	// Fields are the routing fields, by the provider's own leaf names, read from the first item
	// of a batch. Fields absent from the payload are absent from the map; nil when there are none.
	Fields map[string]string
	// Kind is one of KindMessage, KindStatus, KindEvent or KindUnknown (informational).
	Kind string
}

// Response is the answer sent to the provider once an event is durable.
type Response struct {
	Status      int
	ContentType string // "" when Body is empty
	Body        []byte
}

// HMACDefaults are the attribute defaults of an `auth "hmac"` block for a provider that signs the
// body with an HMAC in a header.
type HMACDefaults struct {
	Header    string // e.g. "X-Hub-Signature-256"
	Algorithm string // "sha1", "sha256" or "sha512"
	Encoding  string // "hex" or "base64"
	Prefix    string // e.g. "sha256="; "" for none
	// PrefixOptional accepts the signature with or without Prefix (Webex Connect).
	PrefixOptional bool
}

// JWTDefaults are the attribute defaults of an `auth "jwt"` block for a provider that signs its
// callbacks with a JWT.
type JWTDefaults struct {
	Header      string   // header carrying the token, e.g. "Authorization"
	Scheme      string   // scheme before the token, e.g. "Bearer"; "" for a bare token
	Algorithms  []string // e.g. ["HS256"]
	PayloadHash bool     // claim payload_hash = hex SHA-256 of the body
	URLHash     bool     // claim url_hash = hex SHA-256 of the public URL (MessageBird)
	// MaxAge bounds the age of the token's iat (the provider sets iat on
	// every callback); 0 = no bound.
	MaxAge time.Duration
}

// Sample is a callback body as the provider sends it, for `edgerelay simulate`.
type Sample struct {
	ContentType string
	Body        []byte
	Query       url.Values // nil for none
}

// Profile is one provider's defaults and callback reader. Obtain one with [Lookup]; the zero
// Profile classifies every request as KindUnknown.
type Profile struct {
	// Name is the provider name as written in `provider = "..."`.
	Name string
	// DefaultAuth is the auth block this provider normally uses (one of the Auth* constants);
	// "" when the provider has no usual scheme (generic): the channel must name its auth blocks.
	DefaultAuth string
	// HMAC holds the `auth "hmac"` defaults; nil if the provider does not sign with an HMAC header.
	HMAC *HMACDefaults
	// JWT holds the `auth "jwt"` defaults; nil if the provider does not sign with a JWT.
	JWT *JWTDefaults
	// HeaderName is the default header name for `auth "header"`; "" when not applicable.
	HeaderName string
	// Success is the answer once the event is durable.
	Success Response
	// RouteFields are the documented routing field names (the keys Classify may put in Fields).
	RouteFields []string
	// Ordered reports that the profile knows the sender, so ordering defaults to "sender".
	// The generic and standard profiles are not Ordered: they order only when the channel names
	// an order_key_header (see [Profile.OrdersBy]).
	Ordered bool
	// Samples are sample callbacks by name: "inbound" (a message) and "status" (a delivery
	// report); the standard and generic profiles have only "inbound".
	Samples map[string]Sample

	// extract reads a request; nil means every request is KindUnknown.
	extract func(r *Request, o Options) Result
}

// Classify reads the event id, order key, routing fields and kind of a callback. It never panics
// and never fails: a body it cannot read (empty, not the provider's format, not parsable) gives
// Result{Kind: KindUnknown}, possibly with the ids it could still find (the generic and standard
// profiles read headers). A nil request is KindUnknown.
func (p *Profile) Classify(r *Request, o Options) Result {
	if p == nil || p.extract == nil || r == nil {
		return Result{Kind: KindUnknown}
	}
	res := p.extract(r, o)
	if res.Kind == "" {
		res.Kind = KindUnknown
	}
	if len(res.Fields) == 0 {
		res.Fields = nil
	}
	res.EventID = bounded(res.EventID)
	res.OrderKey = bounded(res.OrderKey)
	return res
}

// OrdersBy reports whether events of this profile carry an order key under o, that is whether
// ordering should default to "sender" for a channel with these options: Ordered, or the generic
// or standard profile with an OrderKeyHeader. (The other profiles ignore the header options.)
func (p *Profile) OrdersBy(o Options) bool {
	if p == nil {
		return false
	}
	return p.Ordered || (p.Name == nameGeneric || p.Name == nameStandard) && o.OrderKeyHeader != ""
}

// Lookup returns a fresh copy of the named provider's profile: meta, twilio, infobip, gupshup,
// karix, netcore, webex, vonage, messagebird, sinch, standard or generic. The name is matched
// exactly (lower case, as in the configuration).
func Lookup(name string) (*Profile, bool) {
	for _, p := range catalog() {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Names returns the provider names Lookup knows, in the order of the specification.
func Names() []string {
	ps := catalog()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}
