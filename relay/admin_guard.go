package relay

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

// The admin guard: every admin request passes here before its handler.
//
//  1. Host: the Host header must name the admin address, a loopback name
//     or one of admin.hosts, else 421 (a DNS-rebinding page in an
//     operator's browser cannot talk to the API). /healthz and /readyz,
//     which reveal nothing, answer any Host so probes by IP work.
//  2. Who: with tokens configured, `Authorization: Bearer <value>` (401
//     with WWW-Authenticate otherwise); without tokens, anyone who reaches
//     the listener (loopback, or a verified client certificate) acts as
//     an operator. The console (/ui/) uses its own session cookie.
//  3. Writes (anything but GET and HEAD) need Content-Type
//     application/json, with or without tokens: a cross-site HTML form
//     cannot send that without a CORS preflight, which is never answered.
//  4. Role: a viewer calling an operator endpoint gets 403.

// access is what an admin endpoint requires.
type access int

const (
	accessPublic   access = iota // no token (health)
	accessMetrics                // no token with metrics_public, else viewer
	accessViewer                 // any valid token
	accessOperator               // an operator token
)

// Caller is who makes an admin request, as the audit log names them.
type Caller struct {
	// Token is the name of the token (or of the client certificate's
	// subject, or "anonymous" when no tokens are configured).
	Token string
	// Role is RoleViewer or RoleOperator.
	Role string
	// Client is the client address.
	Client string
}

// Operator reports whether the caller may replay, purge, release and read
// event contents.
func (c Caller) Operator() bool { return c.Role == RoleOperator }

type callerKey struct{}

func callerOf(r *http.Request) Caller {
	c, _ := r.Context().Value(callerKey{}).(Caller)
	return c
}

// handleAdmin registers an admin endpoint that requires acc; subsystems
// (quarantine, ...) add theirs with it so they share the guard.
func (s *Server) handleAdmin(mux *http.ServeMux, pattern string, acc access, h http.HandlerFunc) {
	mux.Handle(pattern, s.guard(acc, h))
}

// adminHandler is the admin listener's handler.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	s.adminRoutes(mux)
	if s.console != nil {
		mux.Handle("/ui/", s.hostCheck(s.console))
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	return mux
}

// hostCheck answers 421 to a request whose Host is not the admin's.
func (s *Server) hostCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allowedHost(r.Host) {
			s.log.Warn("admin request refused: unknown Host", "host", r.Host, "client", r.RemoteAddr, "path", r.URL.Path)
			writeJSONError(w, http.StatusMisdirectedRequest, "unknown Host: this admin listener answers to its own address, loopback names and admin.hosts")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if isLoopbackHost(host) {
		return true
	}
	cfg := s.state.Load().cfg.Admin
	for _, addr := range []string{cfg.Address, s.adminLn.Addr().String()} {
		if h, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) && strings.EqualFold(h, host) {
				return true
			}
		}
	}
	for _, h := range cfg.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

// identify finds the caller of an API request: ok false means it was
// answered (401).
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (Caller, bool) {
	cfg := s.state.Load().cfg.Admin
	c := Caller{Client: r.RemoteAddr}
	if len(cfg.Tokens) == 0 {
		c.Token, c.Role = "anonymous", RoleOperator
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			c.Token = "cert:" + r.TLS.PeerCertificates[0].Subject.CommonName
		}
		return c, true
	}
	authz := r.Header.Get("Authorization")
	scheme, value, _ := strings.Cut(authz, " ")
	if authz == "" || !strings.EqualFold(scheme, "Bearer") {
		s.log.Warn("admin request refused: no bearer token", "client", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgerelay admin"`)
		writeJSONError(w, http.StatusUnauthorized, "this admin API needs Authorization: Bearer <token>")
		return c, false
	}
	t, ok := cfg.Lookup(strings.TrimSpace(value))
	if !ok {
		s.log.Warn("admin request refused: unknown token", "client", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgerelay admin", error="invalid_token"`)
		writeJSONError(w, http.StatusUnauthorized, "unknown token")
		return c, false
	}
	c.Token, c.Role = t.Name, t.Role
	return c, true
}

// AuthenticateToken checks a token value as the API would (for the
// console's login): with no tokens configured every value is refused.
func (s *Server) AuthenticateToken(value string) (Caller, bool) {
	t, ok := s.state.Load().cfg.Admin.Lookup(value)
	if !ok {
		return Caller{}, false
	}
	return Caller{Token: t.Name, Role: t.Role}, true
}

// isJSON reports whether a request's Content-Type is application/json.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func (s *Server) guard(acc access, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if acc == accessPublic {
			h(w, r)
			return
		}
		if !s.allowedHost(r.Host) {
			s.log.Warn("admin request refused: unknown Host", "host", r.Host, "client", r.RemoteAddr, "path", r.URL.Path)
			writeJSONError(w, http.StatusMisdirectedRequest, "unknown Host: this admin listener answers to its own address, loopback names and admin.hosts")
			return
		}
		if acc == accessMetrics && s.state.Load().cfg.Admin.MetricsPublic {
			h(w, r)
			return
		}
		c, ok := s.identify(w, r)
		if !ok {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !isJSON(r) {
			s.log.Warn("admin request refused: a write without Content-Type application/json", "client", r.RemoteAddr, "token", c.Token, "method", r.Method, "path", r.URL.Path, "content_type", r.Header.Get("Content-Type"))
			writeJSONError(w, http.StatusUnsupportedMediaType, "admin writes need Content-Type: application/json")
			return
		}
		if acc == accessOperator && !c.Operator() {
			s.log.Warn("admin request refused: operator action with a viewer token", "client", r.RemoteAddr, "token", c.Token, "method", r.Method, "path", r.URL.Path)
			writeJSONError(w, http.StatusForbidden, "token "+c.Token+" is a viewer: this action needs an operator token")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// setupAdmin builds the admin http.Server (and its TLS) on the bound
// admin listener.
func (s *Server) setupAdmin(cfg *Config) error {
	s.admin = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if tc := cfg.Admin.TLS; tc != nil {
		sc := *tc
		sc.Address = s.adminLn.Addr().String()
		sc.Logger = s.log
		ts, err := relaytls.NewServer(sc)
		if err != nil {
			return fmt.Errorf("admin tls: %w", err)
		}
		s.adminTLS = ts
		s.admin.TLSConfig = ts.TLSConfig()
	}
	s.console = s.newConsole()
	s.admin.Handler = closeAfterChunked(s.adminHandler())
	return nil
}
