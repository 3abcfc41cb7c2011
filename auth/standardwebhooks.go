package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks header names (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// DefaultWebhookTolerance is the default accepted distance between a
// webhook-timestamp and the local clock.
const DefaultWebhookTolerance = 5 * time.Minute

// StandardWebhooksConfig configures a StandardWebhooks verifier.
type StandardWebhooksConfig struct {
	// Secrets are "whsec_<base64>" (or bare base64) keys; any one may match
	// (rotation). Empty strings are ignored; none left is an error.
	Secrets []string
	// Tolerance is the accepted distance between webhook-timestamp and
	// now, either way; 0 means DefaultWebhookTolerance.
	Tolerance time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// StandardWebhooks verifies the webhook-id, webhook-timestamp and
// webhook-signature headers of the Standard Webhooks specification:
// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
type StandardWebhooks struct {
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

var _ Verifier = (*StandardWebhooks)(nil)

// decodeWebhookSecret decodes a "whsec_" secret (the prefix is optional).
func decodeWebhookSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("secret is not whsec_ followed by base64")
	}
	return key, nil
}

// NewStandardWebhooks checks c and returns the verifier.
func NewStandardWebhooks(c StandardWebhooksConfig) (*StandardWebhooks, error) {
	if c.Tolerance < 0 {
		return nil, fmt.Errorf("standard_webhooks: tolerance %s is negative", c.Tolerance)
	}
	s := &StandardWebhooks{tolerance: c.Tolerance, now: c.Now}
	if s.tolerance == 0 {
		s.tolerance = DefaultWebhookTolerance
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i, secret := range nonEmpty(c.Secrets) {
		key, err := decodeWebhookSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("standard_webhooks: secret %d: %w", i+1, err)
		}
		s.keys = append(s.keys, key)
	}
	if len(s.keys) == 0 {
		return nil, errors.New("standard_webhooks: at least one non-empty secret is required")
	}
	return s, nil
}

// Verify checks the signature, then the timestamp.
func (s *StandardWebhooks) Verify(r *Request) error {
	id := r.Header.Get(HeaderWebhookID)
	ts := r.Header.Get(HeaderWebhookTimestamp)
	sigs := r.Header.Get(HeaderWebhookSignature)
	for _, h := range []struct{ name, value string }{
		{HeaderWebhookID, id}, {HeaderWebhookTimestamp, ts}, {HeaderWebhookSignature, sigs},
	} {
		if strings.TrimSpace(h.value) == "" {
			return fail(ReasonMissing, "standard_webhooks: header %s is absent", h.name)
		}
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return fail(ReasonMalformed, "standard_webhooks: header %s is not a Unix time", HeaderWebhookTimestamp)
	}
	candidates := parseWebhookSignatures(sigs)
	if candidates == nil {
		return fail(ReasonMalformed, "standard_webhooks: header %s holds no version,signature pair", HeaderWebhookSignature)
	}
	match := false
	for _, key := range s.keys {
		want := webhookMAC(key, id, strings.TrimSpace(ts), r.Body)
		for _, got := range candidates {
			if hmac.Equal(got, want) {
				match = true
			}
		}
	}
	if !match {
		return fail(ReasonBadSignature, "standard_webhooks: no v1 signature in %s matches", HeaderWebhookSignature)
	}
	now := r.at(s.now)
	at := time.Unix(sec, 0)
	if at.Before(now.Add(-s.tolerance)) || at.After(now.Add(s.tolerance)) {
		return fail(ReasonClockSkew, "standard_webhooks: timestamp %d is more than %s away from now", sec, s.tolerance)
	}
	return nil
}

// parseWebhookSignatures returns the decoded v1 signatures of a
// space-separated webhook-signature header. It returns nil when no entry
// has the form "version,signature", and an empty non-nil slice when there
// are entries but no decodable v1 one.
func parseWebhookSignatures(header string) [][]byte {
	var out [][]byte
	seen := false
	for _, entry := range strings.Fields(header) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok {
			continue
		}
		seen = true
		if version != "v1" {
			continue
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(sig)
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		out = append(out, raw)
	}
	if !seen {
		return nil
	}
	if out == nil {
		out = [][]byte{}
	}
	return out
}

func webhookMAC(key []byte, id, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// WebhookSigner signs deliveries with the Standard Webhooks scheme, so that
// backends can verify the relay with any Standard Webhooks library.
type WebhookSigner struct {
	key []byte
}

// NewWebhookSigner returns a signer for a "whsec_<base64>" (or bare base64)
// secret.
func NewWebhookSigner(secret string) (*WebhookSigner, error) {
	key, err := decodeWebhookSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("standard_webhooks: signer: %w", err)
	}
	return &WebhookSigner{key: key}, nil
}

// Sign returns the webhook-signature value "v1,<base64>" for a message id,
// timestamp (whole seconds) and body.
func (s *WebhookSigner) Sign(id string, ts time.Time, body []byte) string {
	mac := webhookMAC(s.key, id, strconv.FormatInt(ts.Unix(), 10), body)
	return "v1," + base64.StdEncoding.EncodeToString(mac)
}

// Headers returns the three Standard Webhooks headers for a delivery.
func (s *WebhookSigner) Headers(id string, ts time.Time, body []byte) http.Header {
	h := make(http.Header, 3)
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderWebhookSignature, s.Sign(id, ts, body))
	return h
}
