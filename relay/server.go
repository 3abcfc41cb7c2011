// Package relay is the core of edgerelay: it turns a Config into running
// listeners, channels, deliveries, outbound proxies and the admin API.
//
// Start with New and (*Server).Start; cmd/edgerelay does nothing more than
// load the file, call those, and forward signals to Reload and Shutdown.
// Handlers read the current configuration through an atomic pointer to an
// immutable state; Reload builds a new state and swaps it, so a reload never
// drops a connection or a queued event.
//
// relay is the only package that knows HCL. It imports the leaves auth
// (verifiers), queue (the durable Badger queue) and tls (certificates and
// trust stores), and its own subpackages profile (provider payloads),
// outbound (the BSP API proxy), quarantine (callbacks refused for a wrong
// secret, kept for release) and h1server (the callback fast path of plain
// listeners).
package relay

import (
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/inject"
	"github.com/edgerelay/edgerelay/relay/logout"
	"github.com/edgerelay/edgerelay/relay/outbound"
	"github.com/edgerelay/edgerelay/relay/quarantine"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// Version is set at build time with -ldflags "-X ...relay.Version=…".
var Version = "dev"

// Options are the process-level settings of a Server that do not come from
// the configuration file.
type Options struct {
	// Logger receives the structured log; nil builds one on LogOutput from
	// the file's log block.
	Logger *slog.Logger
	// LogOutput is where the built logger writes (default os.Stderr).
	LogOutput io.Writer
	// ShutdownGrace bounds how long Shutdown waits for in-flight requests
	// and delivery attempts (default 20s).
	ShutdownGrace time.Duration
}

// Server is one running relay.
type Server struct {
	opts    Options
	log     *slog.Logger
	sampler *sampleHandler
	connMet *connMetrics
	reg     *prometheus.Registry
	metrics *metrics
	outMet  *outbound.Metrics

	state atomic.Pointer[state]
	q     *queue.Queue
	qt    *quarantine.Manager

	mu         sync.Mutex // guards what follows (reload and shutdown)
	listeners  map[string]*listener
	admin      *http.Server
	adminLn    net.Listener
	adminTLS   *relaytls.Server // nil: plain HTTP
	console    http.Handler     // the console under /ui/
	deliverers map[string]*deliverer
	proxies    map[string]*outbound.Proxy
	tlsServers map[string]*relaytls.Server

	ctx      context.Context
	cancel   context.CancelFunc
	bg       sync.WaitGroup
	draining atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

// state is the immutable view handlers read.
type state struct {
	cfg       *Config
	listeners map[string]*ListenerConfig
	channels  map[string]map[string]*ChannelConfig // listener → path → channel
	prefixes  map[string][]prefixChannel           // listener → prefix channels, longest first
	byName    map[string]*ChannelConfig
	upstreams map[string]*outbound.Router // listener → its upstreams (longest prefix wins)
	backends  map[string]*BackendConfig
}

// New prepares a Server for cfg: it opens the queue and binds every
// listener, so that configuration and port problems surface before Start.
func New(cfg *Config, opts Options) (*Server, error) {
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 20 * time.Second
	}
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
	}
	s := &Server{
		opts:       opts,
		listeners:  map[string]*listener{},
		deliverers: map[string]*deliverer{},
		proxies:    map[string]*outbound.Proxy{},
		tlsServers: map[string]*relaytls.Server{},
	}
	s.log = opts.Logger
	if s.log == nil {
		s.log = NewLogger(opts.LogOutput, cfg.Log)
	}
	// Repeated warnings (refusals an attacker can provoke) are sampled.
	s.sampler = newSampleHandler(s.log.Handler(), nil)
	s.log = slog.New(s.sampler)
	s.reg = prometheus.NewRegistry()
	s.metrics = newMetrics(s.reg, s)
	s.connMet = newConnMetrics(s.reg)
	s.outMet = outbound.NewMetrics(s.reg)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	qdir := filepath.Join(cfg.DataDir, "queue")
	maxSize, sizeFrom := cfg.Queue.MaxSize, "queue.max_size"
	if maxSize == 0 {
		// Computed once, counting what the queue already holds.
		maxSize, sizeFrom = queue.DefaultMaxSize(qdir), "90% of free space plus the queue's own files, less the disk reserve"
	}
	s.log.Info("queue size limit", "max_bytes", maxSize, "from", sizeFrom)
	q, err := queue.Open(queue.Options{
		Dir:        qdir,
		MaxSize:    maxSize,
		Retain:     cfg.Queue.Retain,
		GCInterval: cfg.Queue.GCInterval,
		Logger:     s.log.With("component", "queue"),
	})
	if err != nil {
		return nil, fmt.Errorf("open queue in %s: %w", cfg.DataDir, err)
	}
	s.q = q
	qt, err := quarantine.Open(filepath.Join(cfg.DataDir, "quarantine"), quarantine.Options{Logger: s.log.With("component", "quarantine")})
	if err != nil {
		q.Close()
		return nil, err
	}
	s.qt = qt
	if err := qt.Configure(quarantineSettings(cfg)); err != nil {
		qt.Close()
		q.Close()
		return nil, err
	}
	st, err := s.buildState(cfg)
	if err != nil {
		qt.Close()
		q.Close()
		return nil, err
	}
	s.state.Store(st)
	for _, lc := range cfg.Listeners {
		if err := s.bindListener(lc); err != nil {
			s.closeListeners()
			qt.Close()
			q.Close()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		s.closeListeners()
		qt.Close()
		q.Close()
		return nil, fmt.Errorf("admin listener %s: %w", cfg.Admin.Address, err)
	}
	s.adminLn = ln
	if err := s.setupAdmin(cfg); err != nil {
		ln.Close()
		s.closeListeners()
		q.Close()
		return nil, err
	}
	return s, nil
}

// NewLogger builds the process logger from the log block. When w is a *logout.Writer (edgerelay
// run's standard error), lines at warn and above flush it.
func NewLogger(w io.Writer, lc LogConfig) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(lc.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if lc.Format == "text" {
		h = slog.NewTextHandler(w, ho)
	} else {
		h = slog.NewJSONHandler(w, ho)
	}
	return slog.New(logout.Wrap(h, w))
}

// Start serves every listener and the admin API and starts deliveries.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, ts := range s.tlsServers {
		if err := ts.Start(s.ctx); err != nil {
			return fmt.Errorf("listener %q: %w", name, err)
		}
	}
	for _, l := range s.listeners {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := l.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("listener stopped", "listener", l.cfg.Name, "err", err)
			}
		}()
		s.log.Info("listening", "listener", l.cfg.Name, "address", l.ln.Addr().String(), "tls", l.cfg.TLS != nil)
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		var err error
		if s.adminTLS != nil {
			err = s.admin.ServeTLS(s.adminLn, "", "")
		} else {
			err = s.admin.Serve(s.adminLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	s.log.Info("admin listening", "address", s.adminLn.Addr().String(), "tls", s.adminTLS != nil, "tokens", len(s.state.Load().cfg.Admin.Tokens))
	s.syncDeliverers(s.state.Load())
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.expiryWatch()
	}()
	return nil
}

// AdminAddr returns the bound address of the admin listener.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Queue exposes the durable queue (for tests and the admin API).
func (s *Server) Queue() *queue.Queue { return s.q }

// Config returns the configuration in force.
func (s *Server) Config() *Config { return s.state.Load().cfg }

// buildState indexes cfg for the handlers and (re)builds the outbound
// proxies, keeping those whose upstream still exists (Update in place).
func (s *Server) buildState(cfg *Config) (*state, error) {
	st := &state{
		cfg:       cfg,
		listeners: map[string]*ListenerConfig{},
		channels:  map[string]map[string]*ChannelConfig{},
		prefixes:  prefixChannels(cfg.Channels),
		byName:    map[string]*ChannelConfig{},
		upstreams: map[string]*outbound.Router{},
		backends:  map[string]*BackendConfig{},
	}
	for _, l := range cfg.Listeners {
		st.listeners[l.Name] = l
	}
	for _, ch := range cfg.Channels {
		if st.channels[ch.Listener] == nil {
			st.channels[ch.Listener] = map[string]*ChannelConfig{}
		}
		st.byName[ch.Name] = ch
		if !strings.HasSuffix(ch.Path, "/*") {
			st.channels[ch.Listener][ch.Path] = ch
		}
	}
	for _, b := range cfg.Backends {
		st.backends[b.Name] = b
	}
	keep := map[string]bool{}
	mounts := map[string][]*outbound.Proxy{}
	for _, u := range cfg.Upstreams {
		spec, err := upstreamSpec(u)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
		}
		p := s.proxies[u.Name]
		if p != nil {
			if err := p.Update(spec); err != nil {
				return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
			}
		} else {
			p, err = outbound.New(spec, s.outMet, s.log.With("upstream", u.Name))
			if err != nil {
				return nil, fmt.Errorf("upstream %q: %w", u.Name, err)
			}
			s.proxies[u.Name] = p
		}
		keep[u.Name] = true
		mounts[u.Listener] = append(mounts[u.Listener], p)
	}
	for name, p := range s.proxies {
		if !keep[name] {
			p.Close()
			delete(s.proxies, name)
			s.outMet.Forget(name)
		}
	}
	for listener, ps := range mounts {
		rt := outbound.NewRouter(ps...)
		rt.Fallback = http.HandlerFunc(s.notFound)
		rt.Log = s.log
		st.upstreams[listener] = rt
	}
	return st, nil
}

func upstreamSpec(u *UpstreamConfig) (outbound.Spec, error) {
	spec := outbound.Spec{
		Name:           u.Name,
		Path:           u.Path,
		BaseURL:        u.BaseURL,
		AllowPaths:     u.AllowPaths,
		AllowMethods:   u.AllowMethods,
		Timeout:        u.Timeout,
		ConnectTimeout: u.ConnectTimeout,
		MaxBody:        u.MaxBody,
		Concurrency:    u.Concurrency,
		Breaker: outbound.BreakerSpec{
			Failures:         u.Breaker.Failures,
			OpenFor:          u.Breaker.OpenFor,
			HalfOpenRequests: u.Breaker.HalfOpenRequests,
		},
	}
	tc, err := clientTLS(u.Trust)
	if err != nil {
		return spec, err
	}
	spec.TLS = tc
	for _, ac := range u.CallerAuth {
		spec.CallerAuth = append(spec.CallerAuth, ac.Verifier)
	}
	// The caller's relay credential is not the BSP's business, whatever
	// scheme carries it.
	spec.StripHeaders = authHeaderNames(u.CallerAuth)
	if spec.Inject, err = injectSpecs(u.Inject); err != nil {
		return spec, err
	}
	spec.Proxy, spec.Rate = u.Proxy, u.Rate
	return spec, nil
}

// injectSpecs turns inject blocks into what package inject runs, building
// the TLS of oauth2 blocks that name their own trust store.
func injectSpecs(ics []InjectConfig) ([]inject.Spec, error) {
	var out []inject.Spec
	for _, ic := range ics {
		var tc *stdtls.Config
		if ic.OAuthTrust != nil {
			var err error
			if tc, err = clientTLS(*ic.OAuthTrust); err != nil {
				return nil, err
			}
		}
		out = append(out, injectSpec(ic, tc))
	}
	return out, nil
}

// clientTLS builds the outbound TLS config of a trust setting (nil trust
// store = the system roots).
func clientTLS(t TrustConfig) (*stdtls.Config, error) {
	var cert *stdtls.Certificate
	if t.ClientCert != nil {
		c, err := relaytls.LoadClientCert(*t.ClientCert)
		if err != nil {
			return nil, err
		}
		cert = &c
	}
	return relaytls.ClientTLS(t.Store, cert), nil
}

// Reload re-reads the configuration file and applies it live. A file that
// is invalid, or that changes what cannot change live (listeners and their
// addresses or TLS, data_dir, admin address, queue settings), is refused
// whole and the running configuration stays.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	cfg, diags := LoadConfig(old.cfg.File)
	if diags.HasErrors() {
		s.metrics.reloads.WithLabelValues("refused").Inc()
		s.log.Error("reload refused: invalid configuration, the running configuration stays", "file", old.cfg.File, "diagnostics", strings.TrimSpace(FormatDiagnostics(diags)))
		return fmt.Errorf("invalid configuration:\n%s", FormatDiagnostics(diags))
	}
	if what := immutableChange(old.cfg, cfg); what != "" {
		s.metrics.reloads.WithLabelValues("refused").Inc()
		s.log.Error("reload refused: this cannot change without a restart, the running configuration stays", "file", cfg.File, "change", what)
		return fmt.Errorf("reload refused: %s cannot change without a restart", what)
	}
	st, err := s.buildState(cfg)
	if err != nil {
		s.metrics.reloads.WithLabelValues("refused").Inc()
		s.log.Error("reload refused", "err", err)
		return err
	}
	for name, ts := range s.tlsServers {
		if err := ts.Reload(); err != nil {
			s.log.Error("certificate reload failed, the old certificate stays", "listener", name, "err", err)
		}
	}
	if s.adminTLS != nil {
		if err := s.adminTLS.Reload(); err != nil {
			s.log.Error("certificate reload failed, the old certificate stays", "listener", "admin", "err", err)
		}
	}
	s.state.Store(st)
	s.syncDeliverers(st)
	if err := s.qt.Configure(quarantineSettings(cfg)); err != nil {
		s.log.Error("quarantine not opened for every channel", "err", err)
	}
	s.metrics.reloads.WithLabelValues("applied").Inc()
	s.log.Info("configuration reloaded", "file", cfg.File, "channels", len(cfg.Channels), "backends", len(cfg.Backends), "upstreams", len(cfg.Upstreams))
	return nil
}

// immutableChange names the first setting that differs and cannot change
// live, or "" when the reload may go ahead.
func immutableChange(a, b *Config) string {
	if a.DataDir != b.DataDir {
		return "data_dir"
	}
	if a.Admin.Address != b.Admin.Address {
		return "admin address"
	}
	if !reflect.DeepEqual(a.Admin.TLS, b.Admin.TLS) {
		return "admin tls block (its files are re-read on reload; the block itself cannot change)"
	}
	if a.Queue != b.Queue {
		return "queue block"
	}
	if a.Log != b.Log {
		return "log block"
	}
	if len(a.Listeners) != len(b.Listeners) {
		return "the set of listeners"
	}
	old := map[string]*ListenerConfig{}
	for _, l := range a.Listeners {
		old[l.Name] = l
	}
	for _, l := range b.Listeners {
		o := old[l.Name]
		if o == nil {
			return fmt.Sprintf("the set of listeners (listener %q is new)", l.Name)
		}
		if o.Address != l.Address {
			return fmt.Sprintf("listener %q address (%s → %s)", l.Name, o.Address, l.Address)
		}
		if !reflect.DeepEqual(o.TLS, l.TLS) {
			return fmt.Sprintf("listener %q tls block (certificate files are re-read on reload; the block itself cannot change)", l.Name)
		}
		if o.MaxBody != l.MaxBody || o.ReadTimeout != l.ReadTimeout || o.WriteTimeout != l.WriteTimeout || o.IdleTimeout != l.IdleTimeout || o.MaxConnections != l.MaxConnections || o.MaxConnectionsPerIP != l.MaxConnectionsPerIP || !reflect.DeepEqual(o.TrustedProxies, l.TrustedProxies) {
			return fmt.Sprintf("listener %q settings", l.Name)
		}
	}
	return ""
}

// Shutdown drains the relay: listeners stop accepting and finish their
// requests, deliveries finish their attempts, then the queue closes. It is
// idempotent and bounded by ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		s.mu.Lock()
		var wg sync.WaitGroup
		for _, l := range s.listeners {
			wg.Add(1)
			go func(l *listener) {
				defer wg.Done()
				l.shutdown(ctx)
			}(l)
		}
		if !waitCtx(&wg, ctx) {
			s.log.Warn("shutdown deadline reached while listeners were draining")
		}
		for _, d := range s.deliverers {
			d.stop()
		}
		for _, d := range s.deliverers {
			d.wait(ctx)
		}
		for _, p := range s.proxies {
			p.Close()
		}
		for _, ts := range s.tlsServers {
			ts.Stop()
		}
		s.cancel()
		s.admin.Shutdown(ctx)
		s.mu.Unlock()
		if !waitCtx(&s.bg, ctx) {
			s.log.Warn("shutdown deadline reached with work still running")
		}
		s.qt.Close()
		s.stopErr = s.q.Close()
		s.sampler.flush()
		s.log.Info("stopped")
	})
	return s.stopErr
}

// waitCtx waits for wg or ctx; false when ctx ended first.
func waitCtx(wg *sync.WaitGroup, ctx context.Context) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
