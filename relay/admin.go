package relay

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgerelay/edgerelay/queue"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// The admin API (JSON, on the admin listener, loopback by default):
//
//	GET    /healthz                              process is up
//	GET    /readyz                               queue open, certificates present, not draining
//	GET    /metrics                              Prometheus
//	GET    /api/v1/queues                        per-backend pending, in flight, dead, oldest age
//	GET    /api/v1/deadletters?backend=B&limit=N dead letters, oldest first
//	GET    /api/v1/deadletters/{id}              one event (headers, body) and its dead letters
//	POST   /api/v1/deadletters/{id}/replay?backend=B
//	POST   /api/v1/deadletters/replay?backend=B  every dead letter (of B)
//	DELETE /api/v1/deadletters/{id}?backend=B
//	POST   /api/v1/deadletters/purge?backend=B   every dead letter (of B)
//	GET    /api/v1/certs                         served certificates
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": Version})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/queues", func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			Backend          string     `json:"backend"`
			Pending          int        `json:"pending"`
			InFlight         int        `json:"in_flight"`
			Dead             int        `json:"dead"`
			OldestReceivedAt *time.Time `json:"oldest_received_at,omitempty"`
		}
		var rows []row
		for b, st := range s.q.Stats() {
			rr := row{Backend: b, Pending: st.Pending, InFlight: st.InFlight, Dead: st.Dead}
			if !st.OldestReceivedAt.IsZero() {
				t := st.OldestReceivedAt
				rr.OldestReceivedAt = &t
			}
			rows = append(rows, rr)
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].Backend < rows[j].Backend })
		writeJSON(w, http.StatusOK, map[string]any{"queues": rows, "size_bytes": s.q.Size()})
	})
	mux.HandleFunc("GET /api/v1/deadletters", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 {
			limit = 1000
		}
		dls, err := s.q.DeadLetters(r.URL.Query().Get("backend"), limit)
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if dls == nil {
			dls = []queue.DeadLetter{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"dead_letters": dls})
	})
	mux.HandleFunc("GET /api/v1/deadletters/{id}", func(w http.ResponseWriter, r *http.Request) {
		ev, dls, err := s.q.Get(r.PathValue("id"))
		if errors.Is(err, queue.ErrNotFound) {
			writeJSONError(w, http.StatusNotFound, "no such event")
			return
		} else if err != nil {
			writeJSONError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"event": eventJSON(ev), "dead_letters": dls})
	})
	mux.HandleFunc("POST /api/v1/deadletters/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.q.Replay(r.PathValue("id"), r.URL.Query().Get("backend"))
		s.answerCount(w, "replayed", n, err)
	})
	mux.HandleFunc("POST /api/v1/deadletters/replay", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.q.ReplayAll(r.URL.Query().Get("backend"))
		s.answerCount(w, "replayed", n, err)
	})
	mux.HandleFunc("DELETE /api/v1/deadletters/{id}", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.q.Purge(r.PathValue("id"), r.URL.Query().Get("backend"))
		s.answerCount(w, "purged", n, err)
	})
	mux.HandleFunc("POST /api/v1/deadletters/purge", func(w http.ResponseWriter, r *http.Request) {
		n, err := s.q.PurgeAll(r.URL.Query().Get("backend"))
		s.answerCount(w, "purged", n, err)
	})
	mux.HandleFunc("GET /api/v1/certs", func(w http.ResponseWriter, r *http.Request) {
		certs := s.certificates()
		if certs == nil {
			certs = []relaytls.CertInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"certificates": certs})
	})
	s.quarantineRoutes(mux)
	return mux
}

func (s *Server) answerCount(w http.ResponseWriter, verb string, n int, err error) {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "no such dead letter")
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Info("dead letters "+verb, "count", n)
		writeJSON(w, http.StatusOK, map[string]any{verb: n})
	}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	var notReady []string
	if s.draining.Load() {
		notReady = append(notReady, "shutting down")
	}
	s.mu.Lock()
	for name, ts := range s.tlsServers {
		if !ts.Ready() {
			notReady = append(notReady, "listener "+name+" has no certificate yet")
		}
	}
	s.mu.Unlock()
	if len(notReady) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": notReady})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

func (s *Server) certificates() []relaytls.CertInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []relaytls.CertInfo
	for _, ts := range s.tlsServers {
		out = append(out, ts.Certificates()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Listener < out[j].Listener })
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// EventJSON is an event as the admin API shows it; the body is base64
// (encoding/json's []byte), so it survives byte for byte.
type EventJSON struct {
	ID              string              `json:"id"`
	Channel         string              `json:"channel"`
	Provider        string              `json:"provider"`
	ProviderEventID string              `json:"provider_event_id,omitempty"`
	OrderKey        string              `json:"order_key,omitempty"`
	ReceivedAt      time.Time           `json:"received_at"`
	Method          string              `json:"method"`
	Path            string              `json:"path"`
	Header          map[string][]string `json:"header"`
	Body            []byte              `json:"body"`
	Backends        []string            `json:"backends"`
}

func eventJSON(ev *queue.Event) EventJSON {
	return EventJSON{
		ID: ev.ID, Channel: ev.Channel, Provider: ev.Provider, ProviderEventID: ev.ProviderEventID,
		OrderKey: ev.OrderKey, ReceivedAt: ev.ReceivedAt, Method: ev.Method, Path: ev.Path,
		Header: ev.Header, Body: ev.Body, Backends: ev.Backends,
	}
}
