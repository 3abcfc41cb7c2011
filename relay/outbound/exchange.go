package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/inject"
	"github.com/sony/gobreaker/v2"
)

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
