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
	"crypto/tls"
	"errors"
	"fmt"
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
