package relay

import (
	stdtls "crypto/tls"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/inject"
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
	v.owner = "backend " + bb.Name
	defer func() { v.owner = "" }()
	bus := v.destination(bb, b)
	b.Timeout = v.duration(bb.Timeout, bb.TimeoutRange, "timeout", 10*time.Second)
	if bb.Timeout != nil && b.Timeout == 0 {
		v.errorf(bb.TimeoutRange, "invalid duration", "timeout = %q: a backend's timeout must be longer than zero (every attempt would fail at once); leave it out for the default, 10s", *bb.Timeout)
	}
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
	b.Inject = v.injects(bb.Inject, fmt.Sprintf("backend %q", bb.Name), bb.TrustStorePassword)
	seen := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(bb.Headers)) {
		val := bb.Headers[k]
		c := http.CanonicalHeaderKey(k)
		if other, dup := seen[c]; dup {
			v.errorf(bb.HeadersRange, "duplicate header", "headers: %q and %q name the same header (names are case-insensitive): keep one", other, k)
		}
		seen[c] = k
		switch {
		case k == "" || strings.ContainsAny(k, " \t\r\n:()<>@,;\\\"/[]?={}"):
			v.errorf(bb.HeadersRange, "invalid header name", "headers: %q is not a header name", k)
		case strings.ContainsAny(val, "\r\n\x00"):
			v.errorf(bb.HeadersRange, "invalid header value", "headers: the value of %s has control characters", k)
		case c == "Host" || c == "Content-Length" || c == "Transfer-Encoding" || c == "Connection" || strings.HasPrefix(c, "X-Relay-"):
			v.errorf(bb.HeadersRange, "header not allowed", "headers: %s is set by the relay", c)
		}
	}
	b.Headers = bb.Headers
	b.PassAuthorization = bb.PassAuthorization != nil && *bb.PassAuthorization
	b.Proxy = v.proxy(bb.Proxy, bb.ProxyRange)
	b.Rate = v.rate(bb.Rate, bb.RateRange)
	return b
}

// backendURL checks a backend url: absolute http(s), with the placeholders
// {path} and {query} allowed only in its path and query.
func (v *validator) backendURL(s string, rng hcl.Range) {
	rest := s
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	if strings.ContainsAny(host, "{}") {
		v.errorf(rng, "placeholder in host", "backend url %q: {path} and {query} may only appear in the path or query, never in the scheme or host", s)
		return
	}
	plain := strings.NewReplacer("{path}", "", "{query}", "").Replace(s)
	if strings.ContainsAny(plain, "{}") {
		v.errorf(rng, "unknown placeholder", "backend url %q: the only placeholders are {path} and {query}", s)
		return
	}
	v.httpURL(plain, rng, "backend url")
}

// injects decodes inject blocks (shared by upstreams and backends) and
// checks them with the same code that runs them.
func (v *validator) injects(blocks []injectBlock, owner string, trustPassword *string) []InjectConfig {
	var out []InjectConfig
	for _, ib := range blocks {
		ic := InjectConfig{Type: ib.Type}
		ok := true
		switch ib.Type {
		case "header":
			var b injectHeaderBody
			if ok = v.decode(ib.Body, &b); ok {
				ic.Name, ic.Value = b.Name, b.Value
				ic.Expires = v.date(b.Expires, b.ExpiresRange)
			}
		case "basic":
			var b injectBasicBody
			if ok = v.decode(ib.Body, &b); ok {
				ic.Username, ic.Password = b.Username, b.Password
			}
		case "bearer":
			var b injectBearerBody
			if ok = v.decode(ib.Body, &b); ok {
				ic.Token = b.Token
				ic.Expires = v.date(b.Expires, b.ExpiresRange)
			}
		case "oauth2":
			var b injectOAuth2Body
			if ok = v.decode(ib.Body, &b); ok {
				ic.TokenURL, ic.ClientID, ic.ClientSecret, ic.Scopes = b.TokenURL, b.ClientID, b.ClientSecret, b.Scopes
				v.httpURL(b.TokenURL, b.TokenURLRange, "token_url")
				if len(b.TrustStore) > 0 {
					tc := v.trust(b.TrustStore, b.TrustStoreRange, trustPassword, nil, nil)
					ic.OAuthTrust = &tc
				}
			}
		case "jwt":
			var b injectJWTBody
			if ok = v.decode(ib.Body, &b); ok {
				ic.Algorithm, ic.Secret, ic.Claims = b.Algorithm, str(b.Secret, ""), b.Claims
				ic.Header, ic.Scheme = str(b.Header, ""), str(b.Scheme, "Bearer")
				ic.TTL = v.duration(b.TTL, b.TTLRange, "ttl", 5*time.Minute)
				if ic.TTL <= 0 {
					v.errorf(b.TTLRange, "invalid duration", "ttl must be more than 0")
				}
				switch ic.Algorithm {
				case "HS256", "HS384", "HS512":
					if ic.Secret == "" {
						v.errorf(ib.DefRange, "missing secret", "%s: inject \"jwt\" with %s needs secret = \"...\"", owner, ic.Algorithm)
						ok = false
					}
				case "RS256", "ES256":
					if b.PrivateKeyFile == nil || *b.PrivateKeyFile == "" {
						v.errorf(ib.DefRange, "missing private key", "%s: inject \"jwt\" with %s needs private_key_file = \"...\"", owner, ic.Algorithm)
						ok = false
						break
					}
					pem, err := os.ReadFile(resolvePath(v.dir, *b.PrivateKeyFile))
					if err != nil {
						if pe, ok := err.(*fs.PathError); ok {
							err = pe.Err
						}
						v.errorf(b.PrivateKeyRange, "unreadable file", "private_key_file %q: %v", *b.PrivateKeyFile, err)
						ok = false
						break
					}
					if err := inject.ParsePrivateKey(ic.Algorithm, pem); err != nil {
						v.errorf(b.PrivateKeyRange, "invalid private key", "private_key_file: %v", err)
						ok = false
					}
					ic.PrivateKey = pem
				default:
					v.errorf(b.AlgorithmRange, "invalid algorithm", "algorithm = %q: use one of %s", ic.Algorithm, strings.Join(inject.JWTAlgorithms, ", "))
					ok = false
				}
			}
		case "hmac":
			var b injectHMACBody
			if ok = v.decode(ib.Body, &b); ok {
				ic.Secret, ic.Header, ic.Algorithm, ic.Encoding, ic.Prefix = b.Secret, str(b.Header, ""), str(b.Algorithm, "sha256"), str(b.Encoding, "hex"), b.Prefix
				if ic.Secret == "" {
					v.errorf(b.SecretRange, "missing secret", "%s: inject \"hmac\" needs a non-empty secret", owner)
					ok = false
				}
				if !slices.Contains([]string{"sha1", "sha256", "sha512"}, ic.Algorithm) {
					v.errorf(b.AlgorithmRange, "invalid algorithm", "algorithm = %q: use sha1, sha256 or sha512", ic.Algorithm)
					ok = false
				}
				if ic.Encoding != "hex" && ic.Encoding != "base64" {
					v.errorf(b.EncodingRange, "invalid encoding", "encoding = %q: use hex or base64", ic.Encoding)
					ok = false
				}
			}
		case "huawei_iam":
			var b injectIAMBody
			if ok = v.decode(ib.Body, &b); ok {
				ic.IAMURL, ic.Domain, ic.Username, ic.Password, ic.Project = b.IAMURL, b.Domain, b.Username, b.Password, str(b.Project, "")
				v.httpURL(b.IAMURL, b.IAMURLRange, "iam_url")
				if ic.Password == "" {
					v.errorf(b.PassRange, "missing password", "%s: inject \"huawei_iam\" needs a non-empty password", owner)
					ok = false
				}
			}
		default:
			v.errorf(ib.TypeRange, "unknown inject type", "inject %q: use header, basic, bearer, oauth2, jwt, hmac or huawei_iam", ib.Type)
			ok = false
		}
		if !ok {
			continue
		}
		// What is left (header names, control characters, empty values)
		// is checked by the code that runs the injector.
		if _, err := inject.Compile(owner, []inject.Spec{injectSpec(ic, nil)}, nil, nil, 0); err != nil {
			v.errorf(ib.DefRange, "invalid inject block", "%s", scrubErr(err, ic.Password, ic.Secret, ic.Token, ic.Value, ic.ClientSecret))
		}
		out = append(out, ic)
	}
	if len(out) == len(blocks) && len(out) > 1 {
		specs := make([]inject.Spec, len(out))
		for i, ic := range out {
			specs[i] = injectSpec(ic, nil)
		}
		if _, err := inject.Compile(owner, specs, nil, nil, 0); err != nil {
			v.errorf(blocks[len(blocks)-1].DefRange, "invalid inject block", "%s", err.Error())
		}
	}
	return out
}

// injectSpec turns a validated inject block into what package inject runs;
// tc is the TLS of an oauth2 block's own trust store (nil: the owner's).
func injectSpec(ic InjectConfig, tc *stdtls.Config) inject.Spec {
	switch ic.Type {
	case "header":
		return inject.Header{Name: ic.Name, Value: ic.Value, Expires: ic.Expires}
	case "basic":
		return inject.Basic{Username: ic.Username, Password: ic.Password}
	case "bearer":
		return inject.Bearer{Token: ic.Token, Expires: ic.Expires}
	case "oauth2":
		return inject.OAuth2{TokenURL: ic.TokenURL, ClientID: ic.ClientID, ClientSecret: ic.ClientSecret, Scopes: ic.Scopes, TLS: tc}
	case "jwt":
		return inject.JWT{Algorithm: ic.Algorithm, Secret: ic.Secret, PrivateKey: ic.PrivateKey, Claims: ic.Claims,
			TTL: ic.TTL, Header: ic.Header, Scheme: ic.Scheme}
	case "hmac":
		return inject.HMAC{Secret: ic.Secret, Header: ic.Header, Algorithm: ic.Algorithm, Encoding: ic.Encoding, Prefix: ic.Prefix}
	case "huawei_iam":
		return inject.HuaweiIAM{IAMURL: ic.IAMURL, Domain: ic.Domain, Username: ic.Username, Password: ic.Password, Project: ic.Project}
	}
	return nil
}

// proxy checks a proxy setting: "env" or an http(s) URL.
func (v *validator) proxy(p *string, rng hcl.Range) string {
	if p == nil {
		return ""
	}
	if _, err := inject.Proxy(*p); err != nil || *p == "" {
		msg := "proxy must be \"env\" or http://[user:pass@]host:port"
		if err != nil {
			msg = err.Error()
		}
		v.errorf(rng, "invalid proxy", "%s", msg)
	}
	return *p
}

// rate parses "N/s" or "N/m" into events per second (0 when unset).
func (v *validator) rate(r *string, rng hcl.Range) float64 {
	if r == nil {
		return 0
	}
	n, unit, found := strings.Cut(strings.TrimSpace(*r), "/")
	f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if !found || err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		v.errorf(rng, "invalid rate", "rate = %q: write a positive number per second or minute, e.g. \"200/s\" or \"600/m\"", *r)
		return 0
	}
	switch strings.TrimSpace(unit) {
	case "s":
		return f
	case "m":
		return f / 60
	}
	v.errorf(rng, "invalid rate", "rate = %q: the unit is /s or /m", *r)
	return 0
}

// date parses an optional YYYY-MM-DD end date (00:00 UTC that day).
func (v *validator) date(s *string, rng hcl.Range) time.Time {
	if s == nil {
		return time.Time{}
	}
	t, err := time.Parse("2006-01-02", *s)
	if err != nil {
		v.errorf(rng, "invalid date", "expires = %q: write YYYY-MM-DD", *s)
	}
	return t.UTC()
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
	v.owner = "upstream " + ub.Name
	defer func() { v.owner = "" }()
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
	u.Inject = v.injects(ub.Inject, fmt.Sprintf("upstream %q", ub.Name), ub.TrustStorePassword)
	u.Proxy = v.proxy(ub.Proxy, ub.ProxyRange)
	u.Rate = v.rate(ub.Rate, ub.RateRange)
	for _, ab := range ub.CallerAuth {
		switch ab.Type {
		case "hmac", "twilio", "standard_webhooks":
			v.errorf(ab.TypeRange, "unsupported caller_auth", "caller_auth %q: outbound bodies are streamed, not buffered, so use header, basic, jwt or ip_allow (or caller_auth \"none\" {})", ab.Type)
		}
	}
	if len(ub.CallerAuth) > 0 {
		u.CallerAuth = v.authBlocks(ub.CallerAuth, nil, "", hcl.Range{}, listeners[ub.Listener], fmt.Sprintf("upstream %q caller_auth", ub.Name))
	}
	return u
}

// upstreamExposure refuses an upstream that injects credentials without
// caller_auth on a listener others can reach: one that hosts channels (so
// it faces the BSPs), serves TLS or listens on a non-loopback address.
// Anyone reaching it would call the BSP with the relay's credentials. The
// operator who means it writes caller_auth "none" {}, as a channel without
// authentication must write auth "none" {}.
func (v *validator) upstreamExposure(ub *upstreamBlock, u *UpstreamConfig, l *ListenerConfig, channels []*ChannelConfig) {
	if len(u.Inject) == 0 || len(ub.CallerAuth) > 0 || l == nil {
		return
	}
	var why []string
	for _, ch := range channels {
		if ch.Listener == l.Name {
			why = append(why, "it hosts channel "+strconv.Quote(ch.Name))
			break
		}
	}
	if l.TLS != nil {
		why = append(why, "it serves TLS")
	}
	if !loopbackAddress(l.Address) {
		why = append(why, "its address "+l.Address+" is not loopback")
	}
	if len(why) == 0 {
		return
	}
	v.errorf(ub.DefRange, "credentials injected for anyone", "upstream %q injects credentials into every call reaching listener %q, and %s: add caller_auth (header, basic, jwt or ip_allow), or write caller_auth \"none\" {} to allow unauthenticated callers on purpose", u.Name, l.Name, strings.Join(why, ", "))
}

// loopbackAddress reports whether a listen address only accepts
// connections from the machine itself.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
