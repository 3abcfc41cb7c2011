package tls

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/caddyserver/certmagic"
)

// The ACME side of a Server: certmagic's configuration (setupACME), its
// events turned into the listener's (onMagicEvent), and the HTTP-01
// challenge handler.

func (s *Server) setupACME(k checked) error {
	a := s.cfg.ACME
	s.domains = slices.Clone(a.Domains)
	var roots *x509.CertPool
	if len(a.CARoots) > 0 {
		ts, err := LoadTrustStore(a.CARoots, "", false)
		if err != nil {
			return fmt.Errorf("listener %q: acme ca_roots: %w", s.cfg.Listener, err)
		}
		roots = ts.Pool
	}

	zl := newZapLogger(s.log)
	s.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			return s.magic, nil
		},
		RenewCheckInterval: a.RenewCheckInterval,
		Logger:             zl,
	})
	s.magic = certmagic.New(s.cache, certmagic.Config{
		RenewalWindowRatio: a.RenewalWindowRatio,
		DisableARI:         a.DisableARI,
		Storage:            &certmagic.FileStorage{Path: filepath.Join(s.cfg.StorageDir, "certs")},
		Logger:             zl,
		OnEvent:            s.onMagicEvent,
		DefaultServerName:  s.domains[0],
		OCSP:               certmagic.OCSPConfig{DisableStapling: a.DisableOCSPStapling},
	})
	s.issuer = certmagic.NewACMEIssuer(s.magic, certmagic.ACMEIssuer{
		CA:                      a.CA,
		Email:                   a.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    k.disableHTTP,
		DisableTLSALPNChallenge: k.disableALPN,
		ListenHost:              k.listenHost,
		AltTLSALPNPort:          k.alpnPort,
		AltHTTPPort:             k.httpPort,
		Logger:                  zl,
	})
	s.magic.Issuers = []certmagic.Issuer{s.issuer}
	return nil
}

// splitPort splits "host:port" and checks the port.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// onMagicEvent turns certmagic's events into OnEvent calls. It never
// returns an error: certmagic would abort the operation.
func (s *Server) onMagicEvent(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtained":
		if renewal {
			s.emit(EventRenewed, name, nil)
		} else {
			s.emit(EventObtained, name, nil)
		}
	case "cert_failed":
		err, _ := data["error"].(error)
		if err == nil {
			err = errors.New("certificate operation failed")
		}
		if renewal {
			s.emit(EventRenewalFailed, name, err)
		} else {
			s.emit(EventObtainFailed, name, err)
		}
	}
	return nil
}

func (s *Server) emit(kind, name string, err error) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(kind, name, err)
	}
}

// modernCipherSuites are the TLS 1.2 suites allowed: ECDHE with AEAD only.
// HTTPChallengeHandler answers ACME HTTP-01 challenges
// (/.well-known/acme-challenge/…) initiated by this instance or by any
// instance sharing its storage, and passes every other request to next.
// Without ACME it is next.
func (s *Server) HTTPChallengeHandler(next http.Handler) http.Handler {
	if next == nil {
		next = http.NotFoundHandler()
	}
	if s.issuer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.issuer.HandleHTTPChallenge(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}
