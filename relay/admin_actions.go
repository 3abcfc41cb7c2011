package relay

import (
	"errors"
	"log/slog"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/logout"
)

// Dead-letter reads and actions shared by the JSON API and the console.
// Every mutating action writes exactly one audit line (msg "admin action").

// DeadLetters lists dead letters of backend and channel ("" = any), oldest
// first, at most limit.
func (s *Server) DeadLetters(backend, channel string, limit int) ([]queue.DeadLetter, error) {
	if channel == "" {
		return s.q.DeadLetters(backend, limit)
	}
	all, err := s.q.DeadLetters(backend, 0)
	if err != nil {
		return nil, err
	}
	var out []queue.DeadLetter
	for _, d := range all {
		if d.Channel == channel {
			out = append(out, d)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
	}
	return out, nil
}

// DeadLetter returns a dead-lettered event and its dead letters;
// queue.ErrNotFound when the event is unknown or has no dead letter (a
// pending or delivered event is not the dead-letter API's business).
func (s *Server) DeadLetter(id string) (*queue.Event, []queue.DeadLetter, error) {
	ev, dls, err := s.q.Get(id)
	if err != nil {
		return nil, nil, err
	}
	if len(dls) == 0 {
		return nil, nil, queue.ErrNotFound
	}
	return ev, dls, nil
}

// ReplayDeadLetters replays the dead letters of ids (of backend, "" =
// all of their backends); queue.ErrNotFound when none was found.
func (s *Server) ReplayDeadLetters(c Caller, ids []string, backend string) (int, error) {
	return s.eachDead(c, "replay", ids, backend, s.q.Replay)
}

// PurgeDeadLetters deletes the dead letters of ids.
func (s *Server) PurgeDeadLetters(c Caller, ids []string, backend string) (int, error) {
	return s.eachDead(c, "purge", ids, backend, s.q.Purge)
}

// ReplayAllDeadLetters replays every dead letter of backend ("" = all).
func (s *Server) ReplayAllDeadLetters(c Caller, backend string) (int, error) {
	n, err := s.q.ReplayAll(backend)
	s.audit(c, "replay_all", backend, nil, n, err)
	return n, err
}

// PurgeAllDeadLetters deletes every dead letter of backend ("" = all).
func (s *Server) PurgeAllDeadLetters(c Caller, backend string) (int, error) {
	n, err := s.q.PurgeAll(backend)
	s.audit(c, "purge_all", backend, nil, n, err)
	return n, err
}

func (s *Server) eachDead(c Caller, action string, ids []string, backend string, fn func(id, backend string) (int, error)) (int, error) {
	total := 0
	var firstErr error
	for _, id := range ids {
		n, err := fn(id, backend)
		total += n
		if err != nil && !errors.Is(err, queue.ErrNotFound) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil && total == 0 {
		firstErr = queue.ErrNotFound
	}
	s.audit(c, action, backend, ids, total, firstErr)
	if total > 0 && errors.Is(firstErr, queue.ErrNotFound) {
		firstErr = nil
	}
	return total, firstErr
}

// Audit writes the audit line of an admin action done by c (for
// subsystems with their own actions, such as the quarantine).
func (s *Server) Audit(c Caller, action, backend string, ids []string, n int, err error) {
	s.audit(c, action, backend, ids, n, err)
}

func (s *Server) audit(c Caller, action, backend string, ids []string, n int, err error) {
	result := "ok"
	switch {
	case errors.Is(err, queue.ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	attrs := []any{"token", c.Token, "role", c.Role, "client", c.Client, "action", action, "backend", backend}
	if ids != nil {
		attrs = append(attrs, "ids", ids)
	}
	attrs = append(attrs, "count", n, "result", result)
	lvl := slog.LevelInfo
	if err != nil && result == "error" {
		attrs = append(attrs, "err", err.Error())
		lvl = slog.LevelError
	}
	s.log.Log(logout.Now(s.ctx), lvl, "admin action", attrs...)
}
