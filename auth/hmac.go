package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// HMACConfig configures an HMAC verifier: a MAC of the raw body, sent in a
// header (Meta's X-Hub-Signature-256, Webex Connect's X-Hub-Signature, …).
type HMACConfig struct {
	// Secrets are the shared secrets; any one may match (rotation). Empty
	// strings are ignored; none left is an error.
	Secrets []string
	// Header is the name of the header carrying the signature (required).
	Header string
	// Algorithm is "sha1", "sha256" or "sha512"; "" means "sha256".
	Algorithm string
	// Encoding is "hex" or "base64"; "" means "hex".
	Encoding string
	// Prefix is written before the encoded MAC, e.g. "sha256="; "" for none.
	Prefix string
	// PrefixOptional also accepts the value without Prefix (Webex Connect).
	PrefixOptional bool
}

// HMAC verifies a MAC of the raw body carried in a header.
type HMAC struct {
	macs           []*sync.Pool // per secret: keyed MACs, reset before use
	header         string
	algorithm      string
	size           int
	base64         bool
	prefix         string
	prefixOptional bool
}

var _ Verifier = (*HMAC)(nil)

func hmacHash(algorithm string) (func() hash.Hash, string, error) {
	switch strings.ToLower(algorithm) {
	case "", "sha256":
		return sha256.New, "sha256", nil
	case "sha1":
		return sha1.New, "sha1", nil
	case "sha512":
		return sha512.New, "sha512", nil
	}
	return nil, "", fmt.Errorf("hmac: algorithm %q not supported (sha1, sha256, sha512)", algorithm)
}

func hmacEncoding(encoding string) (bool, error) {
	switch strings.ToLower(encoding) {
	case "", "hex":
		return false, nil
	case "base64":
		return true, nil
	}
	return false, fmt.Errorf("hmac: encoding %q not supported (hex, base64)", encoding)
}

// NewHMAC checks c and returns the verifier.
func NewHMAC(c HMACConfig) (*HMAC, error) {
	newHash, alg, err := hmacHash(c.Algorithm)
	if err != nil {
		return nil, err
	}
	b64, err := hmacEncoding(c.Encoding)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(c.Header) == "" {
		return nil, errors.New("hmac: header name is required")
	}
	secrets := nonEmpty(c.Secrets)
	if len(secrets) == 0 {
		return nil, errors.New("hmac: at least one non-empty secret is required")
	}
	v := &HMAC{
		header:         strings.TrimSpace(c.Header),
		algorithm:      alg,
		size:           newHash().Size(),
		base64:         b64,
		prefix:         c.Prefix,
		prefixOptional: c.PrefixOptional,
	}
	for _, s := range secrets {
		key := []byte(s)
		// A keyed MAC costs two hash blocks and a few allocations to set up;
		// pooled ones are only reset.
		v.macs = append(v.macs, &sync.Pool{New: func() any { return hmac.New(newHash, key) }})
	}
	return v, nil
}

// Verify checks the MAC in the configured header against the raw body.
func (v *HMAC) Verify(r *Request) error {
	value := strings.TrimSpace(r.Header.Get(v.header))
	if value == "" {
		return fail(ReasonMissing, "hmac: header %s is absent", v.header)
	}
	got, err := v.parse(value)
	if err != nil {
		return err
	}
	match := 0
	var sum [sha512.Size]byte
	for _, pool := range v.macs {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		mac.Write(r.Body)
		if hmac.Equal(mac.Sum(sum[:0]), got) {
			match |= 1
		}
		pool.Put(mac)
	}
	if match == 0 {
		return fail(ReasonBadSignature, "hmac: %s signature in %s does not match the body", v.algorithm, v.header)
	}
	return nil
}

// parse strips the prefix and decodes the MAC of a trimmed header value.
func (v *HMAC) parse(value string) ([]byte, error) {
	if v.prefix != "" {
		if len(value) >= len(v.prefix) && strings.EqualFold(value[:len(v.prefix)], v.prefix) {
			value = value[len(v.prefix):]
		} else if !v.prefixOptional {
			return nil, fail(ReasonMalformed, "hmac: header %s lacks the expected prefix %q", v.header, v.prefix)
		}
	}
	var (
		got []byte
		err error
	)
	if !printable(value) {
		err = errors.New("not printable")
	} else if v.base64 {
		got, err = base64.StdEncoding.Strict().DecodeString(value)
		if err != nil {
			got, err = base64.RawStdEncoding.Strict().DecodeString(value)
		}
	} else {
		got, err = hex.DecodeString(value)
	}
	if err != nil || len(got) != v.size {
		enc := "hex"
		if v.base64 {
			enc = "base64"
		}
		return nil, fail(ReasonMalformed, "hmac: header %s is not a %s %s digest", v.header, enc, v.algorithm)
	}
	return got, nil
}

// SignHMAC returns the full header value (including the prefix) that an
// HMAC verifier built from c accepts for body signed with secret. It panics
// on an unsupported algorithm or encoding, which NewHMAC would reject.
func SignHMAC(c HMACConfig, secret string, body []byte) string {
	newHash, _, err := hmacHash(c.Algorithm)
	if err != nil {
		panic(err)
	}
	b64, err := hmacEncoding(c.Encoding)
	if err != nil {
		panic(err)
	}
	mac := hmac.New(newHash, []byte(secret))
	mac.Write(body)
	sum := mac.Sum(nil)
	if b64 {
		return c.Prefix + base64.StdEncoding.EncodeToString(sum)
	}
	return c.Prefix + hex.EncodeToString(sum)
}
