package relay

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/profile"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// listenerHandler dispatches a listener's requests: exact channel paths
// first, then upstream prefixes; anything else is 404 whatever the method.
func (s *Server) listenerHandler(listener string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := s.state.Load()
		if ch := st.channels[listener][r.URL.Path]; ch != nil {
			s.serveCallback(w, r, st, ch)
			return
		}
		if ch, refused := matchPrefix(st.prefixes[listener], r); ch != nil {
			if refused {
				s.metrics.requests.WithLabelValues(ch.Name, "404").Inc()
				writeJSONError(w, http.StatusNotFound, "not found")
				s.log.Warn("callback refused", "channel", ch.Name, "client", r.RemoteAddr, "status", 404,
					"reason", "dot segment or bad escape in the path under the channel prefix")
				return
			}
			s.serveCallback(w, r, st, ch)
			return
		}
		if rt := st.upstreams[listener]; rt != nil {
			rt.ServeHTTP(w, r)
			return
		}
		s.notFound(w, r)
	})
}

// claimsCallback is the fast path's Claim for a listener: a request for one
// of its channels, exact path or prefix.
func (s *Server) claimsCallback(listener string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		st := s.state.Load()
		if st.channels[listener][r.URL.Path] != nil {
			return true
		}
		ch, _ := matchPrefix(st.prefixes[listener], r)
		return ch != nil
	}
}

func (s *Server) notFound(w http.ResponseWriter, _ *http.Request) {
	s.metrics.requests.WithLabelValues("", "404").Inc()
	writeJSONError(w, http.StatusNotFound, "not found")
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, `{"error":`+strconv.Quote(msg)+"}\n")
}

// serveCallback is the inbound contract of SPEC §4: read the body once,
// authenticate it, classify it, make it durable, answer.
func (s *Server) serveCallback(w http.ResponseWriter, r *http.Request, st *state, ch *ChannelConfig) {
	start := time.Now()
	log := callbackLog{s.log, ch.Name, r.RemoteAddr}
	status := 0
	defer func() {
		s.metrics.request(ch.Name, status).Inc()
	}()

	if r.Method == http.MethodGet && !slices.Contains(ch.Methods, http.MethodGet) && (ch.Provider == "meta" || ch.VerifyToken != "") {
		status = s.verifyHandshake(w, r, ch)
		log.Info("verification handshake", "status", status)
		return
	}
	if !slices.Contains(ch.Methods, r.Method) {
		status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", strings.Join(ch.Methods, ", "))
		writeJSONError(w, status, "method not allowed")
		log.Info("callback refused", "status", status, "reason", "method "+r.Method+" not allowed")
		return
	}
	if s.draining.Load() {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, status, "shutting down")
		return
	}

	maxBody := st.listeners[ch.Listener].MaxBody
	body, err := readBody(w, r, maxBody)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
			writeJSONError(w, status, "body too large")
			log.Warn("callback refused", "status", status, "reason", "body over max_body", "max_body", maxBody)
			return
		}
		status = http.StatusBadRequest
		writeJSONError(w, status, "cannot read body")
		log.Warn("callback refused", "status", status, "reason", "reading body failed", "err", err)
		return
	}

	if reason, detail := s.authenticate(r, ch, body); reason != "" {
		status = ch.RejectStatus
		s.metrics.authFailures.WithLabelValues(ch.Name, string(reason)).Inc()
		writeJSONError(w, status, "unauthorized")
		qid := s.quarantine(r, ch, body, start, reason)
		log.Warn("callback rejected", "status", status, "reason", string(reason), "detail", detail, "quarantine_id", qid)
		return
	}

	var query url.Values // nil without a query string: nothing to parse
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	ev, res := newEvent(st, ch, r.Method, rawTarget(r), r.Header, query, body, start)
	backends := ev.Backends
	out, err := s.q.Enqueue(r.Context(), ev, ch.DedupeWindow)
	if err != nil {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "30")
		msg := "temporarily unavailable"
		if errors.Is(err, queue.ErrFull) {
			msg = "queue full"
		}
		writeJSONError(w, status, msg)
		log.Error("callback not stored", "status", status, "provider_event_id", res.EventID, "err", err)
		return
	}
	status = ch.Response.Status
	if status == 0 {
		status = http.StatusOK
	}
	if ch.Response.ContentType != "" {
		w.Header().Set("Content-Type", ch.Response.ContentType)
	}
	w.WriteHeader(status)
	w.Write(ch.Response.Body)
	if !log.enabled(slog.LevelInfo) {
		return // the line's arguments cost allocations even when it is dropped
	}
	log.Info("callback accepted", "status", status, "event_id", out.ID, "provider_event_id", res.EventID,
		"kind", res.Kind, "duplicate", out.Duplicate, "backends", backends, "bytes", len(body),
		"duration_ms", float64(time.Since(start).Microseconds())/1000)
}

// newEvent turns an authenticated callback into the event the queue
// stores: classified by the channel's profile, routed, its headers cut down
// to what a backend receives. Live callbacks and released quarantined ones
// both go through it.
func newEvent(st *state, ch *ChannelConfig, method, target string, header http.Header, query url.Values, body []byte, receivedAt time.Time) (*queue.Event, profile.Result) {
	res := ch.Profile.Classify(&profile.Request{
		Method:      method,
		Header:      header,
		Query:       query,
		ContentType: header.Get("Content-Type"),
		Body:        body,
	}, ch.ProfileOptions)
	orderKey := ""
	if ch.Ordered {
		orderKey = res.OrderKey
	}
	backends := route(ch, res.Fields)
	return &queue.Event{
		Channel:         ch.Name,
		Provider:        ch.Provider,
		ProviderEventID: res.EventID,
		OrderKey:        orderKey,
		ReceivedAt:      receivedAt.UTC(),
		Method:          method,
		Path:            target,
		Header:          forwardHeaders(header, passAuthorization(st, backends), ch.AuthHeaders),
		Body:            body,
		Backends:        backends,
	}, res
}

// callbackLog adds the channel and client to a callback's log line without
// building a derived logger for every request.
type callbackLog struct {
	l               *slog.Logger
	channel, client string
}

func (c callbackLog) Debug(msg string, args ...any) { c.log(slog.LevelDebug, msg, args) }
func (c callbackLog) Info(msg string, args ...any)  { c.log(slog.LevelInfo, msg, args) }
func (c callbackLog) Warn(msg string, args ...any)  { c.log(slog.LevelWarn, msg, args) }
func (c callbackLog) Error(msg string, args ...any) { c.log(slog.LevelError, msg, args) }

func (c callbackLog) enabled(level slog.Level) bool {
	return c.l.Enabled(context.Background(), level)
}

func (c callbackLog) log(level slog.Level, msg string, args []any) {
	if !c.enabled(level) {
		return
	}
	c.l.Log(context.Background(), level, msg, append([]any{"channel", c.channel, "client", c.client}, args...)...)
}

func (c *Config) listener(name string) *ListenerConfig {
	for _, l := range c.Listeners {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// readBody reads the whole body once, bounded by max (a body of exactly
// max bytes is accepted; chunked bodies are bounded too). With a declared
// length it reads into a buffer of exactly that size.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	body := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var buf bytes.Buffer
	buf.Grow(4096)
	_, err := buf.ReadFrom(body)
	return buf.Bytes(), err
}

// authenticate runs every verifier of the channel (and the client
// certificate name pin); it returns the failure reason and a loggable
// detail, or "" when the request passes.
func (s *Server) authenticate(r *http.Request, ch *ChannelConfig, body []byte) (auth.Reason, string) {
	return verifyCallback(ch, callbackAuthRequest(r, ch, body), peerCert(r))
}

// callbackAuthRequest is what the verifiers see of a live callback.
func callbackAuthRequest(r *http.Request, ch *ChannelConfig, body []byte) *auth.Request {
	return &auth.Request{
		Method:     r.Method,
		URL:        r.URL,
		Host:       r.Host,
		PublicURL:  ch.PublicURL,
		Header:     r.Header,
		Body:       body,
		RemoteAddr: r.RemoteAddr,
	}
}

// peerCert is the client certificate's leaf under mTLS, or nil.
func peerCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}

// verifyCallback checks a callback (live, or kept and released from the
// quarantine) against the channel's client_names and every auth block.
func verifyCallback(ch *ChannelConfig, ar *auth.Request, peer *x509.Certificate) (auth.Reason, string) {
	if len(ch.ClientNames) > 0 {
		if peer == nil || !relaytls.MatchClientName(peer, ch.ClientNames) {
			return "client_name", "client certificate does not match client_names"
		}
	}
	for _, a := range ch.Auth {
		if a.Verifier == nil {
			return auth.ReasonInternal, "auth block " + a.Type + " has no verifier"
		}
		if err := a.Verifier.Verify(ar); err != nil {
			return auth.ReasonOf(err), a.Type + ": " + err.Error()
		}
	}
	return "", ""
}

// verifyHandshake answers Meta's GET subscription check.
func (s *Server) verifyHandshake(w http.ResponseWriter, r *http.Request, ch *ChannelConfig) int {
	q := r.URL.Query()
	mode, token, challenge := q.Get("hub.mode"), q.Get("hub.verify_token"), q.Get("hub.challenge")
	if mode == "" || !q.Has("hub.verify_token") || !q.Has("hub.challenge") {
		writeJSONError(w, http.StatusBadRequest, "missing hub.mode, hub.verify_token or hub.challenge")
		return http.StatusBadRequest
	}
	if mode != "subscribe" || ch.VerifyToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(ch.VerifyToken)) != 1 {
		s.metrics.authFailures.WithLabelValues(ch.Name, "verify_token").Inc()
		writeJSONError(w, http.StatusForbidden, "forbidden")
		return http.StatusForbidden
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, challenge)
	return http.StatusOK
}

// route returns the backends of the first route whose fields all match,
// else the channel's forward_to.
func route(ch *ChannelConfig, fields map[string]string) []string {
	for _, rt := range ch.Routes {
		match := true
		for k, v := range rt.When {
			if fields[k] != v {
				match = false
				break
			}
		}
		if match {
			return rt.ForwardTo
		}
	}
	return ch.ForwardTo
}

// hopHeaders are removed on the way to a backend, with Host, Authorization
// and Cookie (which are credentials of the BSP's call, not of the event).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Authorization", "Cookie", "Content-Length",
}

// passAuthorization reports whether one of the backends forwards the BSP's
// Authorization header, which is then stored with the event.
func passAuthorization(st *state, backends []string) bool {
	for _, b := range backends {
		if bc := st.backends[b]; bc != nil && bc.PassAuthorization {
			return true
		}
	}
	return false
}

// forwardHeaders is what an event keeps of its callback's headers: all but
// hop-by-hop headers, Host, Cookie, Content-Length and the headers the
// channel's auth blocks read (authHeaders, canonical names: the
// credentials were checked at the edge). Authorization is dropped too,
// unless keepAuth (a backend has pass_authorization, an explicit choice;
// delivery drops it again for the others).
func forwardHeaders(h http.Header, keepAuth bool, authHeaders []string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	for _, c := range h.Values("Connection") {
		for _, f := range strings.Split(c, ",") {
			delete(out, http.CanonicalHeaderKey(strings.TrimSpace(f)))
		}
	}
	var auth []string
	if keepAuth {
		auth = out["Authorization"]
	}
	for _, k := range hopHeaders {
		delete(out, k)
	}
	for _, k := range authHeaders {
		if k != "Authorization" {
			delete(out, k)
		}
	}
	if auth != nil {
		out["Authorization"] = auth
	}
	return out
}
