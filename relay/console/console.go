package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

//go:embed assets
var assets embed.FS

// Identity is who a session belongs to.
type Identity struct {
	// Name is the admin token's name ("anonymous" without tokens).
	Name string
	// Operator may replay and purge and read event contents.
	Operator bool
}

// Source is what the console shows and acts on; the relay provides it.
type Source interface {
	// Open reports that the admin API has no tokens (loopback or client
	// certificates only): the login page then needs no token.
	Open() bool
	// Login checks a token (ignored when Open) for the request r.
	Login(r *http.Request, token string) (Identity, bool)
	// Overview is the state now; counters are cumulative.
	Overview() Overview
	// DeadLetters lists dead letters (filters "" = any), oldest first.
	DeadLetters(backend, channel string, limit int) ([]queue.DeadLetter, error)
	// DeadLetter is one dead-lettered event; queue.ErrNotFound otherwise.
	DeadLetter(id string) (*queue.Event, []queue.DeadLetter, error)
	// Act replays or purges ("replay", "purge" with ids; "replay_all",
	// "purge_all" for a backend, "" = all) and writes the audit line.
	Act(who Identity, client, action string, ids []string, backend string) (int, error)
}

// Options tune a Console.
type Options struct {
	Logger *slog.Logger
	// SampleEvery is the period of the counter samples behind the charts
	// (default 5s); Samples how many are kept (default 120: 10 minutes).
	SampleEvery time.Duration
	Samples     int
	// SessionIdle and SessionMax bound a session (default 1h idle, 12h).
	SessionIdle, SessionMax time.Duration
	// Version is shown in the header.
	Version string
}

// Console is the /ui/ handler.
type Console struct {
	src     Source
	opts    Options
	log     *slog.Logger
	pages   map[string]*template.Template
	static  http.Handler
	sampler *sampler

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	id, csrf string
	token    string // re-checked on every request: a token removed by a reload ends its sessions
	who      Identity
	created  time.Time
	seen     time.Time
	flash    string
}

const (
	sessionCookie = "edgerelay_session"
	loginCookie   = "edgerelay_login"
	maxSessions   = 1000
)

// New builds a console on src. Run samples the counters until ctx ends.
func New(src Source, opts Options) *Console {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 5 * time.Second
	}
	if opts.Samples <= 1 {
		opts.Samples = 120
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = time.Hour
	}
	if opts.SessionMax <= 0 {
		opts.SessionMax = 12 * time.Hour
	}
	static, _ := fs.Sub(assets, "assets/static")
	c := &Console{
		src: src, opts: opts, log: opts.Logger,
		pages:    parsePages(),
		static:   http.StripPrefix("/ui/static/", http.FileServerFS(static)),
		sampler:  newSampler(opts.Samples),
		sessions: map[string]*session{},
	}
	return c
}

// Run samples the relay's counters every SampleEvery until ctx ends.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.SampleEvery)
	defer t.Stop()
	c.sampler.add(time.Now(), c.src.Overview())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.sampler.add(now, c.src.Overview())
		}
	}
}

func parsePages() map[string]*template.Template {
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html"))
	out := map[string]*template.Template{}
	for _, p := range []string{"login", "overview", "deadletters", "event", "quarantine", "quarantined"} {
		out[p] = template.Must(template.Must(base.Clone()).ParseFS(assets, "assets/"+p+".html"))
	}
	return out
}

func urlQuery(s string) string { return url.QueryEscape(s) }

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ServeHTTP routes /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make the browser send "Origin: null" on our own POSTs
	path := r.URL.Path
	if strings.HasPrefix(path, "/ui/static/") {
		h.Set("Cache-Control", "no-cache")
		c.static.ServeHTTP(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	if path == "/ui/login" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			c.loginPage(w, r, http.StatusOK, "")
		case http.MethodPost:
			c.login(w, r)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
		return
	}
	s := c.session(r)
	if s == nil {
		if r.Method == http.MethodGet && r.URL.Query().Get("fragment") == "" {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		http.Error(w, "session expired: log in again", http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost {
		if !c.checkCSRF(r, s.csrf) {
			c.log.Warn("console POST refused: missing or wrong CSRF token", "client", r.RemoteAddr, "token", s.who.Name, "path", path)
			http.Error(w, "refused: missing or wrong CSRF token (reload the page)", http.StatusForbidden)
			return
		}
	}
	switch {
	case path == "/ui/" && r.Method == http.MethodGet:
		c.overview(w, r, s)
	case path == "/ui/logout" && r.Method == http.MethodPost:
		c.logout(w, r, s)
	case path == "/ui/deadletters" && r.Method == http.MethodGet:
		c.deadLetters(w, r, s)
	case path == "/ui/deadletters" && r.Method == http.MethodPost:
		c.act(w, r, s)
	case strings.HasPrefix(path, "/ui/deadletters/") && r.Method == http.MethodGet:
		c.event(w, r, s, strings.TrimPrefix(path, "/ui/deadletters/"))
	case path == "/ui/quarantine" && c.quarantineSource() != nil && r.Method == http.MethodGet:
		c.quarantineList(w, r, s)
	case path == "/ui/quarantine" && c.quarantineSource() != nil && r.Method == http.MethodPost:
		c.quarantineAct(w, r, s)
	case strings.HasPrefix(path, "/ui/quarantine/") && c.quarantineSource() != nil && r.Method == http.MethodGet:
		c.quarantined(w, r, s, strings.TrimPrefix(path, "/ui/quarantine/"))
	default:
		http.NotFound(w, r)
	}
}

// checkCSRF compares the form's csrf field with want in constant time and,
// when the browser says where the request comes from (Origin,
// Sec-Fetch-Site), requires it to be this console.
func (c *Console) checkCSRF(r *http.Request, want string) bool {
	if sf := r.Header.Get("Sec-Fetch-Site"); sf != "" && sf != "same-origin" && sf != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// session finds the request's live session (re-checking its token).
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	now := time.Now()
	c.mu.Lock()
	s := c.sessions[ck.Value]
	if s != nil && (now.Sub(s.seen) > c.opts.SessionIdle || now.Sub(s.created) > c.opts.SessionMax) {
		delete(c.sessions, s.id)
		s = nil
	}
	if s != nil {
		s.seen = now
	}
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	who, ok := c.src.Login(r, s.token)
	if !ok || who != s.who {
		c.mu.Lock()
		delete(c.sessions, s.id)
		c.mu.Unlock()
		return nil
	}
	return s
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	if err != nil || !c.checkCSRF(r, ck.Value) {
		c.log.Warn("console login refused: missing or wrong CSRF token", "client", r.RemoteAddr)
		c.loginPage(w, r, http.StatusForbidden, "The login form expired. Try again.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	who, ok := c.src.Login(r, token)
	if !ok {
		c.log.Warn("console login refused: unknown token", "client", r.RemoteAddr)
		c.loginPage(w, r, http.StatusUnauthorized, "Unknown token.")
		return
	}
	now := time.Now()
	s := &session{id: randomToken(), csrf: randomToken(), token: token, who: who, created: now, seen: now}
	c.mu.Lock()
	for id, old := range c.sessions {
		if now.Sub(old.seen) > c.opts.SessionIdle || now.Sub(old.created) > c.opts.SessionMax {
			delete(c.sessions, id)
		}
	}
	if len(c.sessions) >= maxSessions {
		var oldest *session
		for _, o := range c.sessions {
			if oldest == nil || o.seen.Before(oldest.seen) {
				oldest = o
			}
		}
		delete(c.sessions, oldest.id)
	}
	c.sessions[s.id] = s
	c.mu.Unlock()
	c.log.Info("console login", "token", who.Name, "operator", who.Operator, "client", r.RemoteAddr)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.id, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/ui/login", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.mu.Lock()
	delete(c.sessions, s.id)
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (c *Console) setFlash(s *session, msg string) {
	c.mu.Lock()
	s.flash = msg
	c.mu.Unlock()
}

func (c *Console) takeFlash(s *session) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}
