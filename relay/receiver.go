package relay

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// Receiver is a minimal backend for trying a setup out (`edgerelay
// receive`): it prints every delivery as one JSON line and, given the
// backend's signing secret, checks its Standard Webhooks signature.
type Receiver struct {
	// Out receives one JSON line per delivery.
	Out io.Writer
	// Status is the answer to every delivery (default 200).
	Status int

	mu       sync.Mutex
	verifier auth.Verifier
}

// NewReceiver builds a Receiver; secret may be empty (no verification).
func NewReceiver(out io.Writer, secret string, status int) (*Receiver, error) {
	r := &Receiver{Out: out, Status: status}
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	if secret != "" {
		v, err := auth.NewStandardWebhooks(auth.StandardWebhooksConfig{Secrets: []string{secret}})
		if err != nil {
			return nil, fmt.Errorf("receiver secret: %w", err)
		}
		r.verifier = v
	}
	return r, nil
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	line := map[string]any{
		"time":         time.Now().UTC().Format(time.RFC3339Nano),
		"method":       req.Method,
		"path":         req.URL.RequestURI(),
		"event_id":     req.Header.Get("X-Relay-Event-Id"),
		"channel":      req.Header.Get("X-Relay-Channel"),
		"provider":     req.Header.Get("X-Relay-Provider"),
		"attempt":      req.Header.Get("X-Relay-Attempt"),
		"received_at":  req.Header.Get("X-Relay-Received-At"),
		"content_type": req.Header.Get("Content-Type"),
		"bytes":        len(body),
		"body":         string(body),
	}
	if rc.verifier != nil {
		err := rc.verifier.Verify(&auth.Request{Method: req.Method, URL: req.URL, Header: req.Header, Body: body, RemoteAddr: req.RemoteAddr})
		line["signature"] = "valid"
		if err != nil {
			line["signature"] = "INVALID: " + err.Error()
		}
	}
	b, _ := json.Marshal(line)
	rc.mu.Lock()
	fmt.Fprintln(rc.Out, string(b))
	rc.mu.Unlock()
	w.Header().Set("Content-Length", strconv.Itoa(0))
	w.WriteHeader(rc.Status)
}
