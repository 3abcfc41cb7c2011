package tls

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// Event kinds passed to ServerConfig.OnEvent, for counters.
const (
	// EventObtained means a managed certificate was issued for a name.
	EventObtained = "obtained"
	// EventRenewed means a managed certificate was renewed.
	EventRenewed = "renewed"
	// EventObtainFailed means an attempt to obtain a certificate failed;
	// certmagic retries with backoff.
	EventObtainFailed = "obtain_failed"
	// EventRenewalFailed means an attempt to renew a certificate failed;
	// certmagic retries with backoff and the old certificate is served
	// meanwhile.
	EventRenewalFailed = "renewal_failed"
	// EventReloaded means Reload replaced the static certificate and the
	// client CAs; the name is the listener's.
	EventReloaded = "reloaded"
	// EventReloadFailed means Reload failed and the previous files stay in
	// use; the name is the listener's.
	EventReloadFailed = "reload_failed"
)

// ACME challenge types, for ACMEConfig.Challenges.
const (
	// ChallengeTLSALPN01 is answered by the listener itself (TLSConfig).
	ChallengeTLSALPN01 = "tls-alpn-01"
	// ChallengeHTTP01 is answered by HTTPChallengeHandler on port 80.
	ChallengeHTTP01 = "http-01"
)

// ErrInvalidConfig wraps every shape error found by NewServer and
// ServerConfig.Validate (file errors keep their own causes).
var ErrInvalidConfig = errors.New("invalid tls configuration")

// ErrStopped is returned by Start after Stop.
var ErrStopped = errors.New("tls server stopped")

// ServerConfig describes the certificates and TLS policy of one listener.
// Exactly one certificate source is set: CertFile and KeyFile, SelfSigned,
// or ACME.
type ServerConfig struct {
	// Listener is the listener's name, for logs and CertInfo.
	Listener string
	// Address is the listener's "host:port". It supplies the default
	// self-signed names and, with ACME, the port on which the TLS-ALPN-01
	// challenge is answered: the listener itself, through TLSConfig.
	Address string
	// StorageDir is the data directory: certmagic keeps ACME accounts and
	// certificates in StorageDir/certs (shared by every instance using the
	// same directory), the self-signed certificate lives in
	// StorageDir/selfsigned. Required for ACME and SelfSigned.
	StorageDir string

	// CertFile and KeyFile are a static PEM certificate (chain) and key.
	CertFile, KeyFile string
	// SelfSigned makes and persists a development certificate for Names.
	SelfSigned bool
	// Names are the self-signed certificate's names (DNS names or IP
	// addresses). Default: "localhost" and the host of Address (or
	// 127.0.0.1 and ::1 when Address listens on every interface).
	Names []string
	// ACME manages certificates with certmagic.
	ACME *ACMEConfig

	// ClientCAs are trust store files (any format LoadTrustStore reads);
	// when set, clients must present a certificate that verifies against
	// them (inbound mutual TLS).
	ClientCAs []string
	// ClientCAPassword opens the PKCS#12 and JKS files among ClientCAs.
	ClientCAPassword string

	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string

	// Logger receives the package's and certmagic's logs; nil discards.
	Logger *slog.Logger
	// OnEvent, when set, is called on certificate events (the Event*
	// kinds) with the name concerned and the error, if any; the relay
	// counts them. It must not block.
	OnEvent func(kind, name string, err error)
}

// ACMEConfig describes certificates managed over ACME.
type ACMEConfig struct {
	// Domains are the names to obtain certificates for. Required.
	Domains []string
	// Email is the ACME account contact (optional, recommended).
	Email string
	// CA is the ACME directory URL. Default: Let's Encrypt production.
	CA string
	// CARoots are certificate files (PEM or any trust store format) of a
	// private ACME CA's HTTPS endpoint (Pebble, step-ca). Default: the
	// system roots.
	CARoots []string
	// Challenges is a subset of "tls-alpn-01" and "http-01". Default both.
	Challenges []string
	// HTTPChallengeAddr is where HTTP-01 challenges arrive ("host:port" or
	// ":port"). If a listener of the relay already binds that port and
	// routes through Server.HTTPChallengeHandler, it answers; otherwise
	// certmagic binds the port itself (on the host of ServerConfig.Address)
	// while a challenge is pending. Only the port is used. Default ":80".
	HTTPChallengeAddr string
	// RenewalWindowRatio is the fraction of a certificate's lifetime left
	// at which it is renewed. 0 means certmagic's default (1/3).
	RenewalWindowRatio float64
	// RenewCheckInterval is how often certificates are checked for
	// renewal. 0 means certmagic's default (10 minutes).
	RenewCheckInterval time.Duration
	// DisableOCSPStapling turns off OCSP stapling (on by default).
	DisableOCSPStapling bool
	// DisableARI turns off ACME Renewal Information (RFC 9773, on by
	// default): renewal then follows RenewalWindowRatio alone and a renewal
	// order names no certificate it replaces.
	DisableARI bool
}

// Server is the certificate source and TLS policy of one listener.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	source string
	minVer uint16

	state atomic.Pointer[serverState]

	// ACME only.
	domains []string
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer

	mu      sync.Mutex // guards started, stopped, cancel and Reload
	started bool
	stopped bool
	cancel  context.CancelFunc
}

// serverState is what Reload swaps atomically.
type serverState struct {
	cert      *stdtls.Certificate // static or self-signed; nil with ACME
	clientCAs *x509.CertPool
	conf      *stdtls.Config // served to ordinary clients
	challenge *stdtls.Config // served to TLS-ALPN-01 validation (ACME)
}

// checked is what the file-free validation of a ServerConfig derives.
type checked struct {
	source                   string
	minVer                   uint16
	disableHTTP, disableALPN bool
	listenHost               string // ACME challenge solvers bind here
	alpnPort, httpPort       int    // 0: certmagic's defaults (443, 80)
}

// check validates the shape of c without touching any file.
func (c ServerConfig) check() (checked, error) {
	var k checked
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: listener %q: %s", ErrInvalidConfig, c.Listener, fmt.Sprintf(format, args...))
	}
	sources := 0
	if c.CertFile != "" || c.KeyFile != "" {
		sources++
		k.source = SourceStatic
		if c.CertFile == "" || c.KeyFile == "" {
			return k, invalid("cert_file and key_file go together")
		}
	}
	if c.SelfSigned {
		sources++
		k.source = SourceSelfSigned
		for _, n := range c.Names {
			if n == "" || (strings.ContainsAny(n, "/: ") && net.ParseIP(n) == nil) {
				return k, invalid("self-signed name %q is neither a DNS name nor an IP address", n)
			}
		}
	}
	if c.ACME != nil {
		sources++
		k.source = SourceACME
	}
	if sources != 1 {
		return k, invalid("exactly one of cert_file/key_file, self_signed or acme is required, found %d", sources)
	}
	switch c.MinVersion {
	case "", "1.2":
		k.minVer = stdtls.VersionTLS12
	case "1.3":
		k.minVer = stdtls.VersionTLS13
	default:
		return k, invalid("min_version %q: want \"1.2\" or \"1.3\"", c.MinVersion)
	}
	if (c.SelfSigned || c.ACME != nil) && c.StorageDir == "" {
		return k, invalid("a storage directory (data_dir) is required for %s certificates", k.source)
	}
	if c.Address != "" {
		host, port, err := splitPort(c.Address)
		if err != nil {
			return k, invalid("address %q: %v", c.Address, err)
		}
		k.listenHost, k.alpnPort = host, port
	}
	a := c.ACME
	if a == nil {
		return k, nil
	}
	if len(a.Domains) == 0 {
		return k, invalid("acme: at least one domain is required")
	}
	for _, d := range a.Domains {
		if d == "" || strings.ContainsAny(d, "/: ") {
			return k, invalid("acme: %q is not a domain name", d)
		}
	}
	if len(a.Challenges) > 0 {
		k.disableHTTP, k.disableALPN = true, true
		for _, ch := range a.Challenges {
			switch ch {
			case ChallengeHTTP01:
				k.disableHTTP = false
			case ChallengeTLSALPN01:
				k.disableALPN = false
			default:
				return k, invalid("acme: unknown challenge %q: want %q or %q", ch, ChallengeTLSALPN01, ChallengeHTTP01)
			}
		}
	}
	if a.RenewalWindowRatio < 0 || a.RenewalWindowRatio >= 1 {
		return k, invalid("acme: renewal window ratio %v out of [0, 1)", a.RenewalWindowRatio)
	}
	if a.RenewCheckInterval < 0 {
		return k, invalid("acme: negative renew check interval")
	}
	if a.HTTPChallengeAddr != "" {
		_, port, err := splitPort(a.HTTPChallengeAddr)
		if err != nil {
			return k, invalid("acme: http challenge address %q: %v", a.HTTPChallengeAddr, err)
		}
		k.httpPort = port
	}
	return k, nil
}

// Validate checks c as far as possible without the network and without
// writing anything: its shape, and that the static certificate and key,
// the client CA files and the ACME CA roots load. `edgerelay validate`
// calls it; NewServer does the same checks.
func (c ServerConfig) Validate() error {
	k, err := c.check()
	if err != nil {
		return err
	}
	if len(c.ClientCAs) > 0 {
		if _, err := LoadTrustStore(c.ClientCAs, c.ClientCAPassword, false); err != nil {
			return fmt.Errorf("listener %q: client CAs: %w", c.Listener, err)
		}
	}
	switch {
	case k.source == SourceStatic:
		if _, err := loadKeyPair(c.CertFile, c.KeyFile); err != nil {
			return fmt.Errorf("listener %q: %w", c.Listener, err)
		}
	case k.source == SourceACME && len(c.ACME.CARoots) > 0:
		if _, err := LoadTrustStore(c.ACME.CARoots, "", false); err != nil {
			return fmt.Errorf("listener %q: acme ca_roots: %w", c.Listener, err)
		}
	}
	return nil
}

// NewServer validates c and loads its static or self-signed certificate
// (making and persisting the latter if needed) and its client CAs. With
// ACME it prepares certmagic (its own cache, file storage in
// StorageDir/certs) but contacts no CA until Start. Call Stop when done.
func NewServer(c ServerConfig) (*Server, error) {
	k, err := c.check()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, log: c.Logger, source: k.source, minVer: k.minVer}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("listener", c.Listener)

	clientCAs, err := s.loadClientCAs()
	if err != nil {
		return nil, err
	}
	var cert *stdtls.Certificate
	switch s.source {
	case SourceStatic:
		if cert, err = loadKeyPair(c.CertFile, c.KeyFile); err != nil {
			return nil, fmt.Errorf("listener %q: %w", c.Listener, err)
		}
		s.warnKeyFile()
	case SourceSelfSigned:
		names := c.Names
		if len(names) == 0 {
			names = defaultSelfSignedNames(c.Address)
		}
		if cert, err = loadOrCreateSelfSigned(filepath.Join(c.StorageDir, "selfsigned"), c.Listener, names, s.log); err != nil {
			return nil, fmt.Errorf("listener %q: %w", c.Listener, err)
		}
	case SourceACME:
		if err := s.setupACME(k); err != nil {
			return nil, err
		}
	}
	s.state.Store(s.newState(cert, clientCAs))
	return s, nil
}

func (s *Server) loadClientCAs() (*x509.CertPool, error) {
	if len(s.cfg.ClientCAs) == 0 {
		return nil, nil
	}
	ts, err := LoadTrustStore(s.cfg.ClientCAs, s.cfg.ClientCAPassword, false)
	if err != nil {
		return nil, fmt.Errorf("listener %q: client CAs: %w", s.cfg.Listener, err)
	}
	return ts.Pool, nil
}

// TLS 1.3 suites are not configurable and all modern.
var modernCipherSuites = []uint16{
	stdtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	stdtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	stdtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	stdtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	stdtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	stdtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

const acmeTLS1 = "acme-tls/1"

func (s *Server) newState(cert *stdtls.Certificate, clientCAs *x509.CertPool) *serverState {
	st := &serverState{cert: cert, clientCAs: clientCAs}
	conf := &stdtls.Config{
		MinVersion:   s.minVer,
		CipherSuites: modernCipherSuites,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if s.magic != nil {
		conf.GetCertificate = s.magic.GetCertificate
		conf.NextProtos = append(conf.NextProtos, acmeTLS1)
		// The CA's validation connection presents no client certificate
		// and speaks only acme-tls/1: give it its own policy, so mutual
		// TLS on the listener does not break TLS-ALPN-01.
		st.challenge = &stdtls.Config{
			MinVersion:     stdtls.VersionTLS12,
			NextProtos:     []string{acmeTLS1},
			GetCertificate: s.magic.GetCertificate,
		}
	} else {
		conf.GetCertificate = func(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
			return s.state.Load().cert, nil
		}
	}
	if clientCAs != nil {
		conf.ClientCAs = clientCAs
		conf.ClientAuth = stdtls.RequireAndVerifyClientCert
	}
	st.conf = conf
	return st
}

func (s *Server) getConfigForClient(hello *stdtls.ClientHelloInfo) (*stdtls.Config, error) {
	st := s.state.Load()
	if st.challenge != nil && slices.Contains(hello.SupportedProtos, acmeTLS1) {
		return st.challenge, nil
	}
	return st.conf, nil
}

// TLSConfig returns the listener's TLS configuration, for http.Server's
// TLSConfig: certificates from the configured source, ALPN h2 and
// http/1.1 (and acme-tls/1 with ACME), the minimum version, ECDHE-AEAD
// suites for TLS 1.2, and RequireAndVerifyClientCert when client CAs are
// set. It follows Reload: each handshake uses the current state.
func (s *Server) TLSConfig() *stdtls.Config {
	conf := s.state.Load().conf.Clone()
	conf.GetConfigForClient = s.getConfigForClient
	return conf
}

// Start begins managing the ACME names in the background: certificates
// are loaded from storage or obtained, then renewed, until Stop or ctx is
// done. Start the listener that serves TLSConfig (and the HTTP-01 handler)
// first: certmagic binds a challenge port itself only when it is free.
// Start does nothing for static and self-signed certificates.
func (s *Server) Start(ctx context.Context) error {
	if s.magic == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if s.started {
		return nil
	}
	mctx, cancel := context.WithCancel(ctx)
	if err := s.magic.ManageAsync(mctx, s.domains); err != nil {
		cancel()
		return fmt.Errorf("listener %q: manage certificates: %w", s.cfg.Listener, err)
	}
	s.started, s.cancel = true, cancel
	s.log.Info("managing certificates", "domains", s.domains, "ca", s.issuer.CA)
	return nil
}

// Stop ends certificate management and its goroutines. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.cancel != nil {
		s.cancel()
	}
	if s.cache != nil {
		s.cache.Stop()
	}
}

// Source reports the certificate source: "acme", "static" or "self_signed".
func (s *Server) Source() string { return s.source }

// Ready reports whether every name is served with a valid certificate:
// always for static and self-signed, once every domain has a certificate
// with ACME.
func (s *Server) Ready() bool {
	if s.cache == nil {
		return true
	}
	for _, d := range s.domains {
		if _, ok := s.managedCert(d); !ok {
			return false
		}
	}
	return true
}

// managedCert returns the unexpired certificate with the latest expiry
// that certmagic holds for name.
func (s *Server) managedCert(name string) (*x509.Certificate, bool) {
	var best *x509.Certificate
	for _, c := range s.cache.AllMatchingCertificates(name) {
		if c.Leaf == nil || c.Expired() {
			continue
		}
		if best == nil || c.Leaf.NotAfter.After(best.NotAfter) {
			best = c.Leaf
		}
	}
	return best, best != nil
}

// Certificates describes what the listener serves, for the admin API and
// expiry metrics. With ACME, names without a certificate yet are absent.
func (s *Server) Certificates() []CertInfo {
	var leaves []*x509.Certificate
	if s.cache != nil {
		seen := map[string]bool{}
		for _, d := range s.domains {
			leaf, ok := s.managedCert(d)
			if !ok || seen[string(leaf.Raw)] {
				continue
			}
			seen[string(leaf.Raw)] = true
			leaves = append(leaves, leaf)
		}
	} else if st := s.state.Load(); st.cert != nil && st.cert.Leaf != nil {
		leaves = append(leaves, st.cert.Leaf)
	}
	out := make([]CertInfo, 0, len(leaves))
	for _, l := range leaves {
		info := Inspect(l)
		info.Listener, info.Source = s.cfg.Listener, s.source
		out = append(out, info)
	}
	return out
}

// Reload re-reads the static certificate and key files and the client CA
// files, and swaps them in atomically for new handshakes. On any error the
// previous ones stay in use and the error is returned. Self-signed and
// ACME certificates are not affected (certmagic renews on its own); their
// client CAs are reloaded.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.reload()
	if err != nil {
		s.log.Warn("tls reload failed; keeping the previous certificates", "error", err)
		s.emit(EventReloadFailed, s.cfg.Listener, err)
		return err
	}
	s.emit(EventReloaded, s.cfg.Listener, nil)
	return nil
}

func (s *Server) reload() error {
	old := s.state.Load()
	cert := old.cert
	if s.source == SourceStatic {
		c, err := loadKeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return err
		}
		cert = c
		s.warnKeyFile()
	}
	clientCAs, err := s.loadClientCAs()
	if err != nil {
		return err
	}
	s.state.Store(s.newState(cert, clientCAs))
	if cert != nil && cert.Leaf != nil {
		s.log.Info("tls certificates reloaded", "serial", cert.Leaf.SerialNumber.Text(16), "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// loadKeyPair loads a PEM certificate chain and key and parses the leaf.
func loadKeyPair(certFile, keyFile string) (*stdtls.Certificate, error) {
	certPEM, err := readBounded(certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	keyPEM, err := readBounded(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	cert, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			err = ErrKeyMismatch
		}
		return nil, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}
