package relay

import (
	"github.com/edgerelay/edgerelay/relay/console"
	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// The console's quarantine pages read and act through the same Server
// methods as the admin API (one audit line per action).

var _ console.QuarantineSource = consoleSource{}

func (cs consoleSource) QuarantineChannels() []console.QuarantineChannel {
	var out []console.QuarantineChannel
	for _, c := range cs.s.QuarantineChannels() {
		out = append(out, console.QuarantineChannel{Name: c.Channel, Callbacks: c.Callbacks, Bytes: c.Bytes, Dropped: c.Dropped})
	}
	return out
}

func (cs consoleSource) Quarantined(channel string, limit int) ([]quarantine.Summary, error) {
	return cs.s.Quarantined(channel, limit)
}

func (cs consoleSource) QuarantinedCallback(id string, withContent bool) (console.QuarantinedCallback, error) {
	k, err := cs.s.QuarantinedCallback(id, withContent)
	return console.QuarantinedCallback{Summary: k.Summary, Header: k.Header, Body: k.Body}, err
}

func (cs consoleSource) QuarantineAct(who console.Identity, client, action, channel string, ids []string) (int, int, error) {
	c := Caller{Token: who.Name, Role: RoleViewer, Client: client}
	if who.Operator {
		c.Role = RoleOperator
	}
	switch action {
	case "release":
		return cs.s.ReleaseQuarantine(c, channel)
	case "purge_all":
		n, err := cs.s.PurgeQuarantine(c, channel)
		return n, 0, err
	}
	n := 0
	for _, id := range ids {
		if err := cs.s.DeleteQuarantined(c, id); err != nil {
			return n, 0, err
		}
		n++
	}
	return n, 0, nil
}
