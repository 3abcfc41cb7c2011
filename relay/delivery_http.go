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
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/h1"
	"github.com/edgerelay/edgerelay/relay/inject"
)

func (d *deliverer) attempt(rt *backendRuntime, l *queue.Lease, done func(error)) {
	start := time.Now()
	res, status, retryAfter, errText := d.send(rt, l)
	d.finish(rt, l, done, res, status, retryAfter, errText, time.Since(start))
}

// send makes one HTTP attempt and classifies its outcome. A 401 to a
// fetched token (oauth2, huawei_iam) drops it and sends once more with a
// fresh one, inside the same attempt. Both clients send the same fields
// (fieldPlan.fields): plain-http backends without a proxy through
// h1.Send (lean), the others through net/http's client (exchangeHTTP).
func (d *deliverer) send(rt *backendRuntime, l *queue.Lease) (res attemptResult, status int, retryAfter time.Duration, errText string) {
	ev := l.Event
	deadline := time.Now().Add(rt.cfg.Timeout)
	var dest h1.Dest
	var target *url.URL
	var err error
	if rt.lean != nil {
		dest, err = rt.lean.destOf(rt.cfg.URL, ev, d.s)
	} else {
		target, err = rt.targetURL(ev, d.s)
	}
	if err != nil {
		return permanent, 0, 0, "building request: " + err.Error()
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	var ans answer
	for try := 0; ; try++ {
		injected, att, err := rt.credentials(deadline, ev.Body)
		if err != nil {
			if isCredentialErr(err) {
				return retryable, 0, 0, "credentials: " + err.Error()
			}
			return permanent, 0, 0, "building request: " + err.Error()
		}
		sc.fields = rt.plan.fields(sc.fields[:0], rt, l, injected)
		if rt.lean != nil {
			ans, err = rt.lean.exchange(ev.Method, dest, sc.fields, ev.Body, deadline, sc.snip[:])
		} else {
			ans, err = rt.exchangeHTTP(ev, target, sc.fields, deadline, sc.snip[:])
		}
		clear(sc.fields)
		var be buildError
		switch {
		case errors.As(err, &be):
			return permanent, 0, 0, "building request: " + be.err.Error()
		case err != nil:
			return retryable, 0, 0, "request failed: " + err.Error()
		}
		if ans.status != http.StatusUnauthorized || try > 0 || !att.Unauthorized() {
			break
		}
	}
	return classify(ans.status, ans.retryAfter, ans.snippet)
}

// answer is what an attempt keeps of a backend's answer.
type answer struct {
	status     int
	retryAfter string
	snippet    []byte // the body's first bytes
}

// buildError marks a request that could not be built (never retried).
type buildError struct{ err error }

func (e buildError) Error() string { return e.err.Error() }

// scratch is one attempt's reusable memory.
type scratch struct {
	fields []h1.Field
	snip   [256]byte
}

var scratches = sync.Pool{New: func() any { return &scratch{fields: make([]h1.Field, 0, 32)} }}

// credentials sets the inject blocks' headers for one try; none without
// inject blocks.
func (rt *backendRuntime) credentials(deadline time.Time, body []byte) (http.Header, *inject.Attempt, error) {
	if len(rt.cfg.Inject) == 0 {
		return nil, nil, nil
	}
	h := http.Header{}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	att, err := rt.inject.Apply(ctx, h, body)
	return h, att, err
}

// targetURL is the URL of ev's request on the net/http path: {path} and
// {query} filled in (for a prefix channel), a path kept as written sent
// in absolute form to a proxy.
func (rt *backendRuntime) targetURL(ev *queue.Event, s *Server) (*url.URL, error) {
	target, err := backendURL(rt.cfg.URL, ev.Path, s.channelRest(ev))
	if err != nil {
		return nil, err
	}
	if target.Opaque != "" && target.Scheme == "http" && rt.proxy != nil {
		// A path sent as written, to a proxy: in absolute form.
		if pu, _ := rt.proxy(&http.Request{URL: target}); pu != nil {
			target.Opaque = "//" + target.Host + target.Opaque
		}
	}
	return target, nil
}

// exchangeHTTP sends one try through net/http's client: ev's method and
// body to target with fields, bounded by the deadline, and reads the
// answer (its first len(snip) bytes kept, up to 1 MiB more read so the
// connection stays reusable).
func (rt *backendRuntime) exchangeHTTP(ev *queue.Event, target *url.URL, fields []h1.Field, deadline time.Time, snip []byte) (answer, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, ev.Method, "", bytes.NewReader(ev.Body))
	if err != nil {
		return answer{}, buildError{err}
	}
	u := *target
	req.URL, req.Host = &u, target.Host
	req.ContentLength = int64(len(ev.Body))
	for _, f := range fields {
		req.Header[f.Name] = append(req.Header[f.Name], f.Value)
	}
	resp, err := rt.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	n, _ := io.ReadFull(resp.Body, snip)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), snip[:n]}, nil
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
