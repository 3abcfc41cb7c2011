package relay

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	dto "github.com/prometheus/client_model/go"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/relay/console"
	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// newConsole builds the console served under /ui/ and starts its counter
// sampler (it stops with the server).
func (s *Server) newConsole() http.Handler {
	c := console.New(consoleSource{s}, console.Options{Logger: s.log.With("component", "console"), Version: Version})
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		c.Run(s.ctx)
	}()
	return c
}

// consoleSource shows the Server to the console.
type consoleSource struct{ s *Server }

func (cs consoleSource) Open() bool { return len(cs.s.state.Load().cfg.Admin.Tokens) == 0 }

func (cs consoleSource) Login(r *http.Request, token string) (console.Identity, bool) {
	if cs.Open() {
		name := "anonymous"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			name = "cert:" + r.TLS.PeerCertificates[0].Subject.CommonName
		}
		return console.Identity{Name: name, Operator: true}, true
	}
	c, ok := cs.s.AuthenticateToken(token)
	if !ok {
		return console.Identity{}, false
	}
	return console.Identity{Name: c.Token, Operator: c.Operator()}, true
}

func (cs consoleSource) DeadLetters(backend, channel string, limit int) ([]queue.DeadLetter, error) {
	return cs.s.DeadLetters(backend, channel, limit)
}

// DeadLetter shows credentials redacted, as the JSON API does.
func (cs consoleSource) DeadLetter(id string) (*queue.Event, []queue.DeadLetter, error) {
	ev, dls, err := cs.s.DeadLetter(id)
	if err != nil {
		return nil, nil, err
	}
	shown := *ev
	shown.Header = redactHeaders(ev.Header)
	return &shown, dls, nil
}

func (cs consoleSource) Act(who console.Identity, client, action string, ids []string, backend string) (int, error) {
	c := Caller{Token: who.Name, Role: RoleViewer, Client: client}
	if who.Operator {
		c.Role = RoleOperator
	}
	switch action {
	case "replay":
		return cs.s.ReplayDeadLetters(c, ids, backend)
	case "purge":
		return cs.s.PurgeDeadLetters(c, ids, backend)
	case "replay_all":
		return cs.s.ReplayAllDeadLetters(c, backend)
	default:
		return cs.s.PurgeAllDeadLetters(c, backend)
	}
}

// Overview reads the relay's own counters (the Prometheus registry), the
// queue's memory-only stats, certificates and credential expiries.
func (cs consoleSource) Overview() console.Overview {
	s := cs.s
	st := s.state.Load()
	var o console.Overview
	fams, _ := s.reg.Gather()
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	each := func(name string, fn func(labels map[string]string, v float64)) {
		f := byName[name]
		if f == nil {
			return
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			switch {
			case m.Counter != nil:
				fn(l, m.GetCounter().GetValue())
			case m.Gauge != nil:
				fn(l, m.GetGauge().GetValue())
			}
		}
	}
	chIdx := map[string]int{}
	for _, ch := range st.cfg.Channels {
		chIdx[ch.Name] = len(o.Channels)
		o.Channels = append(o.Channels, console.Channel{Name: ch.Name, Provider: ch.Provider, AuthFailures: map[string]float64{}})
	}
	each("edgerelay_requests_total", func(l map[string]string, v float64) {
		if i, ok := chIdx[l["channel"]]; ok {
			o.Channels[i].Requests += v
		}
	})
	each("edgerelay_auth_failures_total", func(l map[string]string, v float64) {
		if i, ok := chIdx[l["channel"]]; ok {
			o.Channels[i].AuthFailures[l["reason"]] += v
		}
	})
	stats := s.q.Stats()
	beIdx := map[string]int{}
	for _, b := range st.cfg.Backends {
		beIdx[b.Name] = len(o.Backends)
		qs := stats[b.Name]
		o.Backends = append(o.Backends, console.Backend{Name: b.Name, Pending: qs.Pending, InFlight: qs.InFlight, Dead: qs.Dead, Oldest: qs.OldestReceivedAt})
	}
	// Backends removed by a reload may still hold dead letters.
	var gone []string
	for name := range stats {
		if _, ok := beIdx[name]; !ok {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		qs := stats[name]
		beIdx[name] = len(o.Backends)
		o.Backends = append(o.Backends, console.Backend{Name: name, Pending: qs.Pending, InFlight: qs.InFlight, Dead: qs.Dead, Oldest: qs.OldestReceivedAt})
	}
	each("edgerelay_backend_breaker_state", func(l map[string]string, v float64) {
		if i, ok := beIdx[l["backend"]]; ok {
			o.Backends[i].Breaker = int(v)
		}
	})
	each("edgerelay_delivery_attempts_total", func(l map[string]string, v float64) {
		if i, ok := beIdx[l["backend"]]; ok {
			if l["result"] == "delivered" {
				o.Backends[i].Delivered += v
			} else {
				o.Backends[i].Failed += v
			}
		}
	})
	upIdx := map[string]int{}
	for _, u := range st.cfg.Upstreams {
		upIdx[u.Name] = len(o.Upstreams)
		o.Upstreams = append(o.Upstreams, console.Upstream{Name: u.Name})
	}
	each("upstream_breaker_state", func(l map[string]string, v float64) {
		if i, ok := upIdx[l["upstream"]]; ok {
			o.Upstreams[i].Breaker = int(v)
		}
	})
	each("upstream_requests_total", func(l map[string]string, v float64) {
		if i, ok := upIdx[l["upstream"]]; ok {
			o.Upstreams[i].Requests += v
			if code, err := strconv.Atoi(l["code"]); err == nil && code >= 500 {
				o.Upstreams[i].Errors += v
			}
		}
	})
	for _, c := range s.certificates() {
		o.Certificates = append(o.Certificates, console.Certificate{Listener: c.Listener, Source: c.Source, Names: c.Names, NotAfter: c.NotAfter})
	}
	for _, e := range s.expiries() {
		o.Credentials = append(o.Credentials, console.Credential{Owner: e.owner, Name: e.name, Expires: e.at})
	}
	o.QueueBytes = s.q.Size()
	return o
}

func (cs consoleSource) QuarantineChannels() []console.QuarantineChannel {
	var out []console.QuarantineChannel
	for _, c := range cs.s.QuarantineChannels() {
		out = append(out, console.QuarantineChannel{Channel: c.Channel, Callbacks: c.Callbacks, Bytes: c.Bytes, Dropped: c.Dropped})
	}
	return out
}

func (cs consoleSource) Quarantined(channel string, limit int) ([]quarantine.Summary, error) {
	return cs.s.Quarantined(channel, limit)
}

func (cs consoleSource) QuarantinedCallback(id string, withContent bool) (quarantine.Summary, map[string][]string, []byte, error) {
	q, err := cs.s.QuarantinedCallback(id, withContent)
	return q.Summary, q.Header, q.Body, err
}

func (cs consoleSource) QuarantineAct(who console.Identity, client, action, channel, id string) (string, error) {
	c := Caller{Token: who.Name, Role: RoleViewer, Client: client}
	if who.Operator {
		c.Role = RoleOperator
	}
	switch action {
	case "release":
		released, still, err := cs.s.ReleaseQuarantine(c, channel)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Released %d callback(s) of %s; %d still fail authentication and stay.", released, channel, still), nil
	case "purge":
		n, err := cs.s.PurgeQuarantine(c, channel)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Dropped %d kept callback(s) of %s.", n, channel), nil
	default:
		if err := cs.s.DeleteQuarantined(c, id); errors.Is(err, quarantine.ErrNotFound) {
			return "That callback is gone already.", nil
		} else if err != nil {
			return "", err
		}
		return "Dropped callback " + id + ".", nil
	}
}
