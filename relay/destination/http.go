package destination

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// HTTP delivers each event as one request: same method, byte-identical
// body, the forwarded headers plus the relay's. 2xx = delivered; 408, 425,
// 429, 5xx and transport errors are retryable; other answers permanent.
type HTTP struct {
	URL     string
	Client  *http.Client
	Timeout time.Duration
	// Signer, when set, adds Standard Webhooks headers.
	Signer *auth.WebhookSigner
}

// MaxBatch is 1: an HTTP backend takes one event per request, and the
// backend's concurrency is its parallelism.
func (h *HTTP) MaxBatch() int { return 1 }

// Close drops idle connections.
func (h *HTTP) Close() { h.Client.CloseIdleConnections() }

// Send makes one request per delivery, one after the other.
func (h *HTTP) Send(ctx context.Context, batch []Delivery) []Result {
	out := make([]Result, len(batch))
	for i, d := range batch {
		out[i] = h.send(ctx, d)
	}
	return out
}

func (h *HTTP) send(ctx context.Context, d Delivery) Result {
	ev := d.Event
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, ev.Method, h.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return Result{Outcome: Permanent, Err: "building request: " + err.Error()}
	}
	// The event is shared by every backend's lease: cap each value slice
	// so nothing appended here can write into another delivery's header.
	for k, v := range ev.Header {
		req.Header[k] = v[:len(v):len(v)]
	}
	req.ContentLength = int64(len(ev.Body))
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderChannel, ev.Channel)
	req.Header.Set(HeaderProvider, ev.Provider)
	req.Header.Set(HeaderAttempt, strconv.Itoa(d.Attempt))
	req.Header.Set(HeaderReceivedAt, ev.ReceivedAt.UTC().Format(ReceivedAtFormat))
	if h.Signer != nil {
		now := time.Now()
		req.Header.Set("webhook-id", ev.ID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", h.Signer.Sign(ev.ID, now, ev.Body))
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return Result{Outcome: Retryable, Err: "request failed: " + err.Error()}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // keep the connection reusable
	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		return Result{Outcome: Delivered, Status: status}
	case status == 408 || status == 425 || status == 429 || status >= 500:
		return Result{Outcome: Retryable, Status: status, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After")),
			Err: fmt.Sprintf("backend answered %d %s", status, trimSnippet(snippet))}
	default:
		return Result{Outcome: Permanent, Status: status, Err: fmt.Sprintf("backend answered %d %s", status, trimSnippet(snippet))}
	}
}

func trimSnippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return strconv.Quote(string(b))
}

// ParseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func ParseRetryAfter(v string) time.Duration {
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
