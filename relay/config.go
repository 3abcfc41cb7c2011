package relay

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/profile"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// Config is the validated, immutable snapshot of one configuration file.
// Handlers read it through the Server's atomic pointer; a reload builds a
// new one and swaps it. Every default is applied here, so nothing
// downstream has to know what "not written" means.
type Config struct {
	// File is the absolute path of the configuration file; Dir its directory.
	File, Dir string
	// DataDir holds the queue (DataDir/queue) and certificates (DataDir/certs).
	DataDir string

	Log       LogConfig
	Queue     QueueConfig
	Admin     AdminConfig
	Listeners []*ListenerConfig
	Channels  []*ChannelConfig
	Backends  []*BackendConfig
	Upstreams []*UpstreamConfig

	// Certificates lists every certificate the file names (static,
	// client, trust stores) with its expiry, for `edgerelay validate`.
	Certificates []string
}

// LogConfig selects the log level ("debug", "info" (default), "warn",
// "error") and format ("json" (default) or "text").
type LogConfig struct {
	Level, Format string
}

// QueueConfig bounds the durable queue.
type QueueConfig struct {
	// MaxSize is the disk budget in bytes; 0 = 90% of the free disk space
	// of DataDir, measured at start.
	MaxSize int64
	// Retain keeps delivered events for replay; default 0.
	Retain time.Duration
	// GCInterval is the value-log GC period; default 1m.
	GCInterval time.Duration
}

// AdminConfig is the admin listener (health, metrics, dead letters).
type AdminConfig struct {
	// Address defaults to 127.0.0.1:9090.
	Address string
}

// ListenerConfig is one HTTP(S) listener.
type ListenerConfig struct {
	Name    string
	Address string
	// MaxBody bounds a request body in bytes (default 3 MiB); a body of
	// exactly MaxBody is accepted.
	MaxBody int64
	// ReadTimeout (default 15s), WriteTimeout (default 30s), IdleTimeout
	// (default 120s) are the http.Server timeouts.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// TLS is nil for plain HTTP.
	TLS *ListenerTLS
}

// ListenerTLS is a listener's TLS setting, as the tls package takes it.
type ListenerTLS struct {
	Server relaytls.ServerConfig
	// HTTPChallengeAddress is an optional plain listener (e.g. ":80") that
	// answers ACME HTTP-01 challenges and redirects everything else.
	HTTPChallengeAddress string
}

// AuthConfig is one auth block of a channel, with its verifier built.
type AuthConfig struct {
	Type     string
	Verifier auth.Verifier
	// Secrets the block holds (for simulate, and for the log scrubber).
	HMAC     *auth.HMACConfig
	Basic    *auth.BasicConfig
	Header   *auth.HeaderConfig
	JWT      *auth.JWTConfig
	Twilio   *auth.TwilioConfig
	Standard *auth.StandardWebhooksConfig
}

// Route sends events whose routing fields all match When to ForwardTo.
// An empty When matches everything.
type Route struct {
	When      map[string]string
	ForwardTo []string
}

// ChannelConfig is one inbound webhook endpoint.
type ChannelConfig struct {
	Name, Listener, Path string
	Provider             string
	Profile              *profile.Profile
	Auth                 []AuthConfig
	// Methods accepted for callbacks; default ["POST"]. A Meta channel
	// also answers the GET verification handshake.
	Methods     []string
	VerifyToken string
	PublicURL   string
	// Ordered is true when events are delivered one at a time per sender.
	Ordered bool
	// DedupeWindow is how long a provider event id is remembered (default 24h; 0 = off).
	DedupeWindow time.Duration
	// RejectStatus answers a failed authentication (default 401).
	RejectStatus   int
	ProfileOptions profile.Options
	ClientNames    []string
	ForwardTo      []string
	Routes         []Route
	Response       profile.Response
}

// RetryPolicy is a backend's retry schedule.
type RetryPolicy struct {
	// Initial (default 1s) and Max (default 5m) bound the exponential
	// backoff; MaxAttempts 0 (default) means no limit; MaxAge (default
	// 168h) turns a delivery into a dead letter once the event is that old.
	Initial, Max time.Duration
	MaxAttempts  int
	MaxAge       time.Duration
}

// BreakerConfig is a circuit breaker's setting.
type BreakerConfig struct {
	// Failures is the number of consecutive failures that open it (default 5).
	Failures int
	// OpenFor is how long it stays open before probing (default 30s).
	OpenFor time.Duration
	// HalfOpenRequests is the number of probes let through half-open (default 1).
	HalfOpenRequests int
}

// TrustConfig is an outbound trust store with its loaded result.
type TrustConfig struct {
	Files    []string
	Password string
	System   bool
	// Store is nil when no files are listed and System is false, which
	// means: the system roots (the default of an http.Client).
	Store      *relaytls.TrustStore
	ClientCert *relaytls.ClientCertConfig
}

// BackendConfig is one internal destination of events.
type BackendConfig struct {
	Name string
	URL  string
	// Timeout of one delivery attempt (default 10s).
	Timeout time.Duration
	// Concurrency is the number of deliveries in flight (default 16).
	Concurrency int
	Retry       RetryPolicy
	Breaker     BreakerConfig
	// SignSecret, when set, signs deliveries with Standard Webhooks headers.
	SignSecret string
	Trust      TrustConfig
}

// InjectConfig is one credential an upstream adds to outbound calls.
type InjectConfig struct {
	Type                   string // header, basic, bearer, oauth2
	Name, Value            string
	Username, Password     string
	Token                  string
	Expires                time.Time
	TokenURL               string
	ClientID, ClientSecret string
	Scopes                 []string
	OAuthTrust             *TrustConfig
}

// UpstreamConfig is one BSP API exposed to internal apps.
type UpstreamConfig struct {
	Name, Listener, Path, BaseURL string
	AllowPaths, AllowMethods      []string
	Timeout, ConnectTimeout       time.Duration
	MaxBody                       int64
	Concurrency                   int
	Inject                        []InjectConfig
	CallerAuth                    []AuthConfig
	Trust                         TrustConfig
	Breaker                       BreakerConfig
}

// LoadConfig reads, decodes and validates the configuration file. All
// problems are returned at once as diagnostics; the Config is nil when any
// of them is an error.
func LoadConfig(path string) (*Config, hcl.Diagnostics) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	src, err := os.ReadFile(abs)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "cannot read configuration file",
			Detail:   err.Error(),
			Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	return ParseConfig(path, abs, src)
}

// ParseConfig is LoadConfig on bytes already read; name is used in
// diagnostics and abs anchors relative paths.
func ParseConfig(name, abs string, src []byte) (*Config, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	dir := filepath.Dir(abs)
	var fc fileConfig
	diags = append(diags, gohcl.DecodeBody(f.Body, evalContext(dir), &fc)...)
	if diags.HasErrors() {
		// gohcl walks attributes in map order: sort for stable output.
		sort.SliceStable(diags, func(i, j int) bool { return diagBefore(diags[i], diags[j]) })
		return nil, diags
	}
	v := &validator{dir: dir, ctx: evalContext(dir)}
	cfg := v.build(&fc)
	cfg.File, cfg.Dir = abs, dir
	cfg.Certificates = v.certs
	sort.SliceStable(v.diags, func(i, j int) bool { return diagBefore(v.diags[i], v.diags[j]) })
	diags = append(diags, v.diags...)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

func diagBefore(a, b *hcl.Diagnostic) bool {
	if a.Subject == nil || b.Subject == nil {
		return a.Subject != nil
	}
	if a.Subject.Start.Line != b.Subject.Start.Line {
		return a.Subject.Start.Line < b.Subject.Start.Line
	}
	return a.Subject.Start.Column < b.Subject.Start.Column
}

// evalContext offers env() and file() to the configuration.
func evalContext(dir string) *hcl.EvalContext {
	env := function.New(&function.Spec{
		Description: "env(NAME) or env(NAME, DEFAULT): an environment variable",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if len(args) > 2 {
				return cty.NilVal, fmt.Errorf("env takes a name and at most one default")
			}
			if v, ok := os.LookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %s is not set (give a default with env(%q, \"…\"))", name, name)
		},
	})
	file := function.New(&function.Spec{
		Description: "file(PATH): a file's contents, trailing whitespace trimmed",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := resolvePath(dir, args[0].AsString())
			b, err := os.ReadFile(p)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read %s: %w", p, err)
			}
			return cty.StringVal(strings.TrimRight(string(b), " \t\r\n")), nil
		},
	})
	return &hcl.EvalContext{Functions: map[string]function.Function{"env": env, "file": file}}
}

func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// validator turns the decoded file into a Config, collecting every problem.
type validator struct {
	dir   string
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
	certs []string // certificate expiries, for validate's report
}

func (v *validator) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	v.diags = append(v.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

func (v *validator) duration(s *string, rng hcl.Range, name string, def time.Duration) time.Duration {
	if s == nil {
		return def
	}
	d, err := ParseDuration(*s)
	if err != nil {
		v.errorf(rng, "invalid duration", "%s = %q: %v (write e.g. \"30s\", \"5m\", \"168h\", \"7d\")", name, *s, err)
		return def
	}
	if d < 0 {
		v.errorf(rng, "invalid duration", "%s = %q must not be negative", name, *s)
		return def
	}
	return d
}

func (v *validator) size(s *string, rng hcl.Range, name string, def int64) int64 {
	if s == nil {
		return def
	}
	n, err := ParseSize(*s)
	if err != nil {
		v.errorf(rng, "invalid size", "%s = %q: %v (write e.g. \"3MiB\", \"10GiB\", \"512KB\")", name, *s, err)
		return def
	}
	return n
}

func (v *validator) positive(n *int, rng hcl.Range, name string, def int, allowZero bool) int {
	if n == nil {
		return def
	}
	if *n < 0 || (*n == 0 && !allowZero) {
		v.errorf(rng, "invalid number", "%s = %d must be %s", name, *n, map[bool]string{true: "0 or more", false: "at least 1"}[allowZero])
		return def
	}
	return *n
}

// secrets drops empty entries (so env("OLD", "") is harmless) and reports
// a list left empty.
func (v *validator) secrets(list []string, rng hcl.Range, name string) []string {
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		v.errorf(rng, "empty secret list", "%s has no non-empty value: at least one is required", name)
	}
	return out
}

func str(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func boolv(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func (v *validator) build(fc *fileConfig) *Config {
	cfg := &Config{}
	if strings.TrimSpace(fc.DataDir) == "" {
		v.errorf(fc.DataDirRange, "missing data_dir", "data_dir must name the directory for the queue and certificates")
	}
	cfg.DataDir = resolvePath(v.dir, fc.DataDir)

	cfg.Log = LogConfig{Level: "info", Format: "json"}
	if l := fc.Log; l != nil {
		cfg.Log.Level = str(l.Level, "info")
		if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.Log.Level) {
			v.errorf(l.LevelRange, "invalid log level", "level = %q: use debug, info, warn or error", cfg.Log.Level)
		}
		cfg.Log.Format = str(l.Format, "json")
		if cfg.Log.Format != "json" && cfg.Log.Format != "text" {
			v.errorf(l.FormatRange, "invalid log format", "format = %q: use json or text", cfg.Log.Format)
		}
	}

	cfg.Queue = QueueConfig{GCInterval: time.Minute}
	if q := fc.Queue; q != nil {
		cfg.Queue.MaxSize = v.size(q.MaxSize, q.MaxSizeRange, "max_size", 0)
		cfg.Queue.Retain = v.duration(q.Retain, q.RetainRange, "retain", 0)
		cfg.Queue.GCInterval = v.duration(q.GCInterval, q.GCIntervalRange, "gc_interval", time.Minute)
	}

	cfg.Admin.Address = "127.0.0.1:9090"
	if a := fc.Admin; a != nil && a.Address != nil {
		cfg.Admin.Address = *a.Address
		if _, _, err := net.SplitHostPort(*a.Address); err != nil {
			v.errorf(a.AddressRange, "invalid address", "admin address %q: %v", *a.Address, err)
		}
	}

	listeners := map[string]*ListenerConfig{}
	addrs := map[string]string{}
	for i := range fc.Listeners {
		l := v.listener(&fc.Listeners[i], cfg.DataDir)
		if _, dup := listeners[l.Name]; dup {
			v.errorf(fc.Listeners[i].DefRange, "duplicate listener", "listener %q is defined twice", l.Name)
			continue
		}
		if other, dup := addrs[l.Address]; dup && l.Address != "" {
			v.errorf(fc.Listeners[i].AddressRange, "duplicate address", "listener %q uses %s, already used by listener %q", l.Name, l.Address, other)
		}
		addrs[l.Address] = l.Name
		listeners[l.Name] = l
		cfg.Listeners = append(cfg.Listeners, l)
	}

	backends := map[string]*BackendConfig{}
	for i := range fc.Backends {
		b := v.backend(&fc.Backends[i])
		if _, dup := backends[b.Name]; dup {
			v.errorf(fc.Backends[i].NameRange, "duplicate backend", "backend %q is defined twice", b.Name)
			continue
		}
		backends[b.Name] = b
		cfg.Backends = append(cfg.Backends, b)
	}

	// paths[listener][path] = what uses it, for uniqueness.
	paths := map[string]map[string]string{}
	claim := func(listener, path, what string, rng hcl.Range) {
		if paths[listener] == nil {
			paths[listener] = map[string]string{}
		}
		if other, dup := paths[listener][path]; dup {
			v.errorf(rng, "duplicate path", "path %q on listener %q is already used by %s", path, listener, other)
			return
		}
		paths[listener][path] = what
	}
	channelNames := map[string]bool{}
	for i := range fc.Channels {
		cb := &fc.Channels[i]
		if channelNames[cb.Name] {
			v.errorf(cb.NameRange, "duplicate channel", "channel %q is defined twice", cb.Name)
			continue
		}
		channelNames[cb.Name] = true
		ch := v.channel(cb, listeners, backends)
		claim(ch.Listener, ch.Path, fmt.Sprintf("channel %q", ch.Name), cb.PathRange)
		cfg.Channels = append(cfg.Channels, ch)
	}
	upNames := map[string]bool{}
	for i := range fc.Upstreams {
		ub := &fc.Upstreams[i]
		if upNames[ub.Name] {
			v.errorf(ub.NameRange, "duplicate upstream", "upstream %q is defined twice", ub.Name)
			continue
		}
		upNames[ub.Name] = true
		u := v.upstream(ub, listeners)
		claim(u.Listener, u.Path, fmt.Sprintf("upstream %q", u.Name), ub.PathRange)
		cfg.Upstreams = append(cfg.Upstreams, u)
	}
	// A channel path under an upstream prefix on the same listener would be
	// shadowed depending on the order of matching: refuse it.
	for _, u := range cfg.Upstreams {
		for _, ch := range cfg.Channels {
			if ch.Listener == u.Listener && strings.HasPrefix(ch.Path, u.Path) {
				for i := range fc.Channels {
					if fc.Channels[i].Name == ch.Name {
						v.errorf(fc.Channels[i].PathRange, "path overlaps an upstream", "channel %q path %q lies under upstream %q path %q on listener %q", ch.Name, ch.Path, u.Name, u.Path, u.Listener)
					}
				}
			}
		}
	}
	if len(cfg.Channels) == 0 && len(cfg.Upstreams) == 0 {
		v.errorf(hcl.Range{Filename: fc.DataDirRange.Filename, Start: hcl.InitialPos, End: hcl.InitialPos},
			"nothing to do", "the configuration has no channel and no upstream block")
	}
	return cfg
}

func (v *validator) listener(lb *listenerBlock, dataDir string) *ListenerConfig {
	l := &ListenerConfig{Name: lb.Name, Address: lb.Address}
	if host, port, err := net.SplitHostPort(lb.Address); err != nil {
		v.errorf(lb.AddressRange, "invalid address", "listener %q address %q: %v (write host:port, e.g. \"0.0.0.0:8443\")", lb.Name, lb.Address, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.errorf(lb.AddressRange, "invalid address", "listener %q address %q: bad port", lb.Name, lb.Address)
	} else {
		_ = host
	}
	l.MaxBody = v.size(lb.MaxBody, lb.MaxBodyRange, "max_body", 3<<20)
	if l.MaxBody <= 0 {
		v.errorf(lb.MaxBodyRange, "invalid size", "max_body must be more than 0")
	}
	l.ReadTimeout = v.duration(lb.ReadTimeout, lb.ReadTimeoutRange, "read_timeout", 15*time.Second)
	l.WriteTimeout = v.duration(lb.WriteTimeout, lb.WriteTimeoutRange, "write_timeout", 30*time.Second)
	l.IdleTimeout = v.duration(lb.IdleTimeout, lb.IdleTimeoutRange, "idle_timeout", 120*time.Second)
	for _, c := range lb.TrustedProxies {
		p, err := parsePrefix(c)
		if err != nil {
			v.errorf(lb.TrustedProxiesRange, "invalid CIDR", "trusted_proxies: %q: %v", c, err)
			continue
		}
		l.TrustedProxies = append(l.TrustedProxies, p)
	}
	if t := lb.TLS; t != nil {
		l.TLS = v.listenerTLS(lb, t, dataDir)
	}
	return l
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (v *validator) listenerTLS(lb *listenerBlock, t *tlsBlock, dataDir string) *ListenerTLS {
	sc := relaytls.ServerConfig{
		Listener:   lb.Name,
		Address:    lb.Address,
		StorageDir: dataDir,
		MinVersion: str(t.MinVersion, "1.2"),
		Names:      t.Names,
	}
	if sc.MinVersion != "1.2" && sc.MinVersion != "1.3" {
		v.errorf(t.MinVersionRange, "invalid TLS version", "min_version = %q: use \"1.2\" or \"1.3\"", sc.MinVersion)
	}
	sources := 0
	ok := true
	if t.ACME != nil {
		sources++
		a := t.ACME
		if len(a.Domains) == 0 {
			v.errorf(a.DomainsRange, "missing domains", "acme needs at least one domain")
			ok = false
		}
		ac := &relaytls.ACMEConfig{
			Domains:    a.Domains,
			Email:      str(a.Email, ""),
			CA:         str(a.CA, "https://acme-v02.api.letsencrypt.org/directory"),
			Challenges: a.Challenges,
		}
		if u, err := url.Parse(ac.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			v.errorf(a.CARange, "invalid ACME directory", "ca = %q must be an https URL", ac.CA)
			ok = false
		}
		for _, c := range a.Challenges {
			if c != "tls-alpn-01" && c != "http-01" {
				v.errorf(a.ChallengesRange, "unknown challenge", "challenges: %q (use \"tls-alpn-01\" and/or \"http-01\")", c)
				ok = false
			}
		}
		for _, r := range a.CARoots {
			p := resolvePath(v.dir, r)
			ac.CARoots = append(ac.CARoots, p)
			if _, err := relaytls.LoadTrustStore([]string{p}, "", false); err != nil {
				v.errorf(a.CARootsRange, "invalid CA root", "ca_roots: %v", err)
				ok = false
			}
		}
		// Several instances share certificates (and solve each challenge
		// once) by pointing storage at one directory; certmagic's file
		// storage locks inside it.
		if a.Storage != nil {
			sc.StorageDir = resolvePath(v.dir, *a.Storage)
		}
		// The ACME client must know the relay answers HTTP-01 on its own
		// plain listener, or it would try to bind port 80 itself.
		ac.HTTPChallengeAddr = str(t.HTTPChallengeAddress, "")
		sc.ACME = ac
	}
	if t.CertFile != nil || t.KeyFile != nil {
		sources++
		if t.CertFile == nil || t.KeyFile == nil {
			v.errorf(t.DefRange, "incomplete certificate", "cert_file and key_file go together")
			ok = false
		} else {
			sc.CertFile = resolvePath(v.dir, *t.CertFile)
			sc.KeyFile = resolvePath(v.dir, *t.KeyFile)
			if c, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{CertFile: sc.CertFile, KeyFile: sc.KeyFile}); err != nil {
				v.errorf(t.CertFileRange, "invalid certificate", "%v", err)
				ok = false
			} else {
				v.certNote(c.Leaf, c.Certificate, sc.CertFile, t.CertFileRange)
			}
		}
	}
	if boolv(t.SelfSigned, false) {
		sources++
		sc.SelfSigned = true
	}
	if sources != 1 {
		v.errorf(t.DefRange, "ambiguous TLS", "a tls block needs exactly one of: acme { }, cert_file + key_file, self_signed = true")
		ok = false
	}
	if len(t.ClientCA) > 0 {
		for _, f := range t.ClientCA {
			sc.ClientCAs = append(sc.ClientCAs, resolvePath(v.dir, f))
		}
		sc.ClientCAPassword = str(t.ClientCAPassword, "")
		if ts, err := relaytls.LoadTrustStore(sc.ClientCAs, sc.ClientCAPassword, false); err != nil {
			v.errorf(t.ClientCARange, "invalid client CA", "%v", err)
			ok = false
		} else {
			v.trustNotes(ts, t.ClientCARange, "client_ca")
		}
	}
	if ok {
		vc := sc
		if _, port, _ := net.SplitHostPort(vc.Address); port == "0" {
			vc.Address = "" // bound later; the real port is known then
		}
		if err := vc.Validate(); err != nil {
			v.errorf(t.DefRange, "invalid tls block", "%v", err)
		}
	}
	return &ListenerTLS{Server: sc, HTTPChallengeAddress: str(t.HTTPChallengeAddress, "")}
}

// certNote records a certificate's expiry for validate's report, and
// reports an expired one as an error and one expiring within 30 days as
// a warning, at the attribute that names it.
func (v *validator) certNote(leaf *x509.Certificate, chain [][]byte, file string, rng hcl.Range) {
	if leaf == nil && len(chain) > 0 {
		leaf, _ = x509.ParseCertificate(chain[0])
	}
	if leaf == nil {
		return
	}
	v.expiryCheck(leaf, file, rng)
}

func (v *validator) trustNotes(ts *relaytls.TrustStore, rng hcl.Range, what string) {
	if ts == nil {
		return
	}
	for _, c := range ts.Certs {
		v.expiryCheck(c, what, rng)
	}
}

func (v *validator) expiryCheck(c *x509.Certificate, where string, rng hcl.Range) {
	left := time.Until(c.NotAfter)
	name := c.Subject.CommonName
	if name == "" && len(c.DNSNames) > 0 {
		name = c.DNSNames[0]
	}
	v.certs = append(v.certs, fmt.Sprintf("%s: %q expires %s (%d days)", filepath.Base(where), name, c.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)))
	switch {
	case left <= 0:
		v.errorf(rng, "certificate expired", "%s: %q expired on %s", where, name, c.NotAfter.UTC().Format(time.DateOnly))
	case left < 30*24*time.Hour:
		r := rng
		v.diags = append(v.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "certificate expires soon",
			Detail: fmt.Sprintf("%s: %q expires on %s (%d days)", where, name, c.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)), Subject: &r})
	}
}

func (v *validator) trust(files []string, rng hcl.Range, password *string, system *bool, cc *clientCertBlock) TrustConfig {
	tc := TrustConfig{Password: str(password, ""), System: boolv(system, false)}
	for _, f := range files {
		tc.Files = append(tc.Files, resolvePath(v.dir, f))
	}
	if len(tc.Files) > 0 || tc.System {
		ts, err := relaytls.LoadTrustStore(tc.Files, tc.Password, tc.System)
		if err != nil {
			v.errorf(rng, "invalid trust store", "%v", err)
		} else if len(tc.Files) > 0 {
			v.trustNotes(&relaytls.TrustStore{Certs: ts.Certs}, rng, "trust_store")
		}
		tc.Store = ts
	}
	if cc != nil {
		c := &relaytls.ClientCertConfig{
			CertFile: resolvePath(v.dir, str(cc.CertFile, "")),
			KeyFile:  resolvePath(v.dir, str(cc.KeyFile, "")),
			P12File:  resolvePath(v.dir, str(cc.P12File, "")),
			Password: str(cc.Password, ""),
		}
		if cert, err := relaytls.LoadClientCert(*c); err != nil {
			v.errorf(cc.DefRange, "invalid client certificate", "%v", err)
		} else {
			v.certNote(cert.Leaf, cert.Certificate, "client_cert", cc.DefRange)
		}
		tc.ClientCert = c
	}
	return tc
}

func (v *validator) breaker(b *breakerBlock) BreakerConfig {
	bc := BreakerConfig{Failures: 5, OpenFor: 30 * time.Second, HalfOpenRequests: 1}
	if b != nil {
		bc.Failures = v.positive(b.Failures, b.FailuresRange, "failures", 5, false)
		bc.OpenFor = v.duration(b.OpenFor, b.OpenForRange, "open_for", 30*time.Second)
		bc.HalfOpenRequests = v.positive(b.HalfOpenRequests, b.HalfOpenRange, "half_open_requests", 1, false)
	}
	return bc
}

func (v *validator) httpURL(s string, rng hcl.Range, what string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(rng, "invalid URL", "%s %q must be an absolute http:// or https:// URL", what, s)
	}
}

func (v *validator) backend(bb *backendBlock) *BackendConfig {
	b := &BackendConfig{Name: bb.Name, URL: bb.URL}
	v.httpURL(bb.URL, bb.URLRange, "backend url")
	b.Timeout = v.duration(bb.Timeout, bb.TimeoutRange, "timeout", 10*time.Second)
	b.Concurrency = v.positive(bb.Concurrency, bb.ConcurrencyRange, "concurrency", 16, false)
	b.Retry = RetryPolicy{Initial: time.Second, Max: 5 * time.Minute, MaxAge: 168 * time.Hour}
	if r := bb.Retry; r != nil {
		b.Retry.Initial = v.duration(r.Initial, r.InitialRange, "initial", time.Second)
		b.Retry.Max = v.duration(r.Max, r.MaxRange, "max", 5*time.Minute)
		b.Retry.MaxAttempts = v.positive(r.MaxAttempts, r.MaxAttemptsRange, "max_attempts", 0, true)
		b.Retry.MaxAge = v.duration(r.MaxAge, r.MaxAgeRange, "max_age", 168*time.Hour)
		if b.Retry.Initial <= 0 {
			v.errorf(r.InitialRange, "invalid duration", "initial must be more than 0")
		}
		if b.Retry.Max < b.Retry.Initial {
			v.errorf(r.MaxRange, "invalid duration", "max (%s) is shorter than initial (%s)", b.Retry.Max, b.Retry.Initial)
		}
	}
	b.Breaker = v.breaker(bb.Breaker)
	if s := bb.Sign; s != nil {
		if _, err := auth.NewWebhookSigner(s.Secret); err != nil {
			v.errorf(s.SecretRange, "invalid signing secret", "sign: %v (use a Standard Webhooks secret: whsec_ followed by base64)", scrubErr(err, s.Secret))
		}
		b.SignSecret = s.Secret
	}
	b.Trust = v.trust(bb.TrustStore, bb.TrustStoreRange, bb.TrustStorePassword, bb.TrustSystemRoots, bb.ClientCert)
	return b
}

// scrubErr makes sure no error text carries a secret.
func scrubErr(err error, secrets ...string) string {
	s := err.Error()
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

func (v *validator) channel(cb *channelBlock, listeners map[string]*ListenerConfig, backends map[string]*BackendConfig) *ChannelConfig {
	ch := &ChannelConfig{Name: cb.Name, Listener: cb.Listener, Path: cb.Path}
	if _, ok := listeners[cb.Listener]; !ok {
		v.errorf(cb.ListenerRange, "unknown listener", "channel %q names listener %q, which is not defined%s", cb.Name, cb.Listener, didYouMean(cb.Listener, keys(listeners)))
	}
	if !strings.HasPrefix(cb.Path, "/") {
		v.errorf(cb.PathRange, "invalid path", "channel %q path %q must start with /", cb.Name, cb.Path)
	}
	ch.Provider = str(cb.Provider, "generic")
	p, ok := profile.Lookup(ch.Provider)
	if !ok {
		v.errorf(cb.ProviderRange, "unknown provider", "provider %q: use one of %s", ch.Provider, strings.Join(profile.Names(), ", "))
		p, _ = profile.Lookup("generic")
	}
	ch.Profile = p
	ch.Response = p.Success
	if cb.ResponseBody != nil {
		ch.Response.Body = []byte(*cb.ResponseBody)
		ch.Response.ContentType = str(cb.ResponseContentType, "text/plain; charset=utf-8")
	}
	ch.PublicURL = str(cb.PublicURL, "")
	if ch.PublicURL != "" {
		u, err := url.Parse(ch.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			v.errorf(cb.PublicURLRange, "invalid public_url", "public_url %q must be an absolute URL without a query", ch.PublicURL)
		}
	}
	ch.VerifyToken = str(cb.VerifyToken, "")
	ch.ProfileOptions = profile.Options{EventIDHeader: str(cb.EventIDHeader, ""), OrderKeyHeader: str(cb.OrderKeyHeader, "")}
	ch.Methods = []string{"POST"}
	if len(cb.Methods) > 0 {
		ch.Methods = nil
		for _, m := range cb.Methods {
			m = strings.ToUpper(m)
			if !slices.Contains([]string{"POST", "PUT", "GET", "PATCH"}, m) {
				v.errorf(cb.MethodsRange, "invalid method", "methods: %q (use POST, PUT, PATCH or GET)", m)
			}
			ch.Methods = append(ch.Methods, m)
		}
	}
	canOrder := p.OrdersBy(ch.ProfileOptions)
	switch o := str(cb.Ordering, ""); o {
	case "":
		ch.Ordered = canOrder
	case "sender":
		ch.Ordered = true
		if !canOrder {
			v.errorf(cb.OrderingRange, "ordering unavailable", "provider %q does not know the sender; set order_key_header or ordering = \"none\"", ch.Provider)
		}
	case "none":
	default:
		v.errorf(cb.OrderingRange, "invalid ordering", "ordering = %q: use \"sender\" or \"none\"", o)
	}
	ch.DedupeWindow = v.duration(cb.DedupeWindow, cb.DedupeWindowRange, "dedupe_window", 24*time.Hour)
	ch.RejectStatus = 401
	if cb.RejectStatus != nil {
		ch.RejectStatus = *cb.RejectStatus
		if ch.RejectStatus < 400 || ch.RejectStatus > 599 {
			v.errorf(cb.RejectStatusRange, "invalid status", "reject_status = %d must be a 4xx or 5xx code", ch.RejectStatus)
		}
	}
	ch.ClientNames = cb.ClientNames
	if len(cb.ClientNames) > 0 {
		if l := listeners[cb.Listener]; l != nil && (l.TLS == nil || len(l.TLS.Server.ClientCAs) == 0) {
			v.errorf(cb.ClientNamesRange, "client_names without mTLS", "client_names needs listener %q to have tls { client_ca = [...] }", cb.Listener)
		}
	}

	ch.Auth = v.authBlocks(cb.Auth, p, ch.PublicURL, cb.PublicURLRange, listeners[cb.Listener], fmt.Sprintf("channel %q", cb.Name))
	if len(cb.Auth) == 0 {
		v.errorf(cb.DefRange, "missing authentication", "channel %q has no auth block: add one (provider %q normally uses auth %q { ... }), or write auth \"none\" {} to accept unauthenticated callbacks on purpose", cb.Name, ch.Provider, p.DefaultAuth)
	}

	checkBackends := func(list []string, rng hcl.Range) {
		for _, b := range list {
			if _, ok := backends[b]; !ok {
				v.errorf(rng, "unknown backend", "backend %q is not defined%s", b, didYouMean(b, keys(backends)))
			}
		}
	}
	ch.ForwardTo = cb.ForwardTo
	checkBackends(cb.ForwardTo, cb.ForwardToRange)
	catchAll := false
	for _, rb := range cb.Routes {
		if len(rb.ForwardTo) == 0 {
			v.errorf(rb.ForwardToRange, "empty route", "a route must forward to at least one backend")
		}
		checkBackends(rb.ForwardTo, rb.ForwardToRange)
		for k := range rb.When {
			if len(p.RouteFields) > 0 && !slices.Contains(p.RouteFields, k) {
				v.errorf(rb.WhenRange, "unknown route field", "provider %q has no route field %q: it knows %s", ch.Provider, k, strings.Join(p.RouteFields, ", "))
			}
		}
		if len(rb.When) == 0 {
			catchAll = true
		}
		ch.Routes = append(ch.Routes, Route{When: rb.When, ForwardTo: rb.ForwardTo})
	}
	if len(cb.ForwardTo) == 0 && !catchAll {
		v.errorf(cb.DefRange, "missing forward_to", "channel %q needs forward_to (where events go when no route matches), or a route without when", cb.Name)
	}
	return ch
}

// authBlocks builds the verifiers of a channel (or of an upstream's
// caller_auth), filling defaults from the provider profile.
func (v *validator) authBlocks(blocks []authBlock, p *profile.Profile, publicURL string, publicRange hcl.Range, l *ListenerConfig, owner string) []AuthConfig {
	var out []AuthConfig
	hasNone := false
	for _, ab := range blocks {
		ac := AuthConfig{Type: ab.Type}
		var err error
		switch ab.Type {
		case "none":
			hasNone = true
			var b noneAuthBody
			v.diags = append(v.diags, gohcl.DecodeBody(ab.Body, v.ctx, &b)...)
			ac.Verifier = auth.None{}
		case "hmac":
			var b hmacAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.HMACConfig{Secrets: v.secrets(b.Secrets, b.SecretsRange, "secrets")}
				if p != nil && p.HMAC != nil {
					c.Header, c.Algorithm, c.Encoding, c.Prefix, c.PrefixOptional = p.HMAC.Header, p.HMAC.Algorithm, p.HMAC.Encoding, p.HMAC.Prefix, p.HMAC.PrefixOptional
				}
				c.Header = str(b.Header, c.Header)
				c.Algorithm = str(b.Algorithm, c.Algorithm)
				c.Encoding = str(b.Encoding, c.Encoding)
				c.Prefix = str(b.Prefix, c.Prefix)
				c.PrefixOptional = boolv(b.PrefixOptional, c.PrefixOptional)
				if c.Header == "" {
					v.errorf(ab.DefRange, "missing header", "%s: auth \"hmac\" needs header = \"...\" (the provider profile has no default)", owner)
				}
				ac.HMAC = &c
				if len(c.Secrets) > 0 && c.Header != "" {
					ac.Verifier, err = auth.NewHMAC(c)
					v.authErr(err, ab.DefRange, owner, c.Secrets...)
				}
			}
		case "basic":
			var b basicAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.BasicConfig{}
				if len(b.Users) == 0 {
					v.errorf(ab.DefRange, "no users", "%s: auth \"basic\" needs at least one user \"NAME\" { password = ... }", owner)
				}
				var pw []string
				for _, u := range b.Users {
					bu := auth.BasicUser{Name: u.Name, Password: u.Password}
					pw = append(pw, u.Password)
					if u.Password == "" {
						v.errorf(u.PassRange, "empty password", "%s: user %q has an empty password", owner, u.Name)
					}
					if u.Expires != nil {
						t, perr := time.Parse("2006-01-02", *u.Expires)
						if perr != nil {
							v.errorf(u.ExpiresRange, "invalid date", "expires = %q: write YYYY-MM-DD", *u.Expires)
						}
						bu.Expires = t.UTC()
					}
					c.Users = append(c.Users, bu)
				}
				ac.Basic = &c
				if len(c.Users) > 0 {
					ac.Verifier, err = auth.NewBasic(c)
					v.authErr(err, ab.DefRange, owner, pw...)
				}
			}
		case "header":
			var b headerAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.HeaderConfig{Name: str(b.Name, ""), Values: v.secrets(b.Values, b.ValuesRange, "values")}
				if c.Name == "" && p != nil {
					c.Name = p.HeaderName
				}
				if c.Name == "" {
					v.errorf(ab.DefRange, "missing header name", "%s: auth \"header\" needs name = \"...\"", owner)
				}
				ac.Header = &c
				if c.Name != "" && len(c.Values) > 0 {
					ac.Verifier, err = auth.NewHeader(c)
					v.authErr(err, ab.DefRange, owner, c.Values...)
				}
			}
		case "jwt":
			var b jwtAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.JWTConfig{Header: "Authorization", Scheme: "Bearer"}
				if p != nil && p.JWT != nil {
					c.Header, c.Scheme, c.Algorithms, c.PayloadHash, c.URLHash = p.JWT.Header, p.JWT.Scheme, p.JWT.Algorithms, p.JWT.PayloadHash, p.JWT.URLHash
				}
				c.Header = str(b.Header, c.Header)
				c.Scheme = str(b.Scheme, c.Scheme)
				if len(b.Algorithms) > 0 {
					c.Algorithms = b.Algorithms
				}
				if len(c.Algorithms) == 0 {
					v.errorf(ab.DefRange, "missing algorithms", "%s: auth \"jwt\" needs algorithms = [...], e.g. [\"HS256\"]", owner)
				}
				for _, s := range b.Secrets {
					if s != "" {
						c.Secrets = append(c.Secrets, s)
					}
				}
				if b.Secrets != nil && len(c.Secrets) == 0 {
					v.errorf(b.SecretsRange, "empty secret list", "secrets has no non-empty value")
				}
				for _, f := range b.PublicKeys {
					data, rerr := os.ReadFile(resolvePath(v.dir, f))
					if rerr != nil {
						v.errorf(b.PublicKeysRange, "unreadable key", "public_keys: %v", rerr)
						continue
					}
					c.PublicKeys = append(c.PublicKeys, data)
				}
				if b.JWKSFile != nil {
					data, rerr := os.ReadFile(resolvePath(v.dir, *b.JWKSFile))
					if rerr != nil {
						v.errorf(b.JWKSFileRange, "unreadable JWKS", "jwks_file: %v", rerr)
					}
					c.JWKS = data
				}
				if len(c.Secrets) == 0 && len(c.PublicKeys) == 0 && len(c.JWKS) == 0 {
					v.errorf(ab.DefRange, "missing keys", "%s: auth \"jwt\" needs secrets, public_keys or jwks_file", owner)
				}
				c.Issuer = str(b.Issuer, "")
				c.Audience = str(b.Audience, "")
				c.Leeway = v.duration(b.Leeway, b.LeewayRange, "leeway", 30*time.Second)
				c.RequireExp = boolv(b.RequireExp, false)
				c.PayloadHash = boolv(b.PayloadHash, c.PayloadHash)
				c.URLHash = boolv(b.URLHash, c.URLHash)
				if c.URLHash && publicURL == "" {
					v.errorf(ab.DefRange, "missing public_url", "%s: url_hash needs the channel's public_url", owner)
				}
				ac.JWT = &c
				if len(c.Algorithms) > 0 && (len(c.Secrets) > 0 || len(c.PublicKeys) > 0 || len(c.JWKS) > 0) {
					ac.Verifier, err = auth.NewJWT(c)
					v.authErr(err, ab.DefRange, owner, c.Secrets...)
				}
			}
		case "twilio":
			var b twilioAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.TwilioConfig{AuthTokens: v.secrets(b.AuthTokens, b.AuthTokensRange, "auth_tokens")}
				if publicURL == "" {
					v.errorf(ab.DefRange, "missing public_url", "%s: auth \"twilio\" needs public_url (the URL exactly as configured in Twilio's console, e.g. \"https://hooks.example.com/hooks/twilio\")", owner)
				}
				ac.Twilio = &c
				if len(c.AuthTokens) > 0 {
					ac.Verifier, err = auth.NewTwilio(c)
					v.authErr(err, ab.DefRange, owner, c.AuthTokens...)
				}
			}
		case "standard_webhooks":
			var b standardWebhooksAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.StandardWebhooksConfig{Secrets: v.secrets(b.Secrets, b.SecretsRange, "secrets")}
				c.Tolerance = v.duration(b.Tolerance, b.ToleranceRange, "tolerance", 5*time.Minute)
				ac.Standard = &c
				if len(c.Secrets) > 0 {
					ac.Verifier, err = auth.NewStandardWebhooks(c)
					v.authErr(err, b.SecretsRange, owner, c.Secrets...)
				}
			}
		case "ip_allow":
			var b ipAllowAuthBody
			if v.decode(ab.Body, &b) {
				c := auth.IPAllowConfig{}
				if l != nil {
					c.TrustedProxies = l.TrustedProxies
				}
				for _, s := range b.CIDRs {
					pf, perr := parsePrefix(s)
					if perr != nil {
						v.errorf(b.CIDRsRange, "invalid CIDR", "cidrs: %q: %v", s, perr)
						continue
					}
					c.CIDRs = append(c.CIDRs, pf)
				}
				if len(b.CIDRs) == 0 {
					v.errorf(b.CIDRsRange, "empty CIDR list", "cidrs needs at least one range")
				}
				if len(c.CIDRs) > 0 {
					ac.Verifier, err = auth.NewIPAllow(c)
					v.authErr(err, ab.DefRange, owner)
				}
			}
		default:
			v.errorf(ab.TypeRange, "unknown auth type", "auth %q: use one of none, hmac, basic, header, jwt, twilio, standard_webhooks, ip_allow", ab.Type)
		}
		out = append(out, ac)
	}
	if hasNone && len(blocks) > 1 {
		v.errorf(blocks[0].DefRange, "contradictory auth", "%s: auth \"none\" cannot be combined with other auth blocks", owner)
	}
	return out
}

func (v *validator) decode(body hcl.Body, target any) bool {
	d := gohcl.DecodeBody(body, v.ctx, target)
	v.diags = append(v.diags, d...)
	return !d.HasErrors()
}

func (v *validator) authErr(err error, rng hcl.Range, owner string, secrets ...string) {
	if err != nil {
		v.errorf(rng, "invalid auth block", "%s: %s", owner, scrubErr(err, secrets...))
	}
}

func (v *validator) upstream(ub *upstreamBlock, listeners map[string]*ListenerConfig) *UpstreamConfig {
	u := &UpstreamConfig{Name: ub.Name, Listener: ub.Listener, Path: ub.Path, BaseURL: ub.BaseURL, AllowPaths: ub.AllowPaths}
	if _, ok := listeners[ub.Listener]; !ok {
		v.errorf(ub.ListenerRange, "unknown listener", "upstream %q names listener %q, which is not defined%s", ub.Name, ub.Listener, didYouMean(ub.Listener, keys(listeners)))
	}
	if !strings.HasPrefix(ub.Path, "/") || !strings.HasSuffix(ub.Path, "/") {
		v.errorf(ub.PathRange, "invalid path", "upstream %q path %q must start and end with /", ub.Name, ub.Path)
	}
	v.httpURL(ub.BaseURL, ub.BaseURLRange, "base_url")
	if len(ub.AllowPaths) == 0 {
		v.errorf(ub.AllowPathsRange, "empty allow_paths", "upstream %q must allow at least one path pattern", ub.Name)
	}
	for _, p := range ub.AllowPaths {
		if !strings.HasPrefix(p, "/") {
			v.errorf(ub.AllowPathsRange, "invalid pattern", "allow_paths: %q must start with /", p)
		}
	}
	u.AllowMethods = []string{"GET", "POST"}
	if len(ub.AllowMethods) > 0 {
		u.AllowMethods = nil
		for _, m := range ub.AllowMethods {
			m = strings.ToUpper(m)
			if m == "CONNECT" || m == "TRACE" {
				v.errorf(ub.AllowMethodsRange, "method not allowed", "allow_methods: %s is never forwarded", m)
			}
			u.AllowMethods = append(u.AllowMethods, m)
		}
	}
	u.Timeout = v.duration(ub.Timeout, ub.TimeoutRange, "timeout", 30*time.Second)
	u.ConnectTimeout = v.duration(ub.ConnectTimeout, ub.ConnectTimeoutRange, "connect_timeout", 5*time.Second)
	u.MaxBody = v.size(ub.MaxBody, ub.MaxBodyRange, "max_body", 32<<20)
	u.Concurrency = v.positive(ub.Concurrency, ub.ConcurrencyRange, "concurrency", 64, false)
	u.Trust = v.trust(ub.TrustStore, ub.TrustStoreRange, ub.TrustStorePassword, ub.TrustSystemRoots, ub.ClientCert)
	u.Breaker = v.breaker(ub.Breaker)
	for _, ib := range ub.Inject {
		ic := InjectConfig{Type: ib.Type}
		switch ib.Type {
		case "header":
			var b injectHeaderBody
			if v.decode(ib.Body, &b) {
				ic.Name, ic.Value = b.Name, b.Value
			}
		case "basic":
			var b injectBasicBody
			if v.decode(ib.Body, &b) {
				ic.Username, ic.Password = b.Username, b.Password
			}
		case "bearer":
			var b injectBearerBody
			if v.decode(ib.Body, &b) {
				ic.Token = b.Token
				if b.Expires != nil {
					t, err := time.Parse("2006-01-02", *b.Expires)
					if err != nil {
						v.errorf(b.ExpiresRange, "invalid date", "expires = %q: write YYYY-MM-DD", *b.Expires)
					}
					ic.Expires = t.UTC()
				}
			}
		case "oauth2":
			var b injectOAuth2Body
			if v.decode(ib.Body, &b) {
				ic.TokenURL, ic.ClientID, ic.ClientSecret, ic.Scopes = b.TokenURL, b.ClientID, b.ClientSecret, b.Scopes
				v.httpURL(b.TokenURL, b.TokenURLRange, "token_url")
				if len(b.TrustStore) > 0 {
					tc := v.trust(b.TrustStore, b.TrustStoreRange, ub.TrustStorePassword, nil, nil)
					ic.OAuthTrust = &tc
				}
			}
		default:
			v.errorf(ib.TypeRange, "unknown inject type", "inject %q: use header, basic, bearer or oauth2", ib.Type)
		}
		u.Inject = append(u.Inject, ic)
	}
	for _, ab := range ub.CallerAuth {
		switch ab.Type {
		case "hmac", "twilio", "standard_webhooks", "none":
			v.errorf(ab.TypeRange, "unsupported caller_auth", "caller_auth %q: outbound bodies are streamed, not buffered, so use header, basic, jwt or ip_allow (or leave caller_auth out)", ab.Type)
		}
	}
	if len(ub.CallerAuth) > 0 {
		u.CallerAuth = v.authBlocks(ub.CallerAuth, nil, "", hcl.Range{}, listeners[ub.Listener], fmt.Sprintf("upstream %q caller_auth", ub.Name))
	}
	return u
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func didYouMean(name string, known []string) string {
	if len(known) == 0 {
		return ""
	}
	if s := nearest(name, known); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Sprintf(" (defined: %s)", strings.Join(known, ", "))
}

// nearest returns the known name within edit distance 2 of name, if any.
func nearest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// ParseDuration is time.ParseDuration plus a "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") && !strings.ContainsAny(s[:len(s)-1], "hmsuµn") {
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("bad number of days")
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// ParseSize reads "10GiB", "3MiB", "512KB", "1024" (bytes).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(f * float64(mult)), nil
}

// FormatDiagnostics renders diagnostics one per line as
// "file:line:col: error: summary: detail".
func FormatDiagnostics(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		pos := ""
		if d.Subject != nil {
			pos = fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "%s%s: %s", pos, sev, d.Summary)
		if d.Detail != "" {
			fmt.Fprintf(&b, ": %s", d.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Summary is the one-line description `validate` prints for a valid file.
func (c *Config) Summary() string {
	return fmt.Sprintf("%s: valid: %d listener(s), %d channel(s), %d backend(s), %d upstream(s); data_dir %s",
		filepath.Base(c.File), len(c.Listeners), len(c.Channels), len(c.Backends), len(c.Upstreams), c.DataDir)
}
