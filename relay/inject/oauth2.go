package inject

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth2 fetches a token with the OAuth2 client-credentials grant and sets
// "Authorization: Bearer <token>": `inject "oauth2" { token_url, client_id,
// client_secret, scopes }`. The token is cached and refreshed before expiry
// (see cache); a token without expires_in is kept until a 401.
type OAuth2 struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// TLS is the client TLS configuration of the token endpoint; the owner
	// builds the client that uses it (nil: the owner's own).
	TLS *tls.Config
	// EarlyExpiry is how long before expiry the token is refreshed
	// (default 60s, at most a fifth of the token's lifetime).
	EarlyExpiry time.Duration
}

func newOAuth2Cache(v OAuth2) (*cache, error) {
	if v.TokenURL == "" || v.ClientID == "" {
		return nil, errors.New("token_url and client_id are required")
	}
	if err := checkHTTPURL(v.TokenURL); err != nil {
		return nil, fmt.Errorf("token_url: %w", err)
	}
	if v.EarlyExpiry < 0 {
		return nil, errors.New("negative early expiry")
	}
	cfg := &clientcredentials.Config{
		ClientID:     v.ClientID,
		ClientSecret: v.ClientSecret,
		TokenURL:     v.TokenURL,
		Scopes:       slices.Clone(v.Scopes),
	}
	early := v.EarlyExpiry
	if early == 0 {
		early = defaultEarlyExpiry
	}
	return &cache{
		key:   fmt.Sprintf("oauth2\x00%s\x00%s\x00%s\x00%q\x00%d\x00%p", v.TokenURL, v.ClientID, v.ClientSecret, v.Scopes, v.EarlyExpiry, v.TLS),
		early: early,
		fetch: func(ctx context.Context, client *http.Client) (*token, error) {
			ctx = context.WithValue(ctx, oauth2.HTTPClient, client)
			t, err := cfg.Token(ctx)
			if err != nil {
				return nil, fmt.Errorf("%w: oauth2: %s", ErrTokenEndpoint, describeTokenError(err))
			}
			if t.AccessToken == "" {
				return nil, fmt.Errorf("%w: oauth2: empty access token", ErrTokenEndpoint)
			}
			return &token{value: t.Type() + " " + t.AccessToken, expiry: t.Expiry}, nil
		},
	}, nil
}

// describeTokenError says what went wrong without the endpoint's body
// (which may echo credentials) or URL.
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("status %d, error %q", re.Response.StatusCode, re.ErrorCode)
		}
		return fmt.Sprintf("status %d", re.Response.StatusCode)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("invalid URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("scheme must be https or http, got %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("no host")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("no user info, query or fragment allowed")
	}
	return nil
}
