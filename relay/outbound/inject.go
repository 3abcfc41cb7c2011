package outbound

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Injector is a credential added to every request forwarded to the BSP:
// HeaderInject, BasicInject, BearerInject or OAuth2Inject (values or
// pointers). Injectors apply in order; a later one setting the same header
// wins. The injected header replaces any header of that name the caller sent.
type Injector interface {
	injector()
}

// HeaderInject sets a header: `inject "header" { name, value }`.
type HeaderInject struct {
	Name  string
	Value string
}

// BasicInject sets HTTP Basic credentials: `inject "basic" { username, password }`.
type BasicInject struct {
	Username string
	Password string
}

// BearerInject sets "Authorization: Bearer <Token>": `inject "bearer" { token, expires }`.
type BearerInject struct {
	Token string
	// Expires is when the token stops working (zero: unknown). It is only
	// reported through Proxy.Expiries so the relay can warn ahead; the token
	// is still sent after it.
	Expires time.Time
}

// OAuth2Inject fetches a token with the OAuth2 client-credentials grant and
// sets "Authorization: Bearer <token>": `inject "oauth2" { token_url,
// client_id, client_secret, scopes }`.
//
// The token is fetched on first use and cached. It is refreshed in the
// background once it enters its early-expiry margin (callers keep using the
// still-valid token meanwhile) and fetched synchronously once expired. The
// margin is EarlyExpiry, but at most a fifth of the token's lifetime, so that
// short-lived tokens are not refetched on every call. A token without
// expires_in is kept until the BSP answers 401.
type OAuth2Inject struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// TLS is the client TLS configuration for the token endpoint; nil uses
	// the upstream's.
	TLS *tls.Config
	// EarlyExpiry is how long before expiry the token is refreshed
	// (default 60s; see the type's doc for short-lived tokens).
	EarlyExpiry time.Duration
}

func (HeaderInject) injector() {}
func (BasicInject) injector()  {}
func (BearerInject) injector() {}
func (OAuth2Inject) injector() {}

const defaultEarlyExpiry = 60 * time.Second

// applied is a compiled injector.
type applied struct {
	header string // canonical header name
	value  string // static value; empty for oauth2
	oauth  *tokenCache
}

// compileInjectors validates the injectors and compiles the static ones.
// Token caches are taken from keep when their settings did not change.
func compileInjectors(name string, in []Injector, keep *tokenCache, client *http.Client, timeout time.Duration) ([]applied, *tokenCache, error) {
	var out []applied
	var cache *tokenCache
	for i, inj := range in {
		switch v := inj.(type) {
		case *HeaderInject:
			if v == nil {
				return nil, nil, fmt.Errorf("upstream %q: inject %d: nil", name, i)
			}
			inj = *v
		case *BasicInject:
			if v == nil {
				return nil, nil, fmt.Errorf("upstream %q: inject %d: nil", name, i)
			}
			inj = *v
		case *BearerInject:
			if v == nil {
				return nil, nil, fmt.Errorf("upstream %q: inject %d: nil", name, i)
			}
			inj = *v
		case *OAuth2Inject:
			if v == nil {
				return nil, nil, fmt.Errorf("upstream %q: inject %d: nil", name, i)
			}
			inj = *v
		}
		switch v := inj.(type) {
		case HeaderInject:
			if v.Name == "" || !validHeaderName(v.Name) {
				return nil, nil, fmt.Errorf("upstream %q: inject \"header\": invalid header name %q", name, v.Name)
			}
			if !validHeaderValue(v.Value) {
				return nil, nil, fmt.Errorf("upstream %q: inject \"header\" %s: value contains control characters", name, v.Name)
			}
			if isHopByHop(http.CanonicalHeaderKey(v.Name)) || http.CanonicalHeaderKey(v.Name) == "Host" {
				return nil, nil, fmt.Errorf("upstream %q: inject \"header\": %s cannot be injected", name, v.Name)
			}
			out = append(out, applied{header: http.CanonicalHeaderKey(v.Name), value: v.Value})
		case BasicInject:
			if v.Username == "" {
				return nil, nil, fmt.Errorf("upstream %q: inject \"basic\": username is empty", name)
			}
			if !validHeaderValue(v.Username) || !validHeaderValue(v.Password) {
				return nil, nil, fmt.Errorf("upstream %q: inject \"basic\": control characters in the credentials", name)
			}
			out = append(out, applied{header: "Authorization",
				value: "Basic " + base64.StdEncoding.EncodeToString([]byte(v.Username+":"+v.Password))})
		case BearerInject:
			if v.Token == "" || !validHeaderValue(v.Token) {
				return nil, nil, fmt.Errorf("upstream %q: inject \"bearer\": token is empty or has control characters", name)
			}
			out = append(out, applied{header: "Authorization", value: "Bearer " + v.Token})
		case OAuth2Inject:
			if cache != nil {
				return nil, nil, fmt.Errorf("upstream %q: at most one inject \"oauth2\"", name)
			}
			if v.TokenURL == "" || v.ClientID == "" {
				return nil, nil, fmt.Errorf("upstream %q: inject \"oauth2\": token_url and client_id are required", name)
			}
			if err := checkHTTPURL(v.TokenURL); err != nil {
				return nil, nil, fmt.Errorf("upstream %q: inject \"oauth2\": token_url: %w", name, err)
			}
			if v.EarlyExpiry < 0 {
				return nil, nil, fmt.Errorf("upstream %q: inject \"oauth2\": negative early expiry", name)
			}
			if keep != nil && keep.sameSettings(v) {
				cache = keep
			} else {
				cache = newTokenCache(v, client)
			}
			cache.setClient(client, timeout)
			out = append(out, applied{header: "Authorization", oauth: cache})
		case nil:
			return nil, nil, fmt.Errorf("upstream %q: inject %d: nil", name, i)
		default:
			return nil, nil, fmt.Errorf("upstream %q: inject %d: unknown type %T", name, i, inj)
		}
	}
	return out, cache, nil
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

// tokenCache holds one OAuth2 client-credentials token.
type tokenCache struct {
	cfg   *clientcredentials.Config
	early time.Duration
	src   OAuth2Inject // settings, for comparing on reload

	mu        sync.Mutex
	client    *http.Client
	tok       *oauth2.Token
	refreshAt time.Time // background refresh from here
	inflight  *tokenFetch
	fetches   int // tokens fetched, for tests and logs
	timeout   time.Duration
}

type tokenFetch struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

func newTokenCache(s OAuth2Inject, client *http.Client) *tokenCache {
	early := s.EarlyExpiry
	if early == 0 {
		early = defaultEarlyExpiry
	}
	return &tokenCache{
		cfg: &clientcredentials.Config{
			ClientID:     s.ClientID,
			ClientSecret: s.ClientSecret,
			TokenURL:     s.TokenURL,
			Scopes:       slices.Clone(s.Scopes),
		},
		early:  early,
		src:    s,
		client: client,
	}
}

func (c *tokenCache) sameSettings(s OAuth2Inject) bool {
	return c.src.TokenURL == s.TokenURL && c.src.ClientID == s.ClientID &&
		c.src.ClientSecret == s.ClientSecret && slices.Equal(c.src.Scopes, s.Scopes) &&
		c.src.EarlyExpiry == s.EarlyExpiry
}

func (c *tokenCache) setClient(client *http.Client, timeout time.Duration) {
	c.mu.Lock()
	c.client = client
	c.timeout = timeout
	c.mu.Unlock()
}

// errTokenEndpoint wraps failures to obtain a token.
var errTokenEndpoint = errors.New("oauth2 token endpoint")

// token returns a usable token: the cached one while it is valid (starting
// a background refresh inside the early-expiry margin), else a fresh one.
// Concurrent callers share one fetch.
func (c *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	c.mu.Lock()
	now := time.Now()
	if c.tok != nil && (c.tok.Expiry.IsZero() || now.Before(c.tok.Expiry)) {
		tok := c.tok
		if !c.tok.Expiry.IsZero() && !now.Before(c.refreshAt) && c.inflight == nil {
			c.startFetchLocked()
		}
		c.mu.Unlock()
		return tok, nil
	}
	if c.inflight == nil {
		c.startFetchLocked()
	}
	f := c.inflight
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// invalidate drops tok if it is still the cached token (a 401 answered to
// it), so that the next token call fetches a new one. A token already
// replaced by a concurrent refresh is left alone.
func (c *tokenCache) invalidate(tok *oauth2.Token) {
	c.mu.Lock()
	if c.tok == tok {
		c.tok = nil
	}
	c.mu.Unlock()
}

// fetchCount returns how many tokens were fetched so far.
func (c *tokenCache) fetchCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

func (c *tokenCache) startFetchLocked() {
	f := &tokenFetch{done: make(chan struct{})}
	c.inflight = f
	client := c.client
	timeout := c.timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	// The fetch runs on its own context so that one caller giving up does
	// not fail the others waiting for the same token; it ends within timeout.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
		tok, err := c.cfg.Token(ctx)
		if err != nil {
			err = fmt.Errorf("%w: %s", errTokenEndpoint, describeTokenError(err))
		} else if tok.AccessToken == "" {
			err = fmt.Errorf("%w: empty access token", errTokenEndpoint)
		}
		c.mu.Lock()
		if err != nil && c.tok != nil && !c.tok.Expiry.IsZero() {
			// A failed background refresh: try again a little later, not
			// on every call, while the current token lasts.
			c.refreshAt = time.Now().Add(min(5*time.Second, time.Until(c.tok.Expiry)/2))
		}
		if err == nil {
			c.tok = tok
			c.fetches++
			if !tok.Expiry.IsZero() {
				margin := min(c.early, time.Until(tok.Expiry)/5)
				c.refreshAt = tok.Expiry.Add(-margin)
			}
		}
		f.tok, f.err = tok, err
		c.inflight = nil
		c.mu.Unlock()
		close(f.done)
	}()
}

// describeTokenError says what went wrong without the endpoint's body (which
// may echo credentials).
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("status %d, error %q", re.Response.StatusCode, re.ErrorCode)
		}
		return fmt.Sprintf("status %d", re.Response.StatusCode)
	}
	return err.Error()
}
