package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// HeaderConfig configures a Header verifier: a static token in a named
// header (Karix, Gupshup, Infobip AccountKey).
type HeaderConfig struct {
	// Name is the header name (required).
	Name string
	// Values are the accepted tokens; any one may match. Empty strings are
	// ignored; none left is an error.
	Values []string
}

// Header verifies a static token carried in a named header.
type Header struct {
	name   string
	values []string
}

var _ Verifier = (*Header)(nil)

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
	return &Header{name: http.CanonicalHeaderKey(name), values: values}, nil
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
	return nil
}

// None is the explicit `auth "none" {}`: it accepts every request.
type None struct{}

var _ Verifier = None{}

// Verify always returns nil.
func (None) Verify(*Request) error { return nil }
