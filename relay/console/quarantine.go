package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// The quarantine pages (SPEC §13): every channel with a quarantine, its
// kept callbacks with their reasons, one callback inspected, and the
// operator's release, delete and purge.

// QuarantineSource is what the quarantine pages show and act on. The
// relay's Source implements it; a Source without it has no quarantine page.
type QuarantineSource interface {
	// QuarantineChannels lists the channels that have a quarantine.
	QuarantineChannels() []QuarantineChannel
	// Quarantined lists a channel's kept callbacks, oldest first.
	Quarantined(channel string, limit int) ([]quarantine.Summary, error)
	// QuarantinedCallback is one kept callback; headers (credentials
	// redacted) and body only withContent. quarantine.ErrNotFound otherwise.
	QuarantinedCallback(id string, withContent bool) (QuarantinedCallback, error)
	// QuarantineAct releases or purges a channel's kept callbacks
	// ("release", "purge_all") or deletes ids ("delete"), and writes the
	// audit line.
	QuarantineAct(who Identity, client, action, channel string, ids []string) (n, stillFailing int, err error)
}

// QuarantineChannel is one channel's quarantine totals.
type QuarantineChannel struct {
	Name      string
	Callbacks int
	Bytes     int64
	Dropped   uint64
}

// QuarantinedCallback is a kept callback as the console shows it.
type QuarantinedCallback struct {
	quarantine.Summary
	Header map[string][]string
	Body   []byte
}

type quarantineData struct {
	Channel  string
	Channels []quarantineChannelView
	Total    int
	Limit    int
	Return   string
	Err      string
}

type quarantineChannelView struct {
	QuarantineChannel
	Size      string
	Reasons   []reasonCount
	Rows      []quarantineRow
	Truncated bool
}

type quarantineRow struct {
	quarantine.Summary
	Age string
}

func (c *Console) quarantineSource() (QuarantineSource, bool) {
	qs, ok := c.src.(QuarantineSource)
	return qs, ok
}

func (c *Console) quarantinePage(w http.ResponseWriter, r *http.Request, s *session) {
	qs, ok := c.quarantineSource()
	if !ok {
		http.NotFound(w, r)
		return
	}
	d := quarantineData{Channel: r.URL.Query().Get("channel"), Limit: listLimit, Return: r.URL.RequestURI()}
	now := time.Now()
	for _, ch := range qs.QuarantineChannels() {
		if d.Channel != "" && ch.Name != d.Channel {
			continue
		}
		v := quarantineChannelView{QuarantineChannel: ch, Size: bytesHuman(ch.Bytes)}
		list, err := qs.Quarantined(ch.Name, listLimit+1)
		if err != nil {
			d.Err = err.Error()
		}
		if len(list) > listLimit {
			list, v.Truncated = list[:listLimit], true
		}
		reasons := map[string]float64{}
		for _, k := range list {
			v.Rows = append(v.Rows, quarantineRow{Summary: k, Age: age(now.Sub(k.ReceivedAt))})
			reasons[k.Reason]++
		}
		for reason, n := range reasons {
			v.Reasons = append(v.Reasons, reasonCount{reason, n})
		}
		sort.Slice(v.Reasons, func(i, j int) bool { return v.Reasons[i].N > v.Reasons[j].N })
		d.Total += ch.Callbacks
		d.Channels = append(d.Channels, v)
	}
	c.render(w, http.StatusOK, "quarantine", view{Title: "Quarantine", Nav: "quarantine", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

type quarantinedData struct {
	Callback QuarantinedCallback
	Headers  []headerRow
	Body     string
	BodyKind string
	Return   string
}

func (c *Console) quarantinedPage(w http.ResponseWriter, r *http.Request, s *session, id string) {
	qs, ok := c.quarantineSource()
	if !ok {
		http.NotFound(w, r)
		return
	}
	k, err := qs.QuarantinedCallback(id, s.who.Operator)
	if errors.Is(err, quarantine.ErrNotFound) {
		c.setFlash(s, "No kept callback with id "+id+".")
		http.Redirect(w, r, "/ui/quarantine", http.StatusSeeOther)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := quarantinedData{Callback: k, Return: r.URL.RequestURI()}
	if s.who.Operator {
		for name, vs := range k.Header {
			for _, v := range vs {
				d.Headers = append(d.Headers, headerRow{name, v})
			}
		}
		sort.Slice(d.Headers, func(i, j int) bool { return d.Headers[i].Name < d.Headers[j].Name })
		var pretty bytes.Buffer
		switch {
		case json.Valid(k.Body) && json.Indent(&pretty, k.Body, "", "  ") == nil:
			d.Body, d.BodyKind = pretty.String(), "json"
		case utf8.Valid(k.Body):
			d.Body, d.BodyKind = string(k.Body), "text"
		default:
			d.Body, d.BodyKind = hexDump(k.Body), "binary"
		}
	}
	c.render(w, http.StatusOK, "quarantined", view{Title: "Kept callback " + k.ID, Nav: "quarantine", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

// quarantineAct handles the quarantine forms: release or purge a channel,
// delete a selection.
func (c *Console) quarantineAct(w http.ResponseWriter, r *http.Request, s *session) {
	qs, ok := c.quarantineSource()
	if !ok {
		http.NotFound(w, r)
		return
	}
	ret := r.PostFormValue("return")
	if u, err := url.Parse(ret); err != nil || !strings.HasPrefix(u.Path, "/ui/") || u.Host != "" || u.Scheme != "" {
		ret = "/ui/quarantine"
	}
	if !s.who.Operator {
		c.log.Warn("console action refused: viewer session", "token", s.who.Name, "client", r.RemoteAddr)
		http.Error(w, "forbidden: this needs an operator token", http.StatusForbidden)
		return
	}
	action, channel := r.PostFormValue("action"), r.PostFormValue("channel")
	ids := slices.DeleteFunc(r.PostForm["id"], func(s string) bool { return s == "" })
	switch action {
	case "release", "purge_all":
		if channel == "" {
			http.Error(w, "missing channel", http.StatusBadRequest)
			return
		}
	case "delete":
		if len(ids) == 0 {
			c.setFlash(s, "Nothing selected.")
			http.Redirect(w, r, ret, http.StatusSeeOther)
			return
		}
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	n, still, err := qs.QuarantineAct(s.who, r.RemoteAddr, action, channel, ids)
	switch {
	case errors.Is(err, quarantine.ErrNotFound):
		c.setFlash(s, fmt.Sprintf("Deleted %d; the others are gone already.", n))
	case err != nil && action == "release":
		c.setFlash(s, fmt.Sprintf("Release of %s stopped after %d callback(s): %v. The rest stay kept.", channel, n, err))
	case err != nil:
		c.setFlash(s, "Failed: "+err.Error())
	case action == "release":
		c.setFlash(s, fmt.Sprintf("Released %d callback(s) of %s: they verified with the current configuration and are queued. %d still fail and stay kept.", n, channel, still))
	case action == "purge_all":
		c.setFlash(s, fmt.Sprintf("Purged %d kept callback(s) of %s.", n, channel))
	default:
		c.setFlash(s, fmt.Sprintf("Deleted %d kept callback(s).", n))
	}
	if strings.HasPrefix(ret, "/ui/quarantine/") && action != "release" { // that callback is gone
		ret = "/ui/quarantine"
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}
