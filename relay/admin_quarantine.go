package relay

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/edgerelay/edgerelay/relay/logout"
	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// The quarantine's admin API (SPEC §13):
//
//	GET    /api/v1/quarantine?channel=C&limit=N   kept callbacks (no headers or bodies), oldest first, and per-channel totals
//	GET    /api/v1/quarantine/{id}                one kept callback; headers and body for operators only
//	DELETE /api/v1/quarantine/{id}                drop it
//	POST   /api/v1/quarantine/release?channel=C   re-verify every kept callback of C, enqueue those that pass
//	POST   /api/v1/quarantine/purge?channel=C     drop every kept callback of C
//
// Credential headers (those that look like one, and those the channel's
// auth blocks read) are shown redacted, even to operators.

// QuarantinedJSON is a kept callback as the admin API shows it. Header and
// Body are left out for a viewer; Body is base64 (encoding/json's []byte).
type QuarantinedJSON struct {
	quarantine.Summary
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"`
}

// QuarantineChannelJSON is one channel's quarantine totals.
type QuarantineChannelJSON struct {
	Channel   string `json:"channel"`
	Callbacks int    `json:"callbacks"`
	Bytes     int64  `json:"bytes"`
	Dropped   uint64 `json:"dropped"`
}

func (s *Server) quarantineRoutes(mux *http.ServeMux) {
	s.handleAdmin(mux, "GET /api/v1/quarantine", accessViewer, s.apiQuarantineList)
	s.handleAdmin(mux, "GET /api/v1/quarantine/{id}", accessViewer, s.apiQuarantineGet)
	s.handleAdmin(mux, "DELETE /api/v1/quarantine/{id}", accessOperator, s.apiQuarantineDelete)
	s.handleAdmin(mux, "POST /api/v1/quarantine/release", accessOperator, s.apiQuarantineRelease)
	s.handleAdmin(mux, "POST /api/v1/quarantine/purge", accessOperator, s.apiQuarantinePurge)
}

// QuarantineChannels returns the totals of every channel with a quarantine.
func (s *Server) QuarantineChannels() []QuarantineChannelJSON {
	out := []QuarantineChannelJSON{}
	for _, st := range s.qt.Stats() {
		out = append(out, QuarantineChannelJSON{Channel: st.Channel, Callbacks: st.Callbacks, Bytes: st.Bytes, Dropped: st.Dropped})
	}
	return out
}

// Quarantined lists the kept callbacks of channel ("" = all), oldest
// first, at most limit (0 = all).
func (s *Server) Quarantined(channel string, limit int) ([]quarantine.Summary, error) {
	return s.qt.List(channel, limit)
}

// QuarantinedCallback returns one kept callback as the admin API shows it;
// withContent (operators) includes its headers, credentials redacted, and
// its body.
func (s *Server) QuarantinedCallback(id string, withContent bool) (QuarantinedJSON, error) {
	rec, err := s.qt.Get(id)
	if err != nil {
		return QuarantinedJSON{}, err
	}
	out := QuarantinedJSON{Summary: quarantine.Summarize(rec)}
	if withContent {
		out.Header = s.redactQuarantined(rec.Channel, rec.Header)
		out.Body = rec.Body
		if out.Body == nil {
			out.Body = []byte{}
		}
	}
	return out, nil
}

// redactQuarantined copies h for display: credential-looking headers
// (redactHeaders) and every header the channel's auth blocks read show
// "[redacted]". A kept callback holds them (its release needs them); the
// admin API never shows them.
func (s *Server) redactQuarantined(channel string, h http.Header) map[string][]string {
	out := redactHeaders(h)
	for _, ch := range s.state.Load().cfg.Channels {
		if ch.Name != channel {
			continue
		}
		for _, name := range ch.AuthHeaders {
			if vs, ok := out[name]; ok {
				r := make([]string, len(vs))
				for i := range r {
					r[i] = redacted
				}
				out[name] = r
			}
		}
	}
	return out
}

// ReleaseQuarantine re-verifies and enqueues the kept callbacks of channel
// (see releaseQuarantine).
func (s *Server) ReleaseQuarantine(c Caller, channel string) (released, stillFailing int, err error) {
	released, stillFailing, err = s.releaseQuarantine(s.ctx, channel)
	s.auditQuarantine(c, "quarantine_release", channel, nil, released, err, "still_failing", stillFailing)
	return released, stillFailing, err
}

// DeleteQuarantined drops one kept callback.
func (s *Server) DeleteQuarantined(c Caller, id string) error {
	channel := ""
	if rec, err := s.qt.Get(id); err == nil {
		channel = rec.Channel
	}
	err := s.qt.Delete(id)
	n := 1
	if err != nil {
		n = 0
	}
	s.auditQuarantine(c, "quarantine_delete", channel, []string{id}, n, err)
	return err
}

// PurgeQuarantine drops every kept callback of channel.
func (s *Server) PurgeQuarantine(c Caller, channel string) (int, error) {
	n, err := s.qt.Purge(channel)
	s.auditQuarantine(c, "quarantine_purge", channel, nil, n, err)
	return n, err
}

// auditQuarantine writes the one "admin action" line of a quarantine
// action.
func (s *Server) auditQuarantine(c Caller, action, channel string, ids []string, n int, err error, extra ...any) {
	result := "ok"
	switch {
	case errors.Is(err, quarantine.ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	attrs := []any{"token", c.Token, "role", c.Role, "client", c.Client, "action", action, "channel", channel}
	if ids != nil {
		attrs = append(attrs, "ids", ids)
	}
	attrs = append(attrs, "count", n)
	attrs = append(attrs, extra...)
	attrs = append(attrs, "result", result)
	lvl := slog.LevelInfo
	if result == "error" {
		attrs = append(attrs, "err", err.Error())
		lvl = slog.LevelError
	}
	s.log.Log(logout.Now(s.ctx), lvl, "admin action", attrs...)
}

func (s *Server) apiQuarantineList(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 1000
	}
	if channel != "" && !s.answerQuarantineChannel(w, channel) {
		return
	}
	list, err := s.Quarantined(channel, limit)
	if err != nil {
		writeQuarantineError(w, err)
		return
	}
	chans := s.QuarantineChannels()
	if channel != "" {
		var one []QuarantineChannelJSON
		for _, c := range chans {
			if c.Channel == channel {
				one = append(one, c)
			}
		}
		chans = one
	}
	writeJSON(w, http.StatusOK, map[string]any{"quarantined": list, "channels": chans})
}

func (s *Server) apiQuarantineGet(w http.ResponseWriter, r *http.Request) {
	cb, err := s.QuarantinedCallback(r.PathValue("id"), callerOf(r).Operator())
	if err != nil {
		writeQuarantineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"callback": cb})
}

func (s *Server) apiQuarantineDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteQuarantined(callerOf(r), r.PathValue("id")); err != nil {
		writeQuarantineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": 1})
}

func (s *Server) apiQuarantineRelease(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	if !s.answerQuarantineChannel(w, channel) {
		return
	}
	n, m, err := s.ReleaseQuarantine(callerOf(r), channel)
	if err != nil {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"released": n, "still_failing": m,
			"error": "release stopped: " + err.Error() + "; the callbacks not released yet stay in the quarantine"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": n, "still_failing": m})
}

func (s *Server) apiQuarantinePurge(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	if !s.answerQuarantineChannel(w, channel) {
		return
	}
	n, err := s.PurgeQuarantine(callerOf(r), channel)
	if err != nil {
		writeQuarantineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"purged": n})
}

// answerQuarantineChannel answers 400 or 404 unless channel names a
// channel with a quarantine.
func (s *Server) answerQuarantineChannel(w http.ResponseWriter, channel string) bool {
	if channel == "" {
		writeJSONError(w, http.StatusBadRequest, "missing ?channel=NAME")
		return false
	}
	known := false
	for _, ch := range s.state.Load().cfg.Channels {
		known = known || ch.Name == channel
	}
	switch {
	case !known:
		writeJSONError(w, http.StatusNotFound, "no channel "+strconv.Quote(channel))
		return false
	case !s.qt.Has(channel):
		writeJSONError(w, http.StatusNotFound, "channel "+strconv.Quote(channel)+" has no quarantine block")
		return false
	}
	return true
}

func writeQuarantineError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, quarantine.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "no such quarantined callback")
	case errors.Is(err, quarantine.ErrNoQuarantine), errors.Is(err, errNoChannel):
		writeJSONError(w, http.StatusNotFound, err.Error())
	default:
		writeJSONError(w, http.StatusInternalServerError, err.Error())
	}
}
