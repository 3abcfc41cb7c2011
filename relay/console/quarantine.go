package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// QuarantineSource is the part of a Source that shows the quarantine of
// callbacks that failed authentication (relay/quarantine). A Source
// without it gets no Quarantine page.
type QuarantineSource interface {
	// QuarantineChannels are the channels with a quarantine and their totals.
	QuarantineChannels() []QuarantineChannel
	// Quarantined lists kept callbacks of channel ("" = all), oldest first.
	Quarantined(channel string, limit int) ([]quarantine.Summary, error)
	// QuarantinedCallback is one kept callback; header and body (credentials
	// redacted) only when withContent. quarantine.ErrNotFound otherwise.
	QuarantinedCallback(id string, withContent bool) (quarantine.Summary, map[string][]string, []byte, error)
	// QuarantineAct releases or purges a channel's callbacks, or deletes
	// one ("release", "purge" with channel; "delete" with id), writes the
	// audit line and says what happened.
	QuarantineAct(who Identity, client, action, channel, id string) (string, error)
}

// QuarantineChannel is one channel's quarantine totals.
type QuarantineChannel struct {
	Channel   string
	Callbacks int
	Bytes     int64
	Dropped   uint64
}

type quarantineData struct {
	Channel  string
	Channels []quarantineChannelRow
	Rows     []quarantine.Summary
	Limit    int
	Err      string
}

type quarantineChannelRow struct {
	QuarantineChannel
	Size string
}

func (c *Console) quarantineSource() QuarantineSource {
	q, _ := c.src.(QuarantineSource)
	return q
}

func (c *Console) quarantineList(w http.ResponseWriter, r *http.Request, s *session) {
	qs := c.quarantineSource()
	d := quarantineData{Channel: r.URL.Query().Get("channel"), Limit: listLimit}
	for _, ch := range qs.QuarantineChannels() {
		d.Channels = append(d.Channels, quarantineChannelRow{ch, bytesHuman(ch.Bytes)})
	}
	sort.Slice(d.Channels, func(i, j int) bool { return d.Channels[i].Channel < d.Channels[j].Channel })
	rows, err := qs.Quarantined(d.Channel, listLimit)
	if err != nil {
		d.Err = err.Error()
	}
	d.Rows = rows
	c.render(w, http.StatusOK, "quarantine", view{Title: "Quarantine", Nav: "quarantine", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

type quarantinedData struct {
	Rec      quarantine.Summary
	Headers  []headerRow
	Body     string
	BodyKind string
}

func (c *Console) quarantined(w http.ResponseWriter, r *http.Request, s *session, id string) {
	sum, hdr, body, err := c.quarantineSource().QuarantinedCallback(id, s.who.Operator)
	if errors.Is(err, quarantine.ErrNotFound) {
		c.setFlash(s, "No kept callback with id "+id+".")
		http.Redirect(w, r, "/ui/quarantine", http.StatusSeeOther)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := quarantinedData{Rec: sum}
	if s.who.Operator {
		for name, vs := range hdr {
			for _, v := range vs {
				d.Headers = append(d.Headers, headerRow{name, v})
			}
		}
		sort.Slice(d.Headers, func(i, j int) bool { return d.Headers[i].Name < d.Headers[j].Name })
		d.Body, d.BodyKind = showBody(body)
	}
	c.render(w, http.StatusOK, "quarantined", view{Title: "Kept callback " + id, Nav: "quarantine", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

// showBody pretty-prints JSON, shows text as is and binary as a hex dump.
func showBody(b []byte) (string, string) {
	var pretty bytes.Buffer
	switch {
	case json.Valid(b) && json.Indent(&pretty, b, "", "  ") == nil:
		return pretty.String(), "json"
	case utf8.Valid(b):
		return string(b), "text"
	default:
		return hexDump(b), "binary"
	}
}

func (c *Console) quarantineAct(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.who.Operator {
		c.log.Warn("console action refused: viewer session", "token", s.who.Name, "client", r.RemoteAddr)
		http.Error(w, "forbidden: this needs an operator token", http.StatusForbidden)
		return
	}
	action, channel, id := r.PostFormValue("action"), r.PostFormValue("channel"), r.PostFormValue("id")
	switch {
	case (action == "release" || action == "purge") && channel != "":
	case action == "delete" && id != "":
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	msg, err := c.quarantineSource().QuarantineAct(s.who, r.RemoteAddr, action, channel, id)
	if err != nil {
		msg = fmt.Sprintf("Failed: %v", err)
	}
	c.setFlash(s, msg)
	ret := "/ui/quarantine"
	if channel != "" && action != "purge" {
		ret += "?channel=" + urlQuery(channel)
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}
