package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgerelay/edgerelay/relay/h1server"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// listener is one listener block at run time: its bound socket (behind
// the connection limits), the net/http server and, on a plain listener, the
// callback fast path in front of it, and the optional HTTP-01 challenge
// server of its certificates.
type listener struct {
	cfg  *ListenerConfig
	ln   net.Listener
	srv  *http.Server
	fast *h1server.Server // plain listeners: serves callbacks, hands the rest to srv
	acme *http.Server     // optional HTTP-01 challenge listener
}

// bindListener binds lc's address and builds its servers (New calls it, so
// that port and certificate problems surface before Start).
func (s *Server) bindListener(lc *ListenerConfig) error {
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return fmt.Errorf("listener %q on %s: %w", lc.Name, lc.Address, err)
	}
	ln = newLimitListener(ln, lc.Name, lc.MaxConnections, lc.MaxConnectionsPerIP, s.log, s.connMet)
	l := &listener{cfg: lc, ln: ln}
	var h http.Handler = h2Guard(lc.Name, s.log, closeAfterChunked(s.listenerHandler(lc.Name)))
	l.srv = &http.Server{
		Handler:           h,
		ConnContext:       guardConnContext,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: h2MaxConcurrentStreams},
		ReadHeaderTimeout: lc.ReadTimeout,
		ReadTimeout:       lc.ReadTimeout,
		WriteTimeout:      lc.WriteTimeout,
		IdleTimeout:       lc.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if lc.TLS == nil {
		// A plain listener's callbacks take the fast path; every other
		// request (and its connection) goes on to l.srv. TLS listeners stay
		// with net/http alone (HTTP/2, client certificates).
		l.fast = &h1server.Server{
			Handler:      h,
			Claim:        s.claimsCallback(lc.Name),
			ReadTimeout:  lc.ReadTimeout,
			WriteTimeout: lc.WriteTimeout,
			IdleTimeout:  lc.IdleTimeout,
			ErrorLog:     l.srv.ErrorLog,
			OnHandoff:    s.connMet.handoffs.WithLabelValues(lc.Name).Inc,
		}
	} else {
		sc := lc.TLS.Server
		sc.Address = ln.Addr().String() // the bound port, when the file says 0
		sc.Logger = s.log               // the tls package adds the listener name
		sc.OnEvent = func(kind, name string, err error) { s.metrics.certEvent(lc.Name, kind, name, err) }
		ts, err := relaytls.NewServer(sc)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listener %q tls: %w", lc.Name, err)
		}
		s.tlsServers[lc.Name] = ts
		l.srv.TLSConfig = ts.TLSConfig()
		if lc.TLS.HTTPChallengeAddress != "" {
			cln, err := net.Listen("tcp", lc.TLS.HTTPChallengeAddress)
			if err != nil {
				ln.Close()
				return fmt.Errorf("listener %q http_challenge_address %s: %w", lc.Name, lc.TLS.HTTPChallengeAddress, err)
			}
			l.acme = &http.Server{Handler: ts.HTTPChallengeHandler(redirectHTTPS()), ReadHeaderTimeout: 10 * time.Second}
			go l.acme.Serve(cln)
		}
	}
	s.listeners[lc.Name] = l
	return nil
}

func redirectHTTPS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
}

// serve serves the listener until it is shut down: through the fast path
// (which hands what it does not serve to srv), or srv alone with TLS.
func (l *listener) serve() error {
	switch {
	case l.fast != nil:
		go l.srv.Serve(l.fast.Handoff())
		return l.fast.Serve(l.ln)
	case l.srv.TLSConfig != nil:
		return l.srv.ServeTLS(l.ln, "", "")
	default:
		return l.srv.Serve(l.ln)
	}
}

// shutdown stops accepting and lets the requests in progress finish, within
// ctx; past it the remaining connections are closed.
func (l *listener) shutdown(ctx context.Context) {
	if l.fast != nil {
		if err := l.fast.Shutdown(ctx); err != nil {
			l.fast.Close()
		}
	}
	if err := l.srv.Shutdown(ctx); err != nil {
		l.srv.Close()
	}
	if l.acme != nil {
		l.acme.Close()
	}
}

// ListenerAddr returns the bound address of a listener ("" if unknown):
// useful when the configuration asked for port 0.
func (s *Server) ListenerAddr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.listeners[name]; l != nil {
		return l.ln.Addr().String()
	}
	return ""
}
