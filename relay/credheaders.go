package relay

import (
	"net/http"
	"strings"
)

// Credential headers: what an event keeps of its callback's headers, and
// what the admin API shows of them.
//
// A callback's credentials are checked once, at the edge. The headers an
// auth block of the channel reads (the hmac or jwt header, the header
// token, Twilio's signature, the Standard Webhooks triple, Authorization)
// are dropped before the event is stored, so they never reach the journal,
// the value log, a backend or the admin API; a backend that wants to verify
// the relay gets the relay's own signature (backend sign {}).

// authHeaderNames returns the canonical names of the headers the auth
// blocks read, without duplicates.
func authHeaderNames(blocks []AuthConfig) []string {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if n == "" {
				continue
			}
			n = http.CanonicalHeaderKey(n)
			for _, o := range out {
				if o == n {
					n = ""
					break
				}
			}
			if n != "" {
				out = append(out, n)
			}
		}
	}
	for _, a := range blocks {
		switch {
		case a.HMAC != nil:
			add(a.HMAC.Header)
		case a.Basic != nil:
			add("Authorization")
		case a.Header != nil:
			add(a.Header.Name)
		case a.JWT != nil:
			h := a.JWT.Header
			if h == "" {
				h = "Authorization"
			}
			add(h)
		case a.Twilio != nil:
			add("X-Twilio-Signature")
		case a.Standard != nil:
			add("Webhook-Id", "Webhook-Timestamp", "Webhook-Signature")
		}
	}
	return out
}

// redacted replaces a credential-looking header's values in admin output.
const redacted = "[redacted]"

// credentialWords mark a header name as credential-looking (compared in
// lower case, anywhere in the name): Authorization, Cookie, X-Api-Key,
// AccountKey, X-Hub-Signature-256, X-Auth-Token, X-Client-Secret, ...
var credentialWords = []string{"auth", "cookie", "key", "signature", "token", "secret", "password", "passwd", "credential", "session"}

// isCredentialHeader reports whether a header name looks like it carries a
// credential.
func isCredentialHeader(name string) bool {
	l := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// redactHeaders returns a copy of h for display with the values of
// credential-looking headers replaced by "[redacted]". Events stored by
// this version never hold such headers from their auth blocks; this also
// covers events stored before, and credentials of schemes the channel did
// not verify.
func redactHeaders(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vv := range h {
		if isCredentialHeader(k) {
			r := make([]string, len(vv))
			for i := range r {
				r[i] = redacted
			}
			out[k] = r
			continue
		}
		out[k] = vv
	}
	return out
}
