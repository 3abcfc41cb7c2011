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

type receivedLine struct {
	Time        string `json:"time"`
	EventID     string `json:"event_id"`
	Channel     string `json:"channel"`
	Provider    string `json:"provider"`
	Attempt     string `json:"attempt"`
	Signature   string `json:"signature,omitempty"`
	ReceivedAt  string `json:"received_at"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	ContentType string `json:"content_type"`
	Bytes       int    `json:"bytes"`
	Body        string `json:"body"`
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	line := receivedLine{
		Time:        time.Now().UTC().Format(time.RFC3339Nano),
		EventID:     req.Header.Get("X-Relay-Event-Id"),
		Channel:     req.Header.Get("X-Relay-Channel"),
		Provider:    req.Header.Get("X-Relay-Provider"),
		Attempt:     req.Header.Get("X-Relay-Attempt"),
		ReceivedAt:  req.Header.Get("X-Relay-Received-At"),
		Method:      req.Method,
		Path:        req.URL.RequestURI(),
		ContentType: req.Header.Get("Content-Type"),
		Bytes:       len(body),
		Body:        string(body),
	}
	if rc.verifier != nil {
		err := rc.verifier.Verify(&auth.Request{Method: req.Method, URL: req.URL, Host: req.Host, Header: req.Header, Body: body, RemoteAddr: req.RemoteAddr})
		line.Signature = "valid"
		if err != nil {
			line.Signature = "INVALID: " + err.Error()
		}
	}
	b, _ := json.Marshal(line)
	rc.mu.Lock()
	fmt.Fprintln(rc.Out, string(b))
	rc.mu.Unlock()
	w.Header().Set("Content-Length", strconv.Itoa(0))
	w.WriteHeader(rc.Status)
}
