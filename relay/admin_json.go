package relay

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// The JSON shapes of the admin API. Every key is snake_case
// (admin_test.go walks every response to check it); queue and tls types
// are never encoded directly unless their fields carry json tags.

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type queueJSON struct {
	Backend          string     `json:"backend"`
	Pending          int        `json:"pending"`
	InFlight         int        `json:"in_flight"`
	Dead             int        `json:"dead"`
	OldestReceivedAt *time.Time `json:"oldest_received_at,omitempty"`
}

// DeadLetterJSON is a dead letter as the admin API shows it.
type DeadLetterJSON struct {
	EventID    string    `json:"event_id"`
	Backend    string    `json:"backend"`
	Channel    string    `json:"channel"`
	Provider   string    `json:"provider"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error"`
	ReceivedAt time.Time `json:"received_at"`
	DeadAt     time.Time `json:"dead_at"`
}

func deadLetterJSON(d queue.DeadLetter) DeadLetterJSON {
	return DeadLetterJSON{EventID: d.EventID, Backend: d.Backend, Channel: d.Channel, Provider: d.Provider,
		Attempts: d.Attempts, LastError: d.LastError, ReceivedAt: d.ReceivedAt, DeadAt: d.DeadAt}
}

// EventJSON is an event as the admin API shows it; the body is base64
// (encoding/json's []byte), so it survives byte for byte. Header and Body
// are left out for a viewer (BodySize still says how big it is).
type EventJSON struct {
	ID              string              `json:"id"`
	Channel         string              `json:"channel"`
	Provider        string              `json:"provider"`
	ProviderEventID string              `json:"provider_event_id,omitempty"`
	OrderKey        string              `json:"order_key,omitempty"`
	ReceivedAt      time.Time           `json:"received_at"`
	Method          string              `json:"method"`
	Path            string              `json:"path"`
	Header          map[string][]string `json:"header,omitempty"`
	Body            []byte              `json:"body,omitempty"`
	BodySize        int                 `json:"body_size"`
	Backends        []string            `json:"backends"`
}

// eventJSON shows ev; withContent (operators) includes its headers and body.
func eventJSON(ev *queue.Event, withContent bool) EventJSON {
	e := EventJSON{
		ID: ev.ID, Channel: ev.Channel, Provider: ev.Provider, ProviderEventID: ev.ProviderEventID,
		OrderKey: ev.OrderKey, ReceivedAt: ev.ReceivedAt, Method: ev.Method, Path: ev.Path,
		BodySize: len(ev.Body), Backends: ev.Backends,
	}
	if withContent {
		e.Header, e.Body = redactHeaders(ev.Header), ev.Body
	}
	return e
}
