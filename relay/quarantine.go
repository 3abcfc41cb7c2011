package relay

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// The relay's side of the quarantine (SPEC §13): what the auth-failure
// branch of serveCallback keeps, and the release, which verifies a kept
// callback exactly as a live one (verifyCallback) and stores it through
// the same newEvent and Enqueue. The storage is relay/quarantine.

// quarantineSettings lists the channels of cfg that have a quarantine.
func quarantineSettings(cfg *Config) map[string]quarantine.Settings {
	out := map[string]quarantine.Settings{}
	for _, ch := range cfg.Channels {
		if ch.Quarantine != nil {
			out[ch.Name] = quarantine.Settings{MaxSize: ch.Quarantine.MaxSize, Keep: ch.Quarantine.Keep}
		}
	}
	return out
}

// quarantine keeps a callback refused for reason when its channel has a
// quarantine and the reason is one it keeps; it returns the record's id,
// or "". A callback is kept only when every auth block of the channel
// either passes or fails for a kept reason: a forged callback from an
// address outside ip_allow, or without one of the credentials, is never
// kept, whatever block failed first.
func (s *Server) quarantine(r *http.Request, ch *ChannelConfig, body []byte, receivedAt time.Time, reason auth.Reason) string {
	if ch.Quarantine == nil || !quarantine.Keeps(string(reason)) {
		return ""
	}
	ar := callbackAuthRequest(r, ch, body)
	for _, a := range ch.Auth {
		if a.Verifier == nil {
			return ""
		}
		if err := a.Verifier.Verify(ar); err != nil && !quarantine.Keeps(string(auth.ReasonOf(err))) {
			return ""
		}
	}
	rec := &quarantine.Record{
		Channel:    ch.Name,
		ReceivedAt: receivedAt.UTC(),
		Reason:     string(reason),
		Method:     r.Method,
		RequestURI: rawTarget(r),
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		Header:     r.Header,
		Body:       body,
	}
	if p := peerCert(r); p != nil {
		rec.PeerCert = p.Raw
	}
	id, _ := s.qt.Add(rec)
	return id
}

// errNoChannel: the channel named in a quarantine request does not exist.
var errNoChannel = errors.New("no such channel")

// releaseQuarantine re-verifies every kept callback of channel against its
// current configuration and enqueues those that pass, oldest first, with
// their original arrival time: de-duplication, routing and ordering work
// as if they had just arrived.
func (s *Server) releaseQuarantine(ctx context.Context, channel string) (released, stillFailing int, err error) {
	st := s.state.Load()
	var ch *ChannelConfig
	for _, c := range st.cfg.Channels {
		if c.Name == channel {
			ch = c
		}
	}
	if ch == nil {
		return 0, 0, errNoChannel
	}
	released, stillFailing, err = s.qt.Release(ctx, channel, func(rec *quarantine.Record) (bool, error) {
		return s.releaseOne(ctx, st, ch, rec)
	})
	s.log.Info("quarantine released", "channel", channel, "released", released, "still_failing", stillFailing, "err", err)
	return released, stillFailing, err
}

// releaseOne verifies one kept callback as a live one and enqueues it when
// it passes; an error means the queue could not take it.
func (s *Server) releaseOne(ctx context.Context, st *state, ch *ChannelConfig, rec *quarantine.Record) (bool, error) {
	log := callbackLog{s.log, ch.Name, rec.RemoteAddr}
	ok, reason := releasable(ch, rec)
	if !ok {
		log.Debug("quarantined callback still fails", "quarantine_id", rec.ID, "reason", reason)
		return false, nil
	}
	u, _ := url.ParseRequestURI(rec.RequestURI)
	ev, res := newEvent(st, ch, rec.Method, rec.RequestURI, rec.Header, u.Query(), rec.Body, rec.ReceivedAt)
	out, err := s.q.Enqueue(ctx, ev, ch.DedupeWindow)
	if err != nil {
		return false, err
	}
	s.metrics.quarantineReleased.WithLabelValues(ch.Name).Inc()
	log.Info("quarantined callback released", "quarantine_id", rec.ID, "event_id", out.ID, "provider_event_id", res.EventID,
		"duplicate", out.Duplicate, "backends", ev.Backends, "received_at", rec.ReceivedAt)
	return true, nil
}

// releasable verifies rec against ch as a live callback received at
// rec.ReceivedAt: same method rules, same verifiers (client_names and
// every auth block), on the original URL, headers, body and client
// address. It returns the failure reason when it does not pass.
func releasable(ch *ChannelConfig, rec *quarantine.Record) (bool, string) {
	if !slices.Contains(ch.Methods, rec.Method) {
		return false, "method " + rec.Method + " not allowed"
	}
	u, err := url.ParseRequestURI(rec.RequestURI)
	if err != nil {
		return false, "unparsable request URI"
	}
	var peer *x509.Certificate
	if len(rec.PeerCert) > 0 {
		if peer, err = x509.ParseCertificate(rec.PeerCert); err != nil {
			return false, "unparsable client certificate"
		}
	}
	ar := &auth.Request{
		Method:     rec.Method,
		URL:        u,
		Host:       rec.Host,
		PublicURL:  ch.PublicURL,
		Header:     rec.Header,
		Body:       rec.Body,
		RemoteAddr: rec.RemoteAddr,
		At:         rec.ReceivedAt,
	}
	if reason, detail := verifyCallback(ch, ar, peer); reason != "" {
		return false, fmt.Sprintf("%s (%s)", reason, detail)
	}
	return true, ""
}
