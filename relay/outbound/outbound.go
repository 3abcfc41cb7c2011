// Package outbound is the relay's outbound proxy: internal applications call
// a BSP API (Infobip, Meta, Twilio, ...) through the relay, which injects the
// credentials, refuses anything outside an allow-list and protects the BSP
// and the callers with one circuit breaker per upstream.
//
// Start with Spec (one `upstream` block, already decoded by the relay core)
// and New, which returns a *Proxy: an http.Handler mounted at Spec.Path on an
// internal listener. Router dispatches one listener's requests to several
// proxies without cleaning or redirecting paths. Update swaps the settings
// live on SIGHUP, keeping the breaker and the OAuth2 token cache when their
// settings did not change.
//
// What is forwarded. A request to <Path><rest> goes to BaseURL + "/" + rest
// (rest re-encoded from its checked segments) with the method, the query
// string as received, the body (streamed) and the caller's headers named by
// DefaultForwardHeaders and Spec.ForwardHeaders (an allow-list), minus
// Spec.StripHeaders. The BSP's answer
// (status, headers, body, trailers) is streamed back unchanged; a 3xx is
// returned as is and never followed. Only methods in AllowMethods and paths
// matching AllowPaths (see the glob syntax on Spec.AllowPaths) are forwarded;
// everything else gets 403 with a JSON ErrorBody, never a redirect.
//
// Errors the relay makes itself are JSON ErrorBody answers: 401 caller_auth
// failed, 403 refused, 413 body too large, 502 BSP unreachable (connection
// refused, DNS, TLS, connect and TLS-handshake timeouts) or broken exchange,
// 503 breaker open or concurrency limit reached (with Retry-After), 504 total
// timeout. Everything else is the BSP's own answer.
//
// Mounting. A Proxy expects r.URL still to carry its mount prefix and must
// see the path as the caller sent it: mount it with Router (or call
// ServeHTTP directly), not behind http.ServeMux or http.StripPrefix, which
// clean paths and answer with redirects.
//
// Breaker. Timeouts, connection and TLS failures, token endpoint failures,
// 5xx answers and answers cut mid-body count as failures; 1xx-4xx answers
// as successes; the caller's own failures (went away, body too large or
// unreadable) are not counted. While open (or half-open with its probes
// busy) a call gets 503 at once and nothing is sent to the BSP.
//
// OAuth2. The token is fetched once, shared and refreshed before expiry (see
// OAuth2Inject). When the BSP answers 401, the token is dropped, a new one
// is fetched and the request is replayed once, which needs the body again:
// bodies up to Spec.ReplayLimit (1 MiB) are buffered for that; larger ones
// are streamed and their 401 goes back to the caller (the next call then
// fetches a new token).
package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/inject"
)

// Defaults for the zero values of Spec and BreakerSpec.
const (
	defaultTimeout             = 30 * time.Second
	defaultConnectTimeout      = 5 * time.Second
	defaultTLSHandshakeTimeout = 10 * time.Second
	defaultMaxBody             = 32 << 20
	defaultConcurrency         = 64
	defaultReplayLimit         = 1 << 20
	defaultFailures            = 5
	defaultOpenFor             = 30 * time.Second
	defaultHalfOpenRequests    = 1
)

// Spec is one upstream: an `upstream "name" { ... }` block as plain values.
type Spec struct {
	// Name is the upstream's name (metrics label, logs, error bodies). Required.
	Name string
	// Path is the mount prefix on the internal listener, e.g. "/out/infobip/".
	// Required; a missing trailing "/" is added. It must be a clean path.
	Path string
	// BaseURL is where requests go, e.g. "https://xyz.api.infobip.com"; it
	// may include a base path ("https://graph.facebook.com/v21.0"). http or
	// https, no query, fragment or user info. Required.
	BaseURL string
	// AllowPaths are the globs a request's rest path (percent-decoded,
	// normalised, with a leading "/") must match; at least one. Syntax: "*"
	// matches any run of characters inside one segment (never "/"), and a
	// last segment "**" matches any number (zero included) of further
	// segments: "/whatsapp/1/message/*" matches "/whatsapp/1/message/text"
	// but not "/whatsapp/1/message/a/b"; "/media/**" matches "/media" and
	// everything below. Other characters match themselves, case-sensitively.
	AllowPaths []string
	// AllowMethods are the methods forwarded (default GET, POST). CONNECT
	// and TRACE are never allowed.
	AllowMethods []string
	// Timeout bounds the whole exchange with the BSP, response body
	// included (default 30s); when it expires before the answer the caller
	// gets 504, after the status was sent the response is cut.
	Timeout time.Duration
	// ConnectTimeout bounds the TCP connect (default 5s).
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake (default 10s).
	TLSHandshakeTimeout time.Duration
	// MaxBody is the largest request body forwarded, in bytes (default
	// 32 MiB); a body of exactly MaxBody passes, a larger one gets 413.
	MaxBody int64
	// Concurrency is the most requests in flight to this upstream (default
	// 64); the next one gets 503 at once.
	Concurrency int
	// TLS is the client TLS configuration (RootCAs from the trust store,
	// client certificate). nil uses the system roots. It is cloned; a
	// MinVersion below TLS 1.2 is raised to TLS 1.2.
	TLS *tls.Config
	// Inject are the credentials added to every forwarded request.
	Inject []Injector
	// CallerAuth are verifiers the internal caller must pass, all of them
	// (401 otherwise). They see the caller's method, URL, headers and remote
	// address but an empty Body, because the body is streamed and never
	// read whole: schemes that sign the body (hmac, twilio, standard
	// webhooks) cannot be used here.
	CallerAuth []auth.Verifier
	// StripHeaders are caller headers never forwarded to the BSP even when
	// allowed, e.g. the headers caller_auth reads. Authorization,
	// Proxy-Authorization and hop-by-hop headers are never forwarded.
	StripHeaders []string
	// ForwardHeaders are caller headers forwarded besides
	// DefaultForwardHeaders (the allow-list); nothing else is.
	ForwardHeaders []string
	// Hosts, when not empty, are the Host header values accepted from
	// callers ("name:port" matches exactly, "name" with any port;
	// case-insensitive), e.g. the internal listener's names; others get 403. Empty accepts any Host. The caller's
	// Host never picks the destination either way.
	Hosts []string
	// ReplayLimit is the largest request body buffered so that a request
	// can be replayed once after an OAuth2 401 (default 1 MiB). Larger
	// bodies are streamed and a 401 is returned to the caller as is.
	ReplayLimit int64
	// Breaker configures the circuit breaker.
	Breaker BreakerSpec
	// Proxy is the egress proxy of the calls to the BSP and of the token
	// calls (oauth2, huawei_iam): "" direct (default), "env", or
	// "http://[user:pass@]host:port" (see inject.Proxy).
	Proxy string
	// Rate is the most calls per second let through (0: no limit); the
	// excess gets 429 with Retry-After. Bursts of up to Rate (at least one)
	// calls pass at once.
	Rate float64
}

// BreakerSpec configures an upstream's circuit breaker: `breaker { failures,
// open_for, half_open_requests }`.
type BreakerSpec struct {
	// Failures is the number of consecutive failures (timeouts, connection
	// errors, 5xx answers) that opens the breaker (default 5).
	Failures int
	// OpenFor is how long it stays open before letting probes through
	// (default 30s).
	OpenFor time.Duration
	// HalfOpenRequests is the number of probes let through when half-open;
	// that many successes close it, one failure opens it again (default 1).
	HalfOpenRequests int
}

// Proxy forwards the requests of one upstream. It is safe for concurrent use.
type Proxy struct {
	name string
	m    *Metrics
	log  *slog.Logger

	mu  sync.Mutex // serialises Update and Close
	cur atomic.Pointer[state]
}

// state is one immutable configuration of a Proxy, swapped by Update.
type state struct {
	spec      Spec // with defaults
	prefix    string
	base      *url.URL
	baseDec   string // decoded base path without trailing "/"
	baseRaw   string // escaped base path without trailing "/"
	globs     []glob
	methods   map[string]bool
	hosts     map[string]bool
	strip     headerSet
	allow     headerSet
	transport *http.Transport
	tokenTr   *http.Transport // nil without oauth2 or huawei_iam
	tokTLS    *tls.Config     // the oauth2 block's own TLS, if any
	inject    *inject.Set
	limiter   *rate.Limiter // nil without Rate
	sem       chan struct{}
	br        *breaker
	expiries  []auth.Expiry
}

// New validates s, fills its defaults and returns the proxy. m may be nil (no
// metrics) and log nil (no logs).
func New(s Spec, m *Metrics, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{name: s.Name, m: m, log: log.With("upstream", s.Name)}
	st, err := p.compile(s, nil)
	if err != nil {
		return nil, err
	}
	p.cur.Store(st)
	m.breaker(p.name, stateValue(gobreaker.StateClosed))
	return p, nil
}

// Update replaces the proxy's settings (a SIGHUP reload: new secrets, paths,
// trust store). Requests in flight finish with the old settings. The breaker
// (state and counts) is kept when Breaker did not change, the OAuth2 token
// cache when the oauth2 settings (token URL, client, secret, scopes) did not
// change, and the connection pool when TLS (the same pointer), timeouts,
// concurrency and the BSP's scheme and host did not change. The name cannot
// change. On error the old settings stay.
func (p *Proxy) Update(s Spec) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.Name != p.name {
		return fmt.Errorf("upstream %q: update: name cannot change (got %q)", p.name, s.Name)
	}
	old := p.cur.Load()
	st, err := p.compile(s, old)
	if err != nil {
		return err
	}
	p.cur.Store(st)
	if st.transport != old.transport {
		old.transport.CloseIdleConnections()
	}
	if old.tokenTr != nil && st.tokenTr != old.tokenTr {
		old.tokenTr.CloseIdleConnections()
	}
	if st.br != old.br {
		p.m.breaker(p.name, stateValue(gobreaker.StateClosed))
		p.log.Info("upstream breaker reset by reload", "breaker", "closed")
	}
	return nil
}

// Close closes the idle connections to the BSP and to its token endpoint.
// The proxy still works afterwards (new connections are opened).
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.cur.Load()
	st.transport.CloseIdleConnections()
	if st.tokenTr != nil {
		st.tokenTr.CloseIdleConnections()
	}
}

// Name returns the upstream's name.
func (p *Proxy) Name() string { return p.name }

// Path returns the current mount prefix (always ending in "/").
func (p *Proxy) Path() string { return p.cur.Load().prefix }

// Expiries returns the bearer tokens that have an Expires time, so the relay
// can warn ahead (as for webhook passwords) in logs and metrics.
func (p *Proxy) Expiries() []auth.Expiry {
	return append([]auth.Expiry(nil), p.cur.Load().expiries...)
}

// BreakerState returns "closed", "half-open" or "open".
func (p *Proxy) BreakerState() string {
	return p.cur.Load().br.cb.State().String()
}

// TokenFetches returns how many tokens (OAuth2, Huawei IAM logins) the
// current token caches fetched (0 without inject "oauth2" or "huawei_iam").
func (p *Proxy) TokenFetches() int {
	return p.cur.Load().inject.TokenFetches()
}

func (p *Proxy) compile(s Spec, old *state) (*state, error) {
	if s.Name == "" {
		return nil, errors.New("upstream: name is empty")
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("upstream %q: "+format, append([]any{s.Name}, args...)...)
	}
	st := &state{}

	// Mount point.
	prefix := s.Path
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if !strings.HasPrefix(prefix, "/") || path.Clean(prefix)+"/" != prefix && prefix != "/" ||
		strings.ContainsAny(prefix, "\\%?#") {
		return nil, errf("path %q: must be a clean absolute path", s.Path)
	}
	st.prefix = prefix

	// Destination.
	if err := checkHTTPURL(s.BaseURL); err != nil {
		return nil, errf("base_url: %w", err)
	}
	base, _ := url.Parse(s.BaseURL)
	st.base = base
	st.baseDec = strings.TrimSuffix(base.Path, "/")
	st.baseRaw = strings.TrimSuffix(base.EscapedPath(), "/")

	// Allow-lists.
	if len(s.AllowPaths) == 0 {
		return nil, errf("allow_paths is empty: nothing would be forwarded")
	}
	for _, ap := range s.AllowPaths {
		g, err := compileGlob(ap)
		if err != nil {
			return nil, errf("%w", err)
		}
		st.globs = append(st.globs, g)
	}
	methods := s.AllowMethods
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodPost}
	}
	st.methods = make(map[string]bool, len(methods))
	for _, m := range methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || !validHeaderName(m) {
			return nil, errf("allow_methods: invalid method %q", m)
		}
		if m == http.MethodConnect || m == http.MethodTrace {
			return nil, errf("allow_methods: %s is never forwarded", m)
		}
		st.methods[m] = true
	}
	if len(s.Hosts) > 0 {
		st.hosts = make(map[string]bool, len(s.Hosts))
		for _, h := range s.Hosts {
			st.hosts[strings.ToLower(h)] = true
		}
	}
	st.strip = newHeaderSet([]string{"Authorization", "Host", "Expect", "Content-Length"})
	for _, h := range s.StripHeaders {
		if !validHeaderName(h) || h == "" {
			return nil, errf("strip header %q: invalid name", h)
		}
		st.strip[http.CanonicalHeaderKey(h)] = true
	}
	for _, h := range s.ForwardHeaders {
		if !validHeaderName(h) || h == "" {
			return nil, errf("forward_headers: %q is not a header name", h)
		}
	}
	st.allow = newHeaderSet(DefaultForwardHeaders, s.ForwardHeaders)

	// Limits.
	if s.Timeout < 0 || s.ConnectTimeout < 0 || s.TLSHandshakeTimeout < 0 || s.MaxBody < 0 ||
		s.Concurrency < 0 || s.ReplayLimit < 0 || s.Breaker.Failures < 0 || s.Breaker.OpenFor < 0 ||
		s.Breaker.HalfOpenRequests < 0 {
		return nil, errf("negative duration, size or count")
	}
	if s.Breaker.HalfOpenRequests > math.MaxUint32 {
		return nil, errf("breaker: half_open_requests too large")
	}
	s.Timeout = orDefault(s.Timeout, defaultTimeout)
	s.ConnectTimeout = orDefault(s.ConnectTimeout, defaultConnectTimeout)
	s.TLSHandshakeTimeout = orDefault(s.TLSHandshakeTimeout, defaultTLSHandshakeTimeout)
	s.MaxBody = orDefault(s.MaxBody, defaultMaxBody)
	s.Concurrency = orDefault(s.Concurrency, defaultConcurrency)
	s.ReplayLimit = orDefault(s.ReplayLimit, defaultReplayLimit)
	s.Breaker.Failures = orDefault(s.Breaker.Failures, defaultFailures)
	s.Breaker.OpenFor = orDefault(s.Breaker.OpenFor, defaultOpenFor)
	s.Breaker.HalfOpenRequests = orDefault(s.Breaker.HalfOpenRequests, defaultHalfOpenRequests)

	// Egress proxy.
	proxy, err := inject.Proxy(s.Proxy)
	if err != nil {
		return nil, errf("%w", err)
	}

	// Connection pool: kept across reloads when nothing it depends on moved.
	if old != nil && old.spec.TLS == s.TLS && old.spec.ConnectTimeout == s.ConnectTimeout && old.spec.Proxy == s.Proxy &&
		old.spec.TLSHandshakeTimeout == s.TLSHandshakeTimeout && old.spec.Concurrency == s.Concurrency &&
		old.base.Scheme == base.Scheme && old.base.Host == base.Host {
		st.transport = old.transport
	} else {
		st.transport = newTransport(s.TLS, s.ConnectTimeout, s.TLSHandshakeTimeout, s.Concurrency)
		st.transport.Proxy = proxy
	}
	if old != nil && old.spec.Concurrency == s.Concurrency {
		st.sem = old.sem
	} else {
		st.sem = make(chan struct{}, s.Concurrency)
	}

	// Credentials. Token calls (oauth2, huawei_iam) use their own small
	// pool, through the same egress proxy.
	var tokTLS *tls.Config
	needTokens := false
	for _, inj := range s.Inject {
		switch v := inj.(type) {
		case OAuth2Inject:
			needTokens, tokTLS = true, v.TLS
		case *OAuth2Inject:
			if v != nil {
				needTokens, tokTLS = true, v.TLS
			}
		case inject.HuaweiIAM, *inject.HuaweiIAM:
			needTokens = true
		}
	}
	var client *http.Client
	if needTokens {
		tcfg := tokTLS
		if tcfg == nil {
			tcfg = s.TLS
		}
		if old != nil && old.tokenTr != nil && old.spec.TLS == s.TLS && old.tokTLS == tokTLS &&
			old.spec.ConnectTimeout == s.ConnectTimeout && old.spec.Proxy == s.Proxy &&
			old.spec.TLSHandshakeTimeout == s.TLSHandshakeTimeout {
			st.tokenTr = old.tokenTr
		} else {
			st.tokenTr = newTransport(tcfg, s.ConnectTimeout, s.TLSHandshakeTimeout, 2)
			st.tokenTr.Proxy = proxy
		}
		st.tokTLS = tokTLS
		client = &http.Client{
			Transport: st.tokenTr,
			Timeout:   s.Timeout,
			// Never fetch another host: a redirect is an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	var keep *inject.Set
	if old != nil {
		keep = old.inject
	}
	set, err := inject.Compile(fmt.Sprintf("upstream %q", s.Name), s.Inject, keep, client, s.Timeout)
	if err != nil {
		return nil, err
	}
	st.inject = set
	for _, x := range set.Expiries() {
		st.expiries = append(st.expiries, auth.Expiry{Name: x.Name, At: x.At})
	}
	if s.Rate < 0 {
		return nil, errf("negative rate")
	}
	if s.Rate > 0 {
		if old != nil && old.spec.Rate == s.Rate && old.limiter != nil {
			st.limiter = old.limiter
		} else {
			st.limiter = rate.NewLimiter(rate.Limit(s.Rate), max(1, int(math.Ceil(s.Rate))))
		}
	}

	// Breaker.
	if old != nil && old.spec.Breaker == s.Breaker {
		st.br = old.br
	} else {
		st.br = p.newBreaker(s.Breaker)
	}
	st.spec = s
	return st, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("scheme must be https or http, got %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("no host")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errors.New("no user info, query or fragment allowed")
	}
	return nil
}

// newTransport is the per-upstream connection pool: keep-alive, HTTP/2 when
// the BSP offers it, no proxy (the caller sets the upstream's egress proxy
// in Proxy), no transparent decompression (the answer must reach the caller
// byte for byte).
func newTransport(cfg *tls.Config, connect, handshake time.Duration, conc int) *http.Transport {
	var tc *tls.Config
	if cfg != nil {
		tc = cfg.Clone()
	} else {
		tc = &tls.Config{}
	}
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   handshake,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		MaxIdleConns:          conc,
		MaxIdleConnsPerHost:   conc,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// breaker wraps the upstream's gobreaker with what gobreaker does not
// expose: when it opened, for Retry-After.
type breaker struct {
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor time.Duration

	mu       sync.Mutex
	openedAt time.Time
}

func (p *Proxy) newBreaker(bs BreakerSpec) *breaker {
	b := &breaker{openFor: bs.OpenFor}
	failures := uint32(bs.Failures)
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        p.name,
		MaxRequests: uint32(bs.HalfOpenRequests),
		Timeout:     bs.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		// Called with gobreaker's lock held: touch only our own state.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.mu.Lock()
				b.openedAt = time.Now()
				b.mu.Unlock()
			}
			// A breaker replaced by a reload may still see its last
			// requests finish: only the current one is exported.
			if cur := p.cur.Load(); cur == nil || cur.br == b {
				p.m.breaker(p.name, stateValue(to))
			}
			lvl := slog.LevelWarn
			if to == gobreaker.StateClosed {
				lvl = slog.LevelInfo
			}
			p.log.Log(context.Background(), lvl, "upstream breaker state change",
				"from", from.String(), "to", to.String())
		},
		IsSuccessful: breakerSuccessful,
		IsExcluded:   breakerExcluded,
	})
	return b
}

// retryAfter returns the whole seconds until an open breaker lets a probe
// through, at least 1.
func (b *breaker) retryAfter() int {
	b.mu.Lock()
	left := time.Until(b.openedAt.Add(b.openFor))
	b.mu.Unlock()
	secs := int(math.Ceil(left.Seconds()))
	return max(secs, 1)
}

func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// hopByHop are the headers that concern one connection only (RFC 9110
// section 7.6.1), never forwarded in either direction.
var hopByHop = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopByHop(canonical string) bool {
	for _, h := range hopByHop {
		if h == canonical {
			return true
		}
	}
	return false
}

// copyHeader copies src without hop-by-hop headers, without the headers named
// in src's Connection header and without the extra names in drop.
func copyHeader(dst, src http.Header, drop ...string) {
	skip := map[string]bool{}
	for _, v := range src["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				skip[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	for _, d := range drop {
		skip[d] = true
	}
	for k, vv := range src {
		if skip[k] || isHopByHop(k) {
			continue
		}
		dst[k] = append([]string(nil), vv...)
	}
}

// ServeHTTP forwards one request to the BSP, or refuses it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := p.cur.Load()
	ex := &exchange{p: p, st: st, w: w, r: r}
	ex.serve()
}

// exchange is one request's journey through the proxy.
type exchange struct {
	p  *Proxy
	st *state
	w  http.ResponseWriter
	r  *http.Request
}

// refuse answers a refused request and counts it.
func (ex *exchange) refuse(status int, code, msg string, attrs ...any) {
	ex.p.m.count(ex.p.name, status)
	ex.reject(status, code, msg, attrs...)
}

// reject answers a refused request without counting it (forward counts).
func (ex *exchange) reject(status int, code, msg string, attrs ...any) {
	p, r := ex.p, ex.r
	writeError(ex.w, status, ErrorBody{Error: msg, Code: code, Upstream: p.name})
	p.log.Warn("outbound request refused", append([]any{"status", status, "code", code,
		"method", r.Method, "path", r.URL.EscapedPath(), "remote", r.RemoteAddr}, attrs...)...)
}

func (ex *exchange) serve() {
	st, r := ex.st, ex.r

	// The shape of the request: never a forward proxy.
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		ex.refuse(http.StatusForbidden, CodeMethodNotAllowed, "method not allowed")
		return
	}
	if r.URL.IsAbs() || r.URL.Host != "" || r.URL.Opaque != "" ||
		(r.RequestURI != "" && !strings.HasPrefix(r.RequestURI, "/")) {
		ex.refuse(http.StatusForbidden, CodeBadRequestTarget, "absolute URL or authority in the request line")
		return
	}
	if st.hosts != nil && !hostAllowed(st.hosts, r.Host) {
		ex.refuse(http.StatusForbidden, CodeHostNotAllowed, "host not allowed")
		return
	}
	cp, err := normalise(r.URL.EscapedPath(), st.prefix)
	if err != nil {
		ex.refuse(http.StatusForbidden, CodePathRefused, "path refused", "reason", err.Error())
		return
	}
	if !st.methods[r.Method] {
		ex.refuse(http.StatusForbidden, CodeMethodNotAllowed, "method not allowed")
		return
	}
	allowed := false
	for _, g := range st.globs {
		if g.match(cp.decoded) {
			allowed = true
			break
		}
	}
	if !allowed {
		ex.refuse(http.StatusForbidden, CodePathNotAllowed, "path not allowed")
		return
	}

	// The caller.
	if len(st.spec.CallerAuth) > 0 {
		ar := &auth.Request{Method: r.Method, URL: r.URL, Header: r.Header, RemoteAddr: r.RemoteAddr}
		if err := auth.All(ar, st.spec.CallerAuth); err != nil {
			ex.refuse(http.StatusUnauthorized, CodeUnauthorized, "caller authentication failed",
				"reason", string(auth.ReasonOf(err)))
			return
		}
	}
	if r.ContentLength > st.spec.MaxBody {
		ex.refuse(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body too large")
		return
	}

	// Admission: rate, concurrency, then the breaker.
	if st.limiter != nil {
		if res := st.limiter.Reserve(); res.Delay() > 0 {
			wait := res.Delay()
			res.Cancel()
			secs := max(1, int(math.Ceil(wait.Seconds())))
			writeError(ex.w, http.StatusTooManyRequests, ErrorBody{Error: "above the upstream's rate",
				Code: CodeRateLimited, Upstream: ex.p.name, RetryAfter: secs})
			ex.p.m.count(ex.p.name, http.StatusTooManyRequests)
			ex.p.log.Warn("outbound request refused", "status", 429, "code", CodeRateLimited, "method", r.Method,
				"path", cp.decoded)
			return
		}
	}
	select {
	case st.sem <- struct{}{}:
		defer func() { <-st.sem }()
	default:
		writeError(ex.w, http.StatusServiceUnavailable, ErrorBody{Error: "too many requests in flight to the upstream",
			Code: CodeConcurrency, Upstream: ex.p.name, RetryAfter: 1})
		ex.p.m.count(ex.p.name, http.StatusServiceUnavailable)
		ex.p.log.Warn("outbound request refused", "status", 503, "code", CodeConcurrency, "method", r.Method,
			"path", cp.decoded)
		return
	}
	done, err := st.br.cb.Allow()
	if err != nil {
		state, retry := "open", st.br.retryAfter()
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			state, retry = "half-open", 1
		}
		writeError(ex.w, http.StatusServiceUnavailable, ErrorBody{
			Error: "upstream " + ex.p.name + " circuit breaker is " + state, Code: CodeBreakerOpen,
			Upstream: ex.p.name, Breaker: state, RetryAfter: retry})
		ex.p.m.count(ex.p.name, http.StatusServiceUnavailable)
		ex.p.log.Debug("outbound request refused by breaker", "breaker", state, "method", r.Method, "path", cp.decoded)
		return
	}
	ex.forward(cp, done)
}

// hostAllowed matches the caller's Host against Spec.Hosts: the whole
// "name:port", or the name alone for entries without a port.
func hostAllowed(hosts map[string]bool, host string) bool {
	host = strings.ToLower(host)
	if hosts[host] {
		return true
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		return hosts[name]
	}
	return false
}

// bodyReader wraps the caller's body and remembers its first read error, so
// that a failed exchange can be blamed on the caller when it was the caller.
type bodyReader struct {
	r   io.Reader
	c   io.Closer
	err atomic.Pointer[error]
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.c.Close() }

func (b *bodyReader) failure() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

// upstreamReader wraps the BSP's response body and remembers its read errors.
type upstreamReader struct {
	r   io.Reader
	err error
}

func (u *upstreamReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err != nil && err != io.EOF {
		u.err = err
	}
	return n, err
}

func (ex *exchange) forward(cp cleanPath, done func(error)) {
	p, st, r, w := ex.p, ex.st, ex.r, ex.w
	status := 0
	var outcome error = errCaller // until proven otherwise
	defer func() {
		done(outcome)
		p.m.count(p.name, status)
	}()

	ctx, cancel := context.WithTimeoutCause(r.Context(), st.spec.Timeout, ErrTimeout)
	defer cancel()

	target := &url.URL{
		Scheme:   st.base.Scheme,
		Host:     st.base.Host,
		Path:     st.baseDec + cp.decoded,
		RawPath:  st.baseRaw + cp.raw,
		RawQuery: r.URL.RawQuery,
	}
	out := &http.Request{
		Method:     r.Method,
		URL:        target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(r.Header)),
		Host:       target.Host,
	}
	copyAllowed(out.Header, r.Header, st.allow, st.strip)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // not Go's default
	}

	// The body: streamed; buffered up to ReplayLimit only when an OAuth2 401
	// may need a replay.
	var body *bodyReader
	var replay []byte
	replayable := false
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody {
		mb := http.MaxBytesReader(w, r.Body, st.spec.MaxBody)
		body = &bodyReader{r: mb, c: mb}
		out.ContentLength = r.ContentLength
		if st.inject.NeedsBody() {
			// inject "hmac" signs the exact body: read it whole (it is
			// bounded by MaxBody).
			buf, err := io.ReadAll(body)
			if err != nil {
				status = ex.callerBodyError(err)
				return
			}
			replay, replayable = buf, true
			out.ContentLength = int64(len(buf))
			out.Body = io.NopCloser(bytes.NewReader(buf))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(replay)), nil }
		} else if st.inject.Refreshes() && r.ContentLength <= st.spec.ReplayLimit {
			buf, err := io.ReadAll(io.LimitReader(body, st.spec.ReplayLimit+1))
			if err != nil {
				status = ex.callerBodyError(err)
				return
			}
			if int64(len(buf)) <= st.spec.ReplayLimit {
				replay, replayable = buf, true
				out.ContentLength = int64(len(buf))
				out.Body = io.NopCloser(bytes.NewReader(buf))
				out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(replay)), nil }
			} else {
				out.Body = struct {
					io.Reader
					io.Closer
				}{io.MultiReader(bytes.NewReader(buf), body), body}
			}
		} else {
			out.Body = body
		}
	} else {
		replayable = true
	}
	out = out.WithContext(ctx)

	start := time.Now()
	res, att, err := ex.roundTrip(ctx, out, replay)
	// A refused fetched token is dropped so that a new one is fetched.
	if err == nil && res.StatusCode == http.StatusUnauthorized && att.Unauthorized() && replayable {
		// And replay once with the new one. A 401 to the replay is the
		// caller's answer; its token is kept, so a BSP refusing every token
		// costs at most one token fetch per call.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		p.log.Info("upstream refused the fetched token; refreshing and retrying once")
		retry := out.Clone(ctx)
		if replay != nil {
			retry.Body = io.NopCloser(bytes.NewReader(replay))
		} else {
			retry.Body = nil
		}
		res, _, err = ex.roundTrip(ctx, retry, replay)
	}
	p.m.observe(p.name, time.Since(start).Seconds())
	if err == nil && ctx.Err() != nil {
		// net/http returns an answer that raced with the cancellation (the
		// BSP answering because the connection was being closed): the
		// timeout or the caller's departure came first, so it wins.
		res.Body.Close()
		res, err = nil, context.Cause(ctx)
	}
	if err != nil {
		status, outcome = ex.exchangeError(ctx, err, body)
		return
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusSwitchingProtocols {
		status, outcome = http.StatusBadGateway, errors.New("upstream switched protocols")
		writeError(w, status, ErrorBody{Error: "upstream switched protocols", Code: CodeUpstreamError, Upstream: p.name})
		return
	}

	// The answer, streamed back unchanged.
	h := w.Header()
	copyHeader(h, res.Header)
	for k := range res.Trailer {
		h.Add("Trailer", k)
	}
	status = res.StatusCode
	w.WriteHeader(res.StatusCode)
	ur := &upstreamReader{r: res.Body}
	werr := copyBody(w, ur, res.ContentLength == -1)
	for k, vv := range res.Trailer {
		h[k] = append([]string(nil), vv...)
	}
	switch {
	case ur.err != nil:
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			outcome = ErrTimeout
		} else if r.Context().Err() != nil {
			outcome, status = errCaller, StatusCallerGone
		} else {
			outcome = fmt.Errorf("reading upstream body: %w", ur.err)
		}
	case werr != nil:
		outcome, status = errCaller, StatusCallerGone
	case res.StatusCode >= 500:
		outcome = &statusError{code: res.StatusCode}
	default:
		outcome = nil
	}
	if ur.err != nil || werr != nil {
		p.log.Warn("outbound response cut", "status", res.StatusCode, "method", r.Method, "path", cp.decoded,
			"error", safeErr(firstErr(ur.err, werr)))
		// Tell the server the answer is incomplete (no clean end of body).
		defer panic(http.ErrAbortHandler)
		return
	}
	p.log.Debug("outbound request", "status", res.StatusCode, "method", r.Method, "path", cp.decoded,
		"duration", time.Since(start))
}

// roundTrip sends one attempt with the upstream's credentials (a current
// token for oauth2 and huawei_iam; body is the exact body for hmac).
func (ex *exchange) roundTrip(ctx context.Context, out *http.Request, body []byte) (*http.Response, *inject.Attempt, error) {
	att, err := ex.st.inject.Apply(ctx, out.Header, body)
	if err != nil {
		return nil, att, err
	}
	res, err := ex.st.transport.RoundTrip(out)
	return res, att, err
}

// callerBodyError answers a failure to read the caller's body before sending.
func (ex *exchange) callerBodyError(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		ex.reject(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body too large")
		return http.StatusRequestEntityTooLarge
	}
	if ex.r.Context().Err() != nil {
		return ex.callerGone()
	}
	ex.reject(http.StatusBadRequest, CodeBadRequestBody, "request body could not be read")
	return http.StatusBadRequest
}

// StatusCallerGone is the status recorded (and written, should anyone still
// read it) when the caller went away before the answer.
const StatusCallerGone = 499

// callerGone answers a caller whose request context ended. It still writes
// an answer: a caller that only half-closed its connection must not read an
// empty 200.
func (ex *exchange) callerGone() int {
	writeError(ex.w, StatusCallerGone, ErrorBody{Error: "caller went away", Code: CodeCallerGone, Upstream: ex.p.name})
	ex.p.log.Debug("outbound caller went away", "method", ex.r.Method)
	return StatusCallerGone
}

// exchangeError maps a failed exchange to the caller's status and the
// breaker's outcome. This is the one place where errors become statuses.
func (ex *exchange) exchangeError(ctx context.Context, err error, body *bodyReader) (int, error) {
	p, r, w := ex.p, ex.r, ex.w
	var berr error
	if body != nil {
		berr = body.failure()
	}
	var mbe *http.MaxBytesError
	if errors.As(berr, &mbe) {
		return ex.callerBodyError(berr), errCaller
	}
	cause := context.Cause(ctx)
	var status int
	var code, msg string
	var outcome error
	switch {
	case errors.Is(cause, ErrTimeout):
		status, code, msg, outcome = http.StatusGatewayTimeout, CodeTimeout, "upstream timed out", ErrTimeout
	case r.Context().Err() != nil:
		return ex.callerGone(), errCaller
	case berr != nil:
		return ex.callerBodyError(berr), errCaller
	case errors.Is(err, inject.ErrTokenEndpoint):
		status, code, msg, outcome = http.StatusBadGateway, CodeTokenEndpoint, "could not obtain a token", err
	case errors.Is(err, inject.ErrExpired):
		// Not the BSP's fault: not counted by the breaker.
		status, code, msg, outcome = http.StatusBadGateway, CodeCredentialExpired, "the upstream credential expired", errCaller
	case isDialOrTLS(err):
		status, code, msg, outcome = http.StatusBadGateway, CodeUnreachable, "upstream unreachable", err
	default:
		status, code, msg, outcome = http.StatusBadGateway, CodeUpstreamError, "upstream exchange failed", err
	}
	writeError(w, status, ErrorBody{Error: msg, Code: code, Upstream: p.name})
	p.log.Warn("outbound request failed", "status", status, "code", code, "method", r.Method,
		"error", safeErr(err))
	return status, outcome
}

// isDialOrTLS reports failures to reach the BSP at all: DNS, connect
// (refused, unreachable, connect timeout) and TLS handshake.
func isDialOrTLS(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	if errors.As(err, &certErr) || errors.As(err, &recErr) || errors.As(err, &alert) {
		return true
	}
	return strings.Contains(err.Error(), "TLS handshake")
}

// safeErr returns an error text without URLs (whose query may carry a
// caller's access token).
func safeErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// copyBody streams src to w, flushing after each chunk when the length is
// unknown (server-sent progress, chunked answers). It returns the write error;
// read errors are recorded by the upstreamReader.
func copyBody(w http.ResponseWriter, src io.Reader, flush bool) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
			}
		}
		if rerr != nil {
			return nil
		}
	}
}
