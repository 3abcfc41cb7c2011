package relay

import (
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// Credentials and certificates with an end date, announced while running.

// expiryWatch announces expiring credentials in the log, daily, from 14
// days before; the metric is computed at scrape time.
func (s *Server) expiryWatch() {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		for _, e := range s.expiries() {
			left := time.Until(e.at)
			switch {
			case left <= 0:
				s.log.Error("credential expired: callbacks using it are rejected, an injected one is no longer sent", "owner", e.owner, "credential", e.name, "expired", e.at.Format(time.DateOnly))
			case left <= 14*24*time.Hour:
				s.log.Warn("credential expires soon: rotate it", "owner", e.owner, "credential", e.name, "expires", e.at.Format(time.DateOnly), "days_left", int(left.Hours()/24))
			}
		}
		for _, c := range s.state.Load().cfg.TrustCerts {
			left := time.Until(c.NotAfter)
			switch {
			case left <= 0:
				s.log.Error("trusted certificate expired", "owner", c.Owner, "subject", c.Subject, "expired", c.NotAfter.UTC().Format(time.DateOnly))
			case left <= 30*24*time.Hour:
				s.log.Warn("trusted certificate expires soon", "owner", c.Owner, "subject", c.Subject, "expires", c.NotAfter.UTC().Format(time.DateOnly), "days_left", int(left.Hours()/24))
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

type expiry struct {
	owner, name string
	at          time.Time
}

func (s *Server) expiries() []expiry {
	st := s.state.Load()
	var out []expiry
	for _, ch := range st.cfg.Channels {
		for _, a := range ch.Auth {
			if e, ok := a.Verifier.(auth.Expiring); ok {
				for _, x := range e.Expiries() {
					out = append(out, expiry{owner: "channel " + ch.Name, name: x.Name, at: x.At})
				}
			}
		}
	}
	s.mu.Lock()
	for name, p := range s.proxies {
		for _, x := range p.Expiries() {
			out = append(out, expiry{owner: "upstream " + name, name: x.Name, at: x.At})
		}
	}
	for name, d := range s.deliverers {
		for _, x := range d.rt.Load().inject.Expiries() {
			out = append(out, expiry{owner: "backend " + name, name: x.Name, at: x.At})
		}
	}
	s.mu.Unlock()
	return out
}
