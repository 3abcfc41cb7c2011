package relay

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgerelay/edgerelay/queue"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// The admin API (JSON, on the admin listener, loopback by default). The
// guard in admin_guard.go runs first: Host check, bearer token or session,
// JSON-only writes, roles. "viewer" may GET; "operator" may also POST and
// DELETE and sees event bodies and headers.
//
//	GET    /healthz                              process is up (no token)
//	GET    /readyz                               queue open, certificates present, not draining (no token)
//	GET    /metrics                              Prometheus (no token with metrics_public)
//	GET    /api/v1/queues                        per-backend pending, in flight, dead, oldest age
//	GET    /api/v1/deadletters?backend=B&channel=C&limit=N dead letters, oldest first
//	GET    /api/v1/deadletters/{id}              one dead-lettered event (headers, body for operators) and its dead letters
//	POST   /api/v1/deadletters/{id}/replay?backend=B
//	POST   /api/v1/deadletters/replay?backend=B  every dead letter (of B)
//	DELETE /api/v1/deadletters/{id}?backend=B
//	POST   /api/v1/deadletters/purge?backend=B   every dead letter (of B)
//	GET    /api/v1/certs                         served certificates
//	GET    /ui/...                               the console (relay/console)
//
// Subsystems add their own endpoints with (*Server).handleAdmin.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	s.handleAdmin(mux, "GET /healthz", accessPublic, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": Version})
	})
	s.handleAdmin(mux, "GET /readyz", accessPublic, s.readyz)
	s.handleAdmin(mux, "GET /metrics", accessMetrics, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}).ServeHTTP)
	s.handleAdmin(mux, "GET /api/v1/queues", accessViewer, s.apiQueues)
	s.handleAdmin(mux, "GET /api/v1/deadletters", accessViewer, s.apiDeadLetters)
	s.handleAdmin(mux, "GET /api/v1/deadletters/{id}", accessViewer, s.apiDeadLetter)
	s.handleAdmin(mux, "POST /api/v1/deadletters/{id}/replay", accessOperator, func(w http.ResponseWriter, r *http.Request) {
		if !s.knownBackend(w, r) {
			return
		}
		n, err := s.ReplayDeadLetters(callerOf(r), []string{r.PathValue("id")}, r.URL.Query().Get("backend"))
		answerCount(w, "replayed", n, err)
	})
	s.handleAdmin(mux, "POST /api/v1/deadletters/replay", accessOperator, func(w http.ResponseWriter, r *http.Request) {
		if !s.knownBackend(w, r) {
			return
		}
		n, err := s.ReplayAllDeadLetters(callerOf(r), r.URL.Query().Get("backend"))
		answerCount(w, "replayed", n, err)
	})
	s.handleAdmin(mux, "DELETE /api/v1/deadletters/{id}", accessOperator, func(w http.ResponseWriter, r *http.Request) {
		if !s.knownBackend(w, r) {
			return
		}
		n, err := s.PurgeDeadLetters(callerOf(r), []string{r.PathValue("id")}, r.URL.Query().Get("backend"))
		answerCount(w, "purged", n, err)
	})
	s.handleAdmin(mux, "POST /api/v1/deadletters/purge", accessOperator, func(w http.ResponseWriter, r *http.Request) {
		if !s.knownBackend(w, r) {
			return
		}
		n, err := s.PurgeAllDeadLetters(callerOf(r), r.URL.Query().Get("backend"))
		answerCount(w, "purged", n, err)
	})
	s.handleAdmin(mux, "GET /api/v1/certs", accessViewer, func(w http.ResponseWriter, r *http.Request) {
		certs := s.certificates()
		if certs == nil {
			certs = []relaytls.CertInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"certificates": certs})
	})
	s.quarantineRoutes(mux)
}

func (s *Server) apiQueues(w http.ResponseWriter, r *http.Request) {
	var rows []queueJSON
	for b, st := range s.q.Stats() {
		rr := queueJSON{Backend: b, Pending: st.Pending, InFlight: st.InFlight, Dead: st.Dead}
		if !st.OldestReceivedAt.IsZero() {
			t := st.OldestReceivedAt
			rr.OldestReceivedAt = &t
		}
		rows = append(rows, rr)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Backend < rows[j].Backend })
	if rows == nil {
		rows = []queueJSON{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": rows, "size_bytes": s.q.Size()})
}

func (s *Server) apiDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 1000
	}
	dls, err := s.DeadLetters(r.URL.Query().Get("backend"), r.URL.Query().Get("channel"), limit)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]DeadLetterJSON, 0, len(dls))
	for _, d := range dls {
		out = append(out, deadLetterJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
}

func (s *Server) apiDeadLetter(w http.ResponseWriter, r *http.Request) {
	ev, dls, err := s.DeadLetter(r.PathValue("id"))
	if errors.Is(err, queue.ErrNotFound) {
		writeJSONError(w, http.StatusNotFound, "no such dead letter")
		return
	} else if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]DeadLetterJSON, 0, len(dls))
	for _, d := range dls {
		out = append(out, deadLetterJSON(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"event": eventJSON(ev, callerOf(r).Operator()), "dead_letters": out})
}

// knownBackend answers 404 and returns false when the request names a
// backend (?backend=) that is neither configured nor holds anything in the
// queue (a backend removed by a reload keeps its dead letters), so a typo
// is not answered "0 replayed".
func (s *Server) knownBackend(w http.ResponseWriter, r *http.Request) bool {
	b := r.URL.Query().Get("backend")
	if b == "" {
		return true
	}
	names := map[string]bool{}
	for _, be := range s.state.Load().cfg.Backends {
		names[be.Name] = true
	}
	for name := range s.q.Stats() {
		names[name] = true
	}
	if names[b] {
		return true
	}
	known := slices.Sorted(maps.Keys(names))
	writeJSONError(w, http.StatusNotFound, fmt.Sprintf("unknown backend %q (known: %s)", b, strings.Join(known, ", ")))
	return false
}

func answerCount(w http.ResponseWriter, verb string, n int, err error) {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "no such dead letter")
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
	default:
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
	if s.adminTLS != nil {
		out = append(out, s.adminTLS.Certificates()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Listener < out[j].Listener })
	return out
}
