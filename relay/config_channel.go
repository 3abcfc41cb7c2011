package relay

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/profile"
	"github.com/edgerelay/edgerelay/relay/quarantine"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// Channels and their auth blocks.

func (v *validator) channel(cb *channelBlock, listeners map[string]*ListenerConfig, backends map[string]*BackendConfig) *ChannelConfig {
	ch := &ChannelConfig{Name: cb.Name, Listener: cb.Listener, Path: cb.Path}
	if _, ok := listeners[cb.Listener]; !ok {
		v.errorf(cb.ListenerRange, "unknown listener", "channel %q names listener %q, which is not defined%s", cb.Name, cb.Listener, didYouMean(cb.Listener, keys(listeners)))
	}
	if !strings.HasPrefix(cb.Path, "/") {
		v.errorf(cb.PathRange, "invalid path", "channel %q path %q must start with /", cb.Name, cb.Path)
	} else if base, _ := strings.CutSuffix(cb.Path, "/*"); strings.Contains(base, "*") {
		v.errorf(cb.PathRange, "invalid path", "channel %q path %q: * is only allowed as a last segment /* (every path under the prefix)", cb.Name, cb.Path)
	} else if strings.ContainsAny(cb.Path, "?#") {
		v.errorf(cb.PathRange, "invalid path", "channel %q path %q: no query or fragment", cb.Name, cb.Path)
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

	if qb := cb.Quarantine; qb != nil {
		ch.Quarantine = &QuarantineConfig{
			MaxSize: v.size(qb.MaxSize, qb.MaxSizeRange, "max_size", quarantine.DefaultMaxSize),
			Keep:    v.duration(qb.Keep, qb.KeepRange, "keep", quarantine.DefaultKeep),
		}
		if qb.MaxSize != nil && ch.Quarantine.MaxSize < 64<<10 {
			v.errorf(qb.MaxSizeRange, "quarantine too small", "quarantine max_size = %q: use at least 64KiB", *qb.MaxSize)
		}
		if qb.Keep != nil && ch.Quarantine.Keep <= 0 {
			v.errorf(qb.KeepRange, "invalid keep", "quarantine keep = %q must be more than 0", *qb.Keep)
		}
	}

	ch.Auth = v.authBlocks(cb.Auth, p, ch.PublicURL, cb.PublicURLRange, listeners[cb.Listener], fmt.Sprintf("channel %q", cb.Name))
	ch.AuthHeaders = authHeaderNames(ch.Auth)
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
				c.Expires = v.date(b.Expires, b.ExpiresRange)
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
					c.MaxAge = p.JWT.MaxAge
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
				c.MaxAge = v.duration(b.MaxAge, b.MaxAgeRange, "max_age", c.MaxAge)
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

func (v *validator) authErr(err error, rng hcl.Range, owner string, secrets ...string) {
	if err != nil {
		v.errorf(rng, "invalid auth block", "%s: %s", owner, scrubErr(err, secrets...))
	}
}
