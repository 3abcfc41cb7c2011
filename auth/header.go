package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// HeaderConfig configures a Header verifier: a static token in a named
// header (Karix, Gupshup, Infobip AccountKey).
type HeaderConfig struct {
	// Name is the header name (required).
	Name string
	// Values are the accepted tokens; any one may match. Empty strings are
	// ignored; none left is an error.
	Values []string
	// Expires, when set, is the first instant the values are rejected
	// (reason expired_credential); Expiries reports it so the relay warns ahead.
	Expires time.Time
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Header verifies a static token carried in a named header.
type Header struct {
	name    string
	values  []string
	expires time.Time
	now     func() time.Time
}

var (
	_ Verifier = (*Header)(nil)
	_ Expiring = (*Header)(nil)
)

// NewHeader checks c and returns the verifier.
func NewHeader(c HeaderConfig) (*Header, error) {
	name := strings.TrimSpace(c.Name)
	if name == "" {
		return nil, errors.New("header: name is required")
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || r == ':' {
			return nil, fmt.Errorf("header: name %q is not a valid header name", c.Name)
		}
	}
	values := nonEmpty(c.Values)
	if len(values) == 0 {
		return nil, fmt.Errorf("header: at least one non-empty value is required for %s", name)
	}
	h := &Header{name: http.CanonicalHeaderKey(name), values: values, expires: c.Expires, now: c.Now}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Expiries reports the end date of the values, if any.
func (h *Header) Expiries() []Expiry {
	if h.expires.IsZero() {
		return nil
	}
	return []Expiry{{Name: "header " + h.name, At: h.expires}}
}

// Verify checks that the header carries one of the configured values.
func (h *Header) Verify(r *Request) error {
	got := r.Header.Get(h.name)
	if got == "" {
		return fail(ReasonMissing, "header: %s is absent", h.name)
	}
	match := false
	for _, want := range h.values {
		if equalString(got, want) {
			match = true
		}
	}
	if !match {
		return fail(ReasonBadCredentials, "header: %s does not carry an accepted value", h.name)
	}
	if !h.expires.IsZero() && !h.now().Before(h.expires) {
		return fail(ReasonExpired, "header: the %s values expired at %s", h.name, h.expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// None is the explicit `auth "none" {}`: it accepts every request.
type None struct{}

var _ Verifier = None{}

// Verify always returns nil.
func (None) Verify(*Request) error { return nil }
