// Package auth verifies that a callback really comes from the provider that
// claims to have sent it.
//
// Each scheme is a small type implementing Verifier (HMAC, Basic, Header, JWT,
// Twilio, StandardWebhooks, IPAllow, None), built from a plain config struct by
// its New… constructor, which checks the config and fills defaults. A channel
// holds a list of verifiers and all of them must pass (see All).
//
// Verifiers work on the exact raw bytes of the body (Request.Body); they never
// re-serialise anything. Secrets are compared in constant time. A failure is a
// *Failure carrying a Reason for logs and metrics; its Error text never
// contains a secret or a credential.
//
// The package also holds the signing side of each scheme (Sign… functions),
// used by `edgerelay simulate` and by backend signing (Standard Webhooks).
//
// auth imports only the standard library and golang-jwt; it knows nothing of
// HCL or of the relay.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Request is what a verifier sees of an inbound callback.
type Request struct {
	// Method is the HTTP method.
	Method string
	// URL is the request URL as received (path and raw query).
	URL *url.URL
	// PublicURL is the channel's public URL (scheme, host and path as the
	// provider calls it), without query. Empty when not configured.
	PublicURL string
	// Header holds the request headers.
	Header http.Header
	// Body is the raw body, read once, exactly as received.
	Body []byte
	// RemoteAddr is the TCP peer address ("ip:port").
	RemoteAddr string
	// Host is the Host the request was sent to (http.Request.Host). Only
	// used to rebuild the public URL when PublicURL is empty.
	Host string
	// At is when the request arrived, for verifiers that check times
	// (timestamps, token lifetimes, credential expiry). Zero means now (the
	// verifier's clock). A request kept and verified again later carries its
	// original arrival time, so it is judged as it would have been then.
	At time.Time
}

// at returns r.At, or now() when it is zero.
func (r *Request) at(now func() time.Time) time.Time {
	if r.At.IsZero() {
		return now()
	}
	return r.At
}

// Verifier checks one authentication scheme.
//
// Verify returns nil when the request passes, a *Failure when the credentials
// are missing or wrong, and any other error for a technical failure (which the
// relay also treats as a rejection: authentication fails closed).
type Verifier interface {
	Verify(r *Request) error
}

// Reason classifies a failed authentication for logs and metrics.
type Reason string

// Reasons, used as the `reason` label of auth_failures_total.
const (
	ReasonMissing        Reason = "missing_credentials" // header/token absent
	ReasonMalformed      Reason = "malformed"           // header/token present but unparsable
	ReasonBadSignature   Reason = "bad_signature"       // signature or MAC does not match
	ReasonBadCredentials Reason = "bad_credentials"     // wrong user, password or token
	ReasonExpired        Reason = "expired_credential"  // credential or token expired
	ReasonClockSkew      Reason = "clock_skew"          // timestamp outside the tolerance
	ReasonBadClaims      Reason = "bad_claims"          // iss/aud/nbf/hash claims do not match
	ReasonIPNotAllowed   Reason = "ip_not_allowed"      // client address outside the CIDRs
	ReasonInternal       Reason = "internal"            // technical error while verifying
)

// Failure is an authentication failure. Detail is safe to log: it never
// contains a secret, a password, a token or a signature value.
type Failure struct {
	Reason Reason
	Detail string
}

func (f *Failure) Error() string {
	if f.Detail == "" {
		return "auth: " + string(f.Reason)
	}
	return "auth: " + string(f.Reason) + ": " + f.Detail
}

func fail(reason Reason, format string, args ...any) *Failure {
	return &Failure{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of err: the Failure's reason, or ReasonInternal
// for any other non-nil error.
func ReasonOf(err error) Reason {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return ReasonInternal
}

// All runs every verifier in order and returns the first error.
func All(r *Request, vs []Verifier) error {
	for _, v := range vs {
		if err := v.Verify(r); err != nil {
			return err
		}
	}
	return nil
}

// Expiry is a credential that stops being valid at a known time.
type Expiry struct {
	// Name identifies the credential without revealing it (e.g. "user infobip").
	Name string
	// At is the first instant at which the credential is rejected.
	At time.Time
}

// Expiring is implemented by verifiers whose credentials expire (Basic), so
// the relay can warn ahead in the log and in metrics.
type Expiring interface {
	Expiries() []Expiry
}
