package relay

// One delivery attempt to a url backend: the request (headers, signature,
// credentials) and the classification of the answer.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/inject"
)

func (d *deliverer) attempt(rt *backendRuntime, l *queue.Lease, done func(error)) {
	start := time.Now()
	res, status, retryAfter, errText := d.send(rt, l)
	d.finish(rt, l, done, res, status, retryAfter, errText, time.Since(start))
}

// send makes one HTTP attempt and classifies its outcome. A 401 to a
// fetched token (oauth2, huawei_iam) drops it and sends once more with a
// fresh one, inside the same attempt.
func (d *deliverer) send(rt *backendRuntime, l *queue.Lease) (res attemptResult, status int, retryAfter time.Duration, errText string) {
	if rt.lean != nil {
		return d.sendLean(rt, l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.cfg.Timeout)
	defer cancel()
	rest := d.s.channelRest(l.Event)
	var resp *http.Response
	for try := 0; ; try++ {
		req, att, err := rt.request(ctx, l, rest)
		if err != nil {
			if isCredentialErr(err) {
				return retryable, 0, 0, "credentials: " + err.Error()
			}
			return permanent, 0, 0, "building request: " + err.Error()
		}
		resp, err = rt.client.Do(req)
		if err != nil {
			return retryable, 0, 0, "request failed: " + err.Error()
		}
		if resp.StatusCode != http.StatusUnauthorized || try > 0 || !att.Unauthorized() {
			break
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	return classify(resp.StatusCode, resp.Header.Get("Retry-After"), snippet)
}

// classify turns a backend's answer into an attempt's outcome.
func classify(status int, retryAfter string, snippet []byte) (attemptResult, int, time.Duration, string) {
	switch {
	case status >= 200 && status < 300:
		return delivered, status, 0, ""
	case status == 408 || status == 425 || status == 429 || status >= 500:
		return retryable, status, parseRetryAfter(retryAfter), fmt.Sprintf("backend answered %d %s", status, trimSnippet(snippet))
	default:
		return permanent, status, 0, fmt.Sprintf("backend answered %d %s", status, trimSnippet(snippet))
	}
}

// isCredentialErr tells a credential that cannot be had now (expired,
// token endpoint failing: retried later) from a request that cannot be
// built at all.
func isCredentialErr(err error) bool {
	return errors.Is(err, inject.ErrExpired) || errors.Is(err, inject.ErrTokenEndpoint)
}

// request builds the HTTP request of one attempt: the URL (with {path}
// and {query} filled in, rest being the path after a prefix channel's
// prefix), the event's method, body and headers (Authorization only with
// pass_authorization), the X-Relay-* headers, the Standard Webhooks
// signature, the backend's static headers and, last, its credentials
// (which replace any header of the same name).
func (rt *backendRuntime) request(ctx context.Context, l *queue.Lease, rest string) (*http.Request, *inject.Attempt, error) {
	ev := l.Event
	target, err := backendURL(rt.cfg.URL, ev.Path, rest)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, ev.Method, rt.cfg.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return nil, nil, err
	}
	if target.Opaque != "" && target.Scheme == "http" && rt.proxy != nil {
		// A path sent as written, to a proxy: in absolute form.
		if pu, _ := rt.proxy(&http.Request{URL: target}); pu != nil {
			target.Opaque = "//" + target.Host + target.Opaque
		}
	}
	req.URL = target
	req.Host = target.Host
	// The event is shared by every backend's lease: cap each value slice
	// so nothing appended here can write into another delivery's header.
	for k, v := range ev.Header {
		req.Header[k] = v[:len(v):len(v)]
	}
	if !rt.cfg.PassAuthorization {
		req.Header.Del("Authorization")
	}
	req.ContentLength = int64(len(ev.Body))
	req.Header.Set("X-Relay-Event-Id", ev.ID)
	req.Header.Set("X-Relay-Channel", ev.Channel)
	req.Header.Set("X-Relay-Provider", ev.Provider)
	req.Header.Set("X-Relay-Attempt", strconv.Itoa(l.Attempt))
	req.Header.Set("X-Relay-Received-At", ev.ReceivedAt.UTC().Format(receivedAtFormat))
	if rt.signer != nil {
		now := time.Now()
		req.Header.Set("webhook-id", ev.ID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", rt.signer.Sign(ev.ID, now, ev.Body))
	}
	for k, v := range rt.cfg.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	att, err := rt.inject.Apply(ctx, req.Header, ev.Body)
	if err != nil {
		return nil, nil, err
	}
	return req, att, nil
}

func trimSnippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return strconv.Quote(string(b))
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, 24*time.Hour)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), 24*time.Hour)
	}
	return 0
}
