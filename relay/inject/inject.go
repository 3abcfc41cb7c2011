// Package inject holds the credentials the relay adds to the requests it
// makes: to a BSP's API on behalf of an internal caller (an `upstream`) and
// to a contact-center platform when it delivers an event (a `backend`).
// Both take the same `inject` blocks, compiled here once.
//
// Start with Compile, which turns a list of Specs (Header, Basic, Bearer,
// OAuth2, JWT, HMAC, HuaweiIAM) into a *Set. A Set decorates one attempt at
// a time with Apply (headers set, never added: an injected header replaces
// any forwarded header of the same name) and returns an Attempt whose
// Unauthorized method drops the fetched tokens the peer refused, so that
// the next Apply logs in again. Transport wraps an http.RoundTripper with a
// Set the way golang.org/x/oauth2's Transport wraps one with a TokenSource,
// and replays a request once after a 401 with a fresh token.
//
// Tokens that are fetched (OAuth2 client credentials, Huawei IAM logins)
// are cached, shared by concurrent attempts, refreshed in the background
// before they expire and fetched again after a 401. Credentials with an end
// date (Header and Bearer Expires) are reported by Expiries so the relay can
// warn ahead; from that date on they are not sent and Apply fails with an
// *ExpiredError. Proxy builds the egress proxy setting of a transport.
//
// Nothing in this package logs, and no error it returns carries a secret.
package inject

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Spec is one `inject` block: Header, Basic, Bearer, OAuth2, JWT, HMAC or
// HuaweiIAM, as a value or a pointer.
type Spec interface {
	spec()
}

// Header sets a header: `inject "header" { name, value, expires }`.
type Header struct {
	Name  string
	Value string
	// Expires is the first instant the value is no longer sent (zero: never).
	Expires time.Time
}

// Basic sets HTTP Basic credentials: `inject "basic" { username, password }`.
type Basic struct {
	Username string
	Password string
}

// Bearer sets "Authorization: Bearer <Token>": `inject "bearer" { token, expires }`.
type Bearer struct {
	Token string
	// Expires is the first instant the token is no longer sent (zero: never).
	Expires time.Time
}

func (Header) spec()    {}
func (Basic) spec()     {}
func (Bearer) spec()    {}
func (OAuth2) spec()    {}
func (JWT) spec()       {}
func (HMAC) spec()      {}
func (HuaweiIAM) spec() {}

// ErrExpired is matched (errors.Is) by an *ExpiredError.
var ErrExpired = errors.New("credential expired")

// ErrTokenEndpoint wraps every failure to obtain a token (OAuth2 token
// endpoint, Huawei IAM login).
var ErrTokenEndpoint = errors.New("token endpoint")

// ExpiredError is returned by Apply when a credential's end date passed.
type ExpiredError struct {
	// Credential names it without revealing it, e.g. `inject "bearer"`.
	Credential string
	At         time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("%s expired at %s: not sent", e.Credential, e.At.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrExpired) true.
func (e *ExpiredError) Is(target error) bool { return target == ErrExpired }

// Expiry is a credential with an end date.
type Expiry struct {
	// Name identifies the credential without revealing it.
	Name string
	At   time.Time
}

// item is one compiled Spec.
type item struct {
	label   string // `inject "bearer"`, for errors
	header  string // canonical header name
	value   string // static value
	expires time.Time
	tokens  *cache // oauth2 or huawei_iam
	jwt     *jwtSigner
	hmac    *hmacSigner
}

// Set is a compiled list of injectors, applied in order (a later one
// setting the same header wins). It is safe for concurrent use.
type Set struct {
	items []item
	now   func() time.Time
}

// Compile validates specs and compiles them. owner names the block in
// errors (`backend "aicc"`). client makes the token calls (OAuth2, IAM) and
// timeout bounds each of them; nil client means http.DefaultClient's
// settings without redirects. Token caches are taken from keep (the Set
// of the previous configuration, may be nil) when their settings did not
// change, so a reload does not log in again.
func Compile(owner string, specs []Spec, keep *Set, client *http.Client, timeout time.Duration) (*Set, error) {
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	s := &Set{now: time.Now}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{owner}, args...)...)
	}
	var kept []*cache
	if keep != nil {
		for _, it := range keep.items {
			if it.tokens != nil {
				kept = append(kept, it.tokens)
			}
		}
	}
	reuse := func(c *cache) *cache {
		for _, k := range kept {
			if k.key == c.key {
				k.setClient(client, timeout)
				return k
			}
		}
		c.setClient(client, timeout)
		return c
	}
	oauths, iams := 0, 0
	for i, sp := range specs {
		sp = deref(sp)
		switch v := sp.(type) {
		case Header:
			if v.Name == "" || !validHeaderName(v.Name) {
				return nil, errf("inject \"header\": invalid header name %q", v.Name)
			}
			if !validHeaderValue(v.Value) {
				return nil, errf("inject \"header\" %s: value contains control characters", v.Name)
			}
			c := http.CanonicalHeaderKey(v.Name)
			if isHopByHop(c) || c == "Host" || c == "Content-Length" {
				return nil, errf("inject \"header\": %s cannot be injected", v.Name)
			}
			s.items = append(s.items, item{label: "inject \"header\" " + c, header: c, value: v.Value, expires: v.Expires})
		case Basic:
			if v.Username == "" {
				return nil, errf("inject \"basic\": username is empty")
			}
			if !validHeaderValue(v.Username) || !validHeaderValue(v.Password) {
				return nil, errf("inject \"basic\": control characters in the credentials")
			}
			s.items = append(s.items, item{label: "inject \"basic\"", header: "Authorization",
				value: "Basic " + base64.StdEncoding.EncodeToString([]byte(v.Username+":"+v.Password))})
		case Bearer:
			if v.Token == "" || !validHeaderValue(v.Token) {
				return nil, errf("inject \"bearer\": token is empty or has control characters")
			}
			s.items = append(s.items, item{label: "inject \"bearer\"", header: "Authorization", value: "Bearer " + v.Token, expires: v.Expires})
		case OAuth2:
			if oauths++; oauths > 1 {
				return nil, errf("at most one inject \"oauth2\"")
			}
			c, err := newOAuth2Cache(v)
			if err != nil {
				return nil, errf("inject \"oauth2\": %w", err)
			}
			s.items = append(s.items, item{label: "inject \"oauth2\"", header: "Authorization", tokens: reuse(c)})
		case HuaweiIAM:
			if iams++; iams > 1 {
				return nil, errf("at most one inject \"huawei_iam\"")
			}
			c, err := newIAMCache(v)
			if err != nil {
				return nil, errf("inject \"huawei_iam\": %w", err)
			}
			s.items = append(s.items, item{label: "inject \"huawei_iam\"", header: "X-Auth-Token", tokens: reuse(c)})
		case JWT:
			j, err := newJWTSigner(v)
			if err != nil {
				return nil, errf("inject \"jwt\": %w", err)
			}
			s.items = append(s.items, item{label: "inject \"jwt\"", header: j.header, jwt: j})
		case HMAC:
			h, err := newHMACSigner(v)
			if err != nil {
				return nil, errf("inject \"hmac\": %w", err)
			}
			s.items = append(s.items, item{label: "inject \"hmac\"", header: h.header, hmac: h})
		case nil:
			return nil, errf("inject %d: nil", i)
		default:
			return nil, errf("inject %d: unknown type %T", i, sp)
		}
	}
	return s, nil
}

func deref(sp Spec) Spec {
	switch v := sp.(type) {
	case *Header:
		if v != nil {
			return *v
		}
	case *Basic:
		if v != nil {
			return *v
		}
	case *Bearer:
		if v != nil {
			return *v
		}
	case *OAuth2:
		if v != nil {
			return *v
		}
	case *JWT:
		if v != nil {
			return *v
		}
	case *HMAC:
		if v != nil {
			return *v
		}
	case *HuaweiIAM:
		if v != nil {
			return *v
		}
	default:
		return sp
	}
	return nil
}

// Len returns the number of injectors.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.items)
}

// NeedsBody reports whether Apply needs the exact body (inject "hmac").
func (s *Set) NeedsBody() bool {
	if s == nil {
		return false
	}
	for _, it := range s.items {
		if it.hmac != nil {
			return true
		}
	}
	return false
}

// Refreshes reports whether the Set holds fetched tokens, which a 401 makes
// worth one replay with a fresh token.
func (s *Set) Refreshes() bool {
	if s == nil {
		return false
	}
	for _, it := range s.items {
		if it.tokens != nil {
			return true
		}
	}
	return false
}

// Headers returns the canonical names of the headers the Set writes.
func (s *Set) Headers() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, it := range s.items {
		out = append(out, it.header)
	}
	return out
}

// Expiries returns the credentials with an end date.
func (s *Set) Expiries() []Expiry {
	if s == nil {
		return nil
	}
	var out []Expiry
	for _, it := range s.items {
		if !it.expires.IsZero() {
			out = append(out, Expiry{Name: it.label, At: it.expires})
		}
	}
	return out
}

// TokenFetches returns how many tokens (OAuth2 or IAM logins) were fetched
// by the Set's caches.
func (s *Set) TokenFetches() int {
	if s == nil {
		return 0
	}
	n := 0
	for _, it := range s.items {
		if it.tokens != nil {
			n += it.tokens.fetchCount()
		}
	}
	return n
}

// Attempt is what one Apply used, for Unauthorized.
type Attempt struct {
	used []usedToken
}

type usedToken struct {
	c   *cache
	tok *token
}

// Unauthorized is called when the peer answered 401 to the attempt: the
// fetched tokens it carried are dropped (unless a concurrent refresh
// already replaced them), so the next Apply fetches new ones. It reports
// whether there was any, that is whether one replay is worth it.
func (a *Attempt) Unauthorized() bool {
	if a == nil || len(a.used) == 0 {
		return false
	}
	for _, u := range a.used {
		u.c.invalidate(u.tok)
	}
	return true
}

// Apply sets the Set's headers on h for one attempt. body is the exact
// body that will be sent (needed by inject "hmac"; nil is an empty body).
// It fails with an *ExpiredError when a credential's end date passed (the
// header is then not set), or with an error wrapping ErrTokenEndpoint when
// a token cannot be obtained.
func (s *Set) Apply(ctx context.Context, h http.Header, body []byte) (*Attempt, error) {
	a := &Attempt{}
	if s == nil {
		return a, nil
	}
	now := s.now()
	for _, it := range s.items {
		if !it.expires.IsZero() && !now.Before(it.expires) {
			return a, &ExpiredError{Credential: it.label, At: it.expires}
		}
	}
	for _, it := range s.items {
		var v string
		switch {
		case it.tokens != nil:
			tok, err := it.tokens.token(ctx)
			if err != nil {
				return a, err
			}
			a.used = append(a.used, usedToken{it.tokens, tok})
			v = tok.value
		case it.jwt != nil:
			var err error
			if v, err = it.jwt.sign(now); err != nil {
				return a, fmt.Errorf("%s: %w", it.label, err)
			}
		case it.hmac != nil:
			v = it.hmac.sign(body)
		default:
			v = it.value
		}
		h[it.header] = []string{v}
	}
	return a, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == '<' || c == '>' || c == '@' ||
			c == ',' || c == ';' || c == '\\' || c == '"' || c == '/' || c == '[' || c == ']' || c == '?' ||
			c == '=' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func isHopByHop(canonical string) bool {
	switch canonical {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}
