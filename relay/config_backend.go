package relay

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/hashicorp/hcl/v2"
)

// Backends, upstreams and the breaker setting they share.

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
	b := &BackendConfig{Name: bb.Name}
	bus := v.destination(bb, b)
	b.Timeout = v.duration(bb.Timeout, bb.TimeoutRange, "timeout", 10*time.Second)
	b.Concurrency = v.positive(bb.Concurrency, bb.ConcurrencyRange, "concurrency", map[bool]int{false: 16, true: defaultBusConcurrency}[bus], false)
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
