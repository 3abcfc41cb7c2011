package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// nonEmpty returns the non-empty strings of list, in order.
func nonEmpty(list []string) []string {
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// equalString compares a and b in constant time, independent of their
// lengths (both are hashed first).
func equalString(a, b string) bool {
	ha := sha256.Sum256([]byte(a))
	hb := sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// equalHex compares a hex digest received from a client with the expected
// lower-case hex digest, ignoring the case of the received one.
func equalHex(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) == 1
}

// PayloadHash returns the hex SHA-256 of body, as carried by the
// payload_hash claim of Vonage and MessageBird tokens.
func PayloadHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// URLHash returns the hex SHA-256 of the URL u, as carried by the url_hash
// claim of MessageBird tokens.
func URLHash(u string) string {
	return PayloadHash([]byte(u))
}

// fullURL returns the URL the provider called: the public URL (or, when it
// is not configured, "https://" + Host + path) followed by "?" and the raw
// query when there is one.
func fullURL(r *Request) string {
	base := r.PublicURL
	if base == "" {
		host := r.Host
		if host == "" && r.URL != nil {
			host = r.URL.Host
		}
		path := "/"
		if r.URL != nil && r.URL.EscapedPath() != "" {
			path = r.URL.EscapedPath()
		}
		base = "https://" + host + path
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		return base + "?" + r.URL.RawQuery
	}
	return base
}

// printable reports whether s holds only visible ASCII characters (no
// spaces or controls): base64 decoders skip CR and LF, and a credential
// must not be accepted in more than one spelling.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
