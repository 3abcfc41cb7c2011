package outbound

import (
	"net/http"
	"strings"
)

// DefaultForwardHeaders are the caller's request headers forwarded to the
// BSP; every other header stays at the relay. It is an allow-list: a
// caller's Cookie, relay credential (whatever caller_auth reads),
// X-HTTP-Method-Override (a BSP honouring it would let a caller get around
// allow_methods), X-Forwarded-* and any header a later BSP feature may
// start to trust never leave. Content-Length is set from the body, Host from
// base_url, and the injected credentials are added after the copy.
var DefaultForwardHeaders = []string{
	"Accept", "Accept-Encoding", "Accept-Language",
	"Content-Type", "Content-Encoding", "Content-Language", "Content-Disposition",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "Range",
	"User-Agent", "Idempotency-Key", "X-Request-Id", "X-Correlation-Id",
	"Traceparent", "Tracestate",
}

// headerSet is a set of canonical header names.
type headerSet map[string]bool

func newHeaderSet(names ...[]string) headerSet {
	s := headerSet{}
	for _, list := range names {
		for _, n := range list {
			s[http.CanonicalHeaderKey(n)] = true
		}
	}
	return s
}

// copyAllowed copies to dst the headers of src named in allow, except the
// names in strip and the headers src's own Connection header declares
// hop-by-hop.
func copyAllowed(dst, src http.Header, allow, strip headerSet) {
	var skip map[string]bool
	for _, v := range src["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if skip == nil {
					skip = map[string]bool{}
				}
				skip[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	for k, vv := range src {
		if !allow[k] || strip[k] || skip[k] || isHopByHop(k) {
			continue
		}
		dst[k] = append([]string(nil), vv...)
	}
}
