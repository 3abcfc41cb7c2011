package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/queue"
)

var funcs = template.FuncMap{
	"age":   age,
	"rate":  func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
	"count": func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) },
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"join":  strings.Join,
	"short": func(s string, n int) string {
		if utf8.RuneCountInString(s) <= n {
			return s
		}
		r := []rune(s)
		return string(r[:n-1]) + "…"
	},
}

// age renders a duration the way a NOC reads it: 45s, 12m05s, 3h20m, 4d02h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours()/24), int(d.Hours())%24)
	}
}

// view is what every page template gets.
type view struct {
	Title, Nav string
	Who        Identity
	CSRF       string
	Flash      string
	Version    string
	Now        time.Time
	Data       any
	// Quarantine shows the Quarantine page in the navigation.
	Quarantine bool
}

func (c *Console) render(w http.ResponseWriter, status int, page string, v view) {
	v.Version, v.Now = c.opts.Version, time.Now()
	v.Quarantine = c.quarantineSource() != nil
	var buf bytes.Buffer
	name := "layout.html"
	if d, ok := v.Data.(overviewData); ok && d.Fragment {
		name = "live"
	}
	if err := c.pages[page].ExecuteTemplate(&buf, name, v); err != nil {
		c.log.Error("console: rendering failed", "page", page, "err", err)
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/ui/login", MaxAge: 600, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	c.render(w, status, "login", view{Title: "Log in", CSRF: tok, Flash: msg, Data: struct{ Open bool }{c.src.Open()}})
}

// status classes used by the templates and the stylesheet.
const (
	stOK   = "ok"
	stWarn = "warn"
	stBad  = "bad"
	stIdle = "idle"
)

type channelRow struct {
	Name, Provider   string
	Rate             float64
	Requests, Failed float64
	Window           string
	Reasons          []reasonCount
	Chart            chart
	Status           string
}

type reasonCount struct {
	Reason string
	N      float64
}

type backendRow struct {
	Name                    string
	Pending, InFlight, Dead int
	Oldest                  string
	OldestStatus            string
	Breaker, BreakerStatus  string
	Rate, FailRate          float64
	Chart                   chart
	Status                  string
}

type upstreamRow struct {
	Name                   string
	Breaker, BreakerStatus string
	Rate, ErrRate          float64
	Chart                  chart
	Status                 string
}

type expiryRow struct {
	What, Name string
	Expires    time.Time
	DaysLeft   int
	Status     string
}

type overviewData struct {
	Fragment   bool
	Channels   []channelRow
	Backends   []backendRow
	Upstreams  []upstreamRow
	Expiries   []expiryRow
	QueueBytes string
	Dead       int
	Window     string
	Alerts     int
}

func breakerName(b int) (string, string) {
	switch b {
	case 1:
		return "half-open", stWarn
	case 2:
		return "open", stBad
	}
	return "closed", stOK
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (c *Console) overviewData(fragment bool) overviewData {
	o := c.src.Overview()
	now := time.Now()
	ss := c.sampler.samples(sample{at: now, v: counters(o)})
	d := overviewData{Fragment: fragment, QueueBytes: bytesHuman(o.QueueBytes)}
	if len(ss) > 1 {
		d.Window = age(ss[len(ss)-1].at.Sub(ss[0].at))
	} else {
		d.Window = "0s"
	}
	for _, ch := range o.Channels {
		req := rateSeries(ss, "ch\x00"+ch.Name)
		fail := rateSeries(ss, "cft\x00"+ch.Name)
		row := channelRow{Name: ch.Name, Provider: ch.Provider, Rate: req.Now(), Requests: req.Delta, Failed: fail.Delta,
			Chart: sparkline(req, &fail, "callbacks/s (failures in red) over "+d.Window)}
		for reason := range ch.AuthFailures {
			if n := rateSeries(ss, "cf\x00"+ch.Name+"\x00"+reason).Delta; n > 0 {
				row.Reasons = append(row.Reasons, reasonCount{reason, n})
			}
		}
		sort.Slice(row.Reasons, func(i, j int) bool { return row.Reasons[i].N > row.Reasons[j].N })
		switch {
		case row.Failed > 0 && row.Failed >= row.Requests/2:
			row.Status = stBad
		case row.Failed > 0:
			row.Status = stWarn
		case row.Requests == 0:
			row.Status = stIdle
		default:
			row.Status = stOK
		}
		d.Channels = append(d.Channels, row)
	}
	for _, b := range o.Backends {
		del := rateSeries(ss, "bd\x00"+b.Name)
		fail := rateSeries(ss, "bf\x00"+b.Name)
		row := backendRow{Name: b.Name, Pending: b.Pending, InFlight: b.InFlight, Dead: b.Dead, Rate: del.Now(), FailRate: fail.Now(),
			Chart: sparkline(del, &fail, "deliveries/s (failed attempts in red) over "+d.Window), Oldest: "—", OldestStatus: stIdle}
		if !b.Oldest.IsZero() {
			a := now.Sub(b.Oldest)
			row.Oldest = age(a)
			row.OldestStatus = map[bool]string{true: stOK, false: stWarn}[a < time.Minute]
			if a > 15*time.Minute {
				row.OldestStatus = stBad
			}
		}
		row.Breaker, row.BreakerStatus = breakerName(b.Breaker)
		row.Status = row.BreakerStatus
		if row.Status == stOK && (b.Dead > 0 || row.OldestStatus == stWarn) {
			row.Status = stWarn
		}
		if row.OldestStatus == stBad {
			row.Status = stBad
		}
		d.Dead += b.Dead
		d.Backends = append(d.Backends, row)
	}
	for _, u := range o.Upstreams {
		req := rateSeries(ss, "ur\x00"+u.Name)
		errs := rateSeries(ss, "ue\x00"+u.Name)
		row := upstreamRow{Name: u.Name, Rate: req.Now(), ErrRate: errs.Now(), Chart: sparkline(req, &errs, "requests/s (5xx in red) over "+d.Window)}
		row.Breaker, row.BreakerStatus = breakerName(u.Breaker)
		row.Status = row.BreakerStatus
		d.Upstreams = append(d.Upstreams, row)
	}
	for _, ce := range o.Certificates {
		d.Expiries = append(d.Expiries, expiryRow{What: "certificate · " + ce.Listener + " (" + ce.Source + ")", Name: strings.Join(ce.Names, ", "), Expires: ce.NotAfter})
	}
	for _, cr := range o.Credentials {
		d.Expiries = append(d.Expiries, expiryRow{What: "credential · " + cr.Owner, Name: cr.Name, Expires: cr.Expires})
	}
	for i := range d.Expiries {
		e := &d.Expiries[i]
		left := e.Expires.Sub(now)
		e.DaysLeft = int(left.Hours() / 24)
		switch {
		case left <= 14*24*time.Hour:
			e.Status = stBad
		case left <= 30*24*time.Hour:
			e.Status = stWarn
		default:
			e.Status = stOK
		}
	}
	sort.SliceStable(d.Expiries, func(i, j int) bool { return d.Expiries[i].Expires.Before(d.Expiries[j].Expires) })
	for _, r := range d.Channels {
		if r.Status == stBad {
			d.Alerts++
		}
	}
	for _, r := range d.Backends {
		if r.Status == stBad {
			d.Alerts++
		}
	}
	for _, r := range d.Upstreams {
		if r.Status == stBad {
			d.Alerts++
		}
	}
	for _, r := range d.Expiries {
		if r.Status == stBad {
			d.Alerts++
		}
	}
	return d
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	d := c.overviewData(r.URL.Query().Get("fragment") != "")
	c.render(w, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

type deadLettersData struct {
	Backend, Channel   string
	Backends, Channels []string
	Rows               []deadRow
	Total              int
	Limit              int
	Truncated          bool
	Return             string
	AllLabel           string
	Err                string
}

type deadRow struct {
	queue.DeadLetter
	DeadFor string
}

const listLimit = 500

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := deadLettersData{Backend: q.Get("backend"), Channel: q.Get("channel"), Limit: listLimit, Return: r.URL.RequestURI()}
	o := c.src.Overview()
	for _, b := range o.Backends {
		d.Backends = append(d.Backends, b.Name)
		if d.Backend == "" || d.Backend == b.Name {
			d.Total += b.Dead
		}
	}
	for _, ch := range o.Channels {
		d.Channels = append(d.Channels, ch.Name)
	}
	dls, err := c.src.DeadLetters(d.Backend, d.Channel, listLimit+1)
	if err != nil {
		d.Err = err.Error()
	}
	if len(dls) > listLimit {
		dls, d.Truncated = dls[:listLimit], true
	}
	now := time.Now()
	for _, dl := range dls {
		d.Rows = append(d.Rows, deadRow{DeadLetter: dl, DeadFor: age(now.Sub(dl.DeadAt))})
	}
	if d.Channel != "" {
		d.Total = len(d.Rows)
	}
	c.render(w, http.StatusOK, "deadletters", view{Title: "Dead letters", Nav: "deadletters", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

type eventData struct {
	Event       *queue.Event
	DeadLetters []queue.DeadLetter
	Headers     []headerRow
	Body        string
	BodyKind    string // "json", "text", "binary"
	Return      string
}

type headerRow struct{ Name, Value string }

func (c *Console) event(w http.ResponseWriter, r *http.Request, s *session, id string) {
	ev, dls, err := c.src.DeadLetter(id)
	if errors.Is(err, queue.ErrNotFound) {
		c.setFlash(s, "No dead letter with event id "+id+".")
		http.Redirect(w, r, "/ui/deadletters", http.StatusSeeOther)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := eventData{Event: ev, DeadLetters: dls, Return: r.URL.RequestURI()}
	if s.who.Operator {
		for name, vs := range ev.Header {
			for _, v := range vs {
				d.Headers = append(d.Headers, headerRow{name, v})
			}
		}
		sort.Slice(d.Headers, func(i, j int) bool { return d.Headers[i].Name < d.Headers[j].Name })
		d.Body, d.BodyKind = showBody(ev.Body)
	}
	c.render(w, http.StatusOK, "event", view{Title: "Event " + ev.ID, Nav: "deadletters", Who: s.who, CSRF: s.csrf, Flash: c.takeFlash(s), Data: d})
}

func hexDump(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		end := min(i+16, len(b))
		fmt.Fprintf(&sb, "%08x  % x\n", i, b[i:end])
	}
	return sb.String()
}

// act handles the dead-letter forms: replay or purge one, a selection or
// all (of the filtered backend; with a channel filter, all that match).
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session) {
	ret := r.PostFormValue("return")
	if u, err := url.Parse(ret); err != nil || !strings.HasPrefix(u.Path, "/ui/") || u.Host != "" || u.Scheme != "" {
		ret = "/ui/deadletters"
	}
	if !s.who.Operator {
		c.log.Warn("console action refused: viewer session", "token", s.who.Name, "client", r.RemoteAddr)
		http.Error(w, "forbidden: this needs an operator token", http.StatusForbidden)
		return
	}
	action := r.PostFormValue("action")
	backend := r.PostFormValue("backend")
	channel := r.PostFormValue("channel")
	ids := slices.DeleteFunc(r.PostForm["id"], func(s string) bool { return s == "" })
	verb := ""
	switch action {
	case "replay", "purge":
		verb = action
		if len(ids) == 0 {
			c.setFlash(s, "Nothing selected.")
			http.Redirect(w, r, ret, http.StatusSeeOther)
			return
		}
	case "replay_all", "purge_all":
		verb = strings.TrimSuffix(action, "_all")
		if channel != "" {
			dls, err := c.src.DeadLetters(backend, channel, 0)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ids = ids[:0]
			for _, d := range dls {
				ids = append(ids, d.EventID)
			}
			action = verb
			if len(ids) == 0 {
				c.setFlash(s, "No dead letter matches the filter.")
				http.Redirect(w, r, ret, http.StatusSeeOther)
				return
			}
		} else {
			ids = nil
		}
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	n, err := c.src.Act(s.who, r.RemoteAddr, action, ids, backend)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		c.setFlash(s, "Nothing to "+verb+": the dead letters are gone already.")
	case err != nil:
		c.setFlash(s, "Failed: "+err.Error())
	case verb == "replay":
		c.setFlash(s, fmt.Sprintf("Replayed %d dead letter(s): they are pending again, first attempt now.", n))
	default:
		c.setFlash(s, fmt.Sprintf("Purged %d dead letter(s).", n))
	}
	if strings.HasPrefix(ret, "/ui/deadletters/") { // that event is no dead letter any more
		ret = "/ui/deadletters"
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}
