package inject

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// defaultEarlyExpiry is how long before expiry a token is refreshed, at
// most a fifth of its lifetime (so short-lived tokens are not refetched on
// every call).
const defaultEarlyExpiry = 60 * time.Second

// defaultTokenTimeout bounds a token fetch when the owner sets no timeout.
const defaultTokenTimeout = 30 * time.Second

// token is one fetched credential: the header value to send and when it
// stops working (zero: unknown, kept until a 401).
type token struct {
	value  string
	expiry time.Time
}

// cache holds one fetched token (OAuth2 client credentials or a Huawei IAM
// login). It is fetched on first use and shared. Inside its early-expiry
// margin it is refreshed in the background while callers keep using it;
// once expired it is fetched synchronously. Concurrent callers share one
// fetch.
type cache struct {
	key   string // the settings, to keep the cache across reloads (holds secrets: never logged)
	early time.Duration
	fetch func(ctx context.Context, client *http.Client) (*token, error)

	mu        sync.Mutex
	client    *http.Client
	timeout   time.Duration
	tok       *token
	refreshAt time.Time
	inflight  *tokenFetch
	fetches   int
}

type tokenFetch struct {
	done chan struct{}
	tok  *token
	err  error
}

func (c *cache) setClient(client *http.Client, timeout time.Duration) {
	c.mu.Lock()
	c.client, c.timeout = client, timeout
	c.mu.Unlock()
}

func (c *cache) fetchCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// token returns a usable token: the cached one while it is valid (starting
// a background refresh inside the early-expiry margin), else a fresh one.
func (c *cache) token(ctx context.Context) (*token, error) {
	c.mu.Lock()
	now := time.Now()
	if c.tok != nil && (c.tok.expiry.IsZero() || now.Before(c.tok.expiry)) {
		tok := c.tok
		if !tok.expiry.IsZero() && !now.Before(c.refreshAt) && c.inflight == nil {
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

// invalidate drops tok if it is still the cached token (the peer answered
// 401 to it); a token already replaced by a concurrent refresh is kept.
func (c *cache) invalidate(tok *token) {
	c.mu.Lock()
	if c.tok == tok {
		c.tok = nil
	}
	c.mu.Unlock()
}

func (c *cache) startFetchLocked() {
	f := &tokenFetch{done: make(chan struct{})}
	c.inflight = f
	client, timeout := c.client, c.timeout
	if timeout <= 0 {
		timeout = defaultTokenTimeout
	}
	// The fetch runs on its own context so that one caller giving up does
	// not fail the others waiting for the same token; it ends within timeout.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		tok, err := c.fetch(ctx, client)
		c.mu.Lock()
		if err != nil && c.tok != nil && !c.tok.expiry.IsZero() {
			// A failed background refresh: try again a little later, not
			// on every call, while the current token lasts.
			c.refreshAt = time.Now().Add(min(5*time.Second, time.Until(c.tok.expiry)/2))
		}
		if err == nil {
			c.tok = tok
			c.fetches++
			if !tok.expiry.IsZero() {
				margin := min(c.early, time.Until(tok.expiry)/5)
				c.refreshAt = tok.expiry.Add(-margin)
			}
		}
		f.tok, f.err = tok, err
		c.inflight = nil
		c.mu.Unlock()
		close(f.done)
	}()
}
