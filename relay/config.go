package relay

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
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
	// TrustCerts are the trust-store and client certificates by owner
	// (listener, backend, upstream), exported while running as
	// edgerelay_trust_certificate_expiry_seconds.
	TrustCerts []TrustCert
}

// TrustCert is one trust-store or client certificate and its end date.
type TrustCert struct {
	Owner, Subject string
	NotAfter       time.Time
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
	// MaxConnections bounds the open connections (default 10000; 0 = no
	// limit); MaxConnectionsPerIP bounds those of one client address
	// (default 512, or 0 = no limit when TrustedProxies is set, since the
	// proxies then hold every connection). Connections beyond are closed
	// at accept.
	MaxConnections, MaxConnectionsPerIP int
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
	// AuthHeaders are the headers the auth blocks read (canonical names):
	// dropped before an event is stored.
	AuthHeaders []string
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
	// Quarantine keeps callbacks refused for a wrong secret (nil: none).
	Quarantine *QuarantineConfig
}

// QuarantineConfig is a channel's quarantine block (SPEC §13).
type QuarantineConfig struct {
	// MaxSize bounds the channel's quarantine on disk in bytes (default 64 MiB).
	MaxSize int64
	// Keep is how long a kept callback stays (default 72h).
	Keep time.Duration
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
	// Exactly one of URL, Kafka and NATS is set.
	URL   string
	Kafka *KafkaConfig
	NATS  *NATSConfig
	// Timeout of one delivery attempt (default 10s).
	Timeout time.Duration
	// Concurrency is the number of deliveries in flight (default 16; 2048
	// on a bus).
	Concurrency int
	Retry       RetryPolicy
	Breaker     BreakerConfig
	// SignSecret, when set, signs deliveries with Standard Webhooks headers.
	SignSecret string
	Trust      TrustConfig
	// Inject are the credentials added to every attempt (never logged).
	Inject []InjectConfig
	// Headers are static headers added to every attempt; they replace
	// forwarded headers of the same name (injected ones win over them).
	Headers map[string]string
	// PassAuthorization forwards the BSP's Authorization header unchanged
	// (default false: it is stripped).
	PassAuthorization bool
	// Proxy is the egress proxy: "" direct (default), "env", or
	// "http://[user:pass@]host:port".
	Proxy string
	// Rate paces attempts, in attempts per second (0 = no limit).
	Rate float64
}

// InjectConfig is one credential an upstream or a backend adds to the
// requests it makes (see package inject for what each type does).
type InjectConfig struct {
	Type                   string // header, basic, bearer, oauth2, jwt, hmac, huawei_iam
	Name, Value            string
	Username, Password     string // basic; huawei_iam
	Token                  string
	Expires                time.Time // header, bearer
	TokenURL               string
	ClientID, ClientSecret string
	Scopes                 []string
	OAuthTrust             *TrustConfig
	// jwt (Algorithm, Secret, PrivateKey, Claims, TTL, Header, Scheme) and
	// hmac (Secret, Header, Algorithm, Encoding, Prefix).
	Algorithm, Secret string
	PrivateKey        []byte
	Claims            map[string]string
	TTL               time.Duration
	Header            string
	Scheme            string
	Encoding          string
	Prefix            *string
	IAMURL            string // huawei_iam, with Username, Password
	Domain, Project   string
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
	// Proxy is the egress proxy (as for backends); Rate the most calls
	// per second (0 = no limit; the excess gets 429).
	Proxy string
	Rate  float64
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
	// gohcl reports a missing required attribute or a failed expression
	// and still decodes everything else, so the validator runs on what
	// could be decoded: one pass reports every problem of the file.
	var fc fileConfig
	decoded := gohcl.DecodeBody(f.Body, evalContext(dir), &fc)
	v := &validator{dir: dir, file: name, ctx: evalContext(dir)}
	cfg := v.build(&fc)
	cfg.File, cfg.Dir = abs, dir
	cfg.Certificates = v.certs
	cfg.TrustCerts = v.trustCerts
	diags = append(diags, decoded...)
	diags = append(diags, withoutConsequences(v.diags, decoded)...)
	diags = withoutUnknownEchoes(diags)
	// gohcl walks attributes in map order: sort for stable output.
	sort.SliceStable(diags, func(i, j int) bool { return diagBefore(diags[i], diags[j]) })
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
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
	file  string // the name diagnostics use
	ctx   *hcl.EvalContext
	diags hcl.Diagnostics
	certs []string // certificate expiries, for validate's report
	// owner is the block being validated ("backend crm"), for TrustCerts.
	owner      string
	trustCerts []TrustCert
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

	cfg.Admin = v.admin(fc.Admin, fc.DataDirRange.Filename)

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
		v.upstreamExposure(ub, u, listeners[u.Listener], cfg.Channels)
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
	// An upstream under a prefix channel would never be reached.
	for _, ch := range cfg.Channels {
		base, ok := strings.CutSuffix(ch.Path, "/*")
		if !ok {
			continue
		}
		for i := range fc.Upstreams {
			ub := &fc.Upstreams[i]
			if ub.Listener == ch.Listener && strings.HasPrefix(ub.Path, base+"/") {
				v.errorf(ub.PathRange, "path under a prefix channel", "upstream %q path %q lies under channel %q path %q on listener %q", ub.Name, ub.Path, ch.Name, ch.Path, ch.Listener)
			}
		}
	}
	if len(cfg.Channels) == 0 && len(cfg.Upstreams) == 0 {
		v.errorf(hcl.Range{Filename: v.file, Start: hcl.InitialPos, End: hcl.InitialPos},
			"nothing to do", "the configuration has no channel and no upstream block")
	}
	return cfg
}

// Summary is the one-line description `validate` prints for a valid file.
func (c *Config) Summary() string {
	return fmt.Sprintf("%s: valid: %d listener(s), %d channel(s), %d backend(s), %d upstream(s); data_dir %s",
		filepath.Base(c.File), len(c.Listeners), len(c.Channels), len(c.Backends), len(c.Upstreams), c.DataDir)
}
