package outbound

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
)

// Router dispatches an internal listener's requests to the upstream whose
// mount prefix (Proxy.Path) starts the request's escaped path, the longest
// prefix winning. Unlike http.ServeMux it never cleans a path nor answers
// with a redirect: the proxy itself refuses path tricks with 403.
//
// CONNECT and absolute-URL request lines are refused with 403 before any
// dispatch. A request under no upstream goes to Fallback, or gets 403 with a
// JSON ErrorBody when Fallback is nil.
type Router struct {
	// Fallback serves requests under no upstream (e.g. other handlers of
	// the same listener). Set it before serving.
	Fallback http.Handler
	// Log receives refusals; nil discards them.
	Log *slog.Logger

	proxies atomic.Pointer[[]*Proxy]
}

// NewRouter returns a Router over proxies.
func NewRouter(proxies ...*Proxy) *Router {
	rt := &Router{}
	rt.Set(proxies...)
	return rt
}

// Set replaces the proxies (on reload); requests in flight are unaffected.
func (rt *Router) Set(proxies ...*Proxy) {
	ps := slices.Clone(proxies)
	rt.proxies.Store(&ps)
}

// ServeHTTP dispatches r.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect || r.URL.IsAbs() || r.URL.Host != "" || r.URL.Opaque != "" ||
		(r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, "/")) {
		rt.refuse(w, r, CodeBadRequestTarget, "not a proxy for other destinations")
		return
	}
	escaped := r.URL.EscapedPath()
	var best *Proxy
	bestLen := -1
	if ps := rt.proxies.Load(); ps != nil {
		for _, p := range *ps {
			if pre := p.Path(); strings.HasPrefix(escaped, pre) && len(pre) > bestLen {
				best, bestLen = p, len(pre)
			}
		}
	}
	if best != nil {
		best.ServeHTTP(w, r)
		return
	}
	if rt.Fallback != nil {
		rt.Fallback.ServeHTTP(w, r)
		return
	}
	rt.refuse(w, r, CodeNoUpstream, "no upstream at this path")
}

func (rt *Router) refuse(w http.ResponseWriter, r *http.Request, code, msg string) {
	writeError(w, http.StatusForbidden, ErrorBody{Error: msg, Code: code})
	if rt.Log != nil {
		rt.Log.Warn("outbound request refused", "status", http.StatusForbidden, "code", code,
			"method", r.Method, "path", r.URL.EscapedPath(), "remote", r.RemoteAddr)
	}
}
