package relay

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (CI installs it: .ci/run).
func chromiumPath() string {
	for _, p := range []string{os.Getenv("EDGERELAY_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// screenshotDir is $EDGERELAY_SCREENSHOTS, else /tmp/console-shots.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("EDGERELAY_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "console-shots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleInChromium drives the console in a real headless Chromium:
// log in as an operator, see the overview (and watch it refresh), inspect
// a dead letter (headers, JSON body pretty-printed), replay it and see it
// delivered at the backend; a POST without the CSRF token is refused; a
// viewer session shows no replay or purge control and no event content;
// the browser requests nothing outside the admin listener.
func TestConsoleInChromium(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("chromium not installed (apt-get install chromium; .ci/run installs it): the console's browser test cannot run here")
	}
	r, be, reject, ids := rejectingRelay(t, adminTokensBlock, 3, func(cfg string) string {
		return strings.Replace(cfg, `verify_token = "vt-123"`, "verify_token = \"vt-123\"\n  quarantine {}", 1)
	})
	// A forged callback, for the overview's auth failures and the quarantine.
	forged := metaBody("wamid.forged", "4915100000999")
	post(t, r.base+"/hooks/meta", forged, sign("not-the-secret", forged))
	admin := "http://" + r.s.AdminAddr()
	shots := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	var mu sync.Mutex
	var requested []string
	chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	})
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 15*time.Second)
		defer cancel()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 15*time.Second)
		defer cancel()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return n
	}
	shot := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bctx, 15*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	// The console wants a session: /ui/ leads to the login page.
	step("open the console", chromedp.Navigate(admin+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot("01-login")
	step("wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "certainly-not-a-valid-token"), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if f := text(".flash"); !strings.Contains(f, "Unknown token") {
		t.Errorf("wrong token: flash %q\n%s", f, r.logs.String())
	}
	step("log in as operator", chromedp.SendKeys(chromedp.CSS("#token"), operatorToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#backends")))
	ov := text("#live")
	for _, want := range []string{"meta", "b0", "bad_signature", "closed"} {
		if !strings.Contains(ov, want) {
			t.Errorf("overview lacks %q:\n%s", want, ov)
		}
	}
	if got := text("#backends tbody tr td:nth-child(6)"); strings.TrimSpace(got) != "3" {
		t.Errorf("backend b0 dead letters on the overview: %q, want 3", got)
	}
	before := text("#updated")
	pctx, pcancel := context.WithTimeout(bctx, 15*time.Second)
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("updated") && document.getElementById("updated").textContent !== %q`, before),
		chromedp.WithPollingTimeout(12*time.Second))); err != nil {
		t.Errorf("the overview did not refresh itself within 12s: %v", err)
	}
	pcancel()
	shot("02-overview-operator")

	// Dead letters, filtered, then one inspected.
	step("dead letters", chromedp.Navigate(admin+"/ui/deadletters?backend=b0&channel=meta"), chromedp.WaitVisible(chromedp.CSS("#deadletters")))
	if n := eval(`document.querySelectorAll("#deadletters tbody input.pick").length`); n != 3 {
		t.Errorf("%d selectable dead letters, want 3", n)
	}
	shot("03-deadletters-operator")

	// A POST without the CSRF token is refused, from the console's own page.
	if st := eval(`fetch("/ui/deadletters", {method: "POST", body: new URLSearchParams({action: "purge_all", backend: "b0"})}).then(r => r.status)`); st != 403 {
		t.Errorf("POST without CSRF token: %d, want 403", st)
	}
	if st := eval(`fetch("/ui/deadletters", {method: "POST", body: new URLSearchParams({action: "purge_all", csrf: "forged"})}).then(r => r.status)`); st != 403 {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", st)
	}
	if got := deadLetterIDs(t, admin, operatorToken); len(got) != 3 {
		t.Fatalf("refused POSTs changed the dead letters: %v", got)
	}

	step("inspect", chromedp.Navigate(admin+"/ui/deadletters/"+ids[0]), chromedp.WaitVisible(chromedp.CSS("#body")))
	body := text("#body")
	if !strings.Contains(body, "\n  \"object\": \"whatsapp_business_account\"") || !strings.Contains(body, "wamid.dead-0") {
		t.Errorf("body not pretty-printed JSON:\n%s", body)
	}
	if h := text("#headers"); !strings.Contains(h, "Content-Type") || !strings.Contains(h, "X-Custom") || strings.Contains(h, "sha256=") {
		t.Errorf("headers missing, or a signature shown unredacted:\n%s", h)
	}
	shot("04-event-operator")

	// Replay it with the backend fixed: it is delivered, byte for byte.
	reject.Store(false)
	step("replay", chromedp.Click(chromedp.CSS("button.replay-one")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if f := text(".flash"); !strings.Contains(f, "Replayed 1") {
		t.Errorf("after replay: %q", f)
	}
	waitFor(t, 10*time.Second, "the replayed delivery", func() bool { return len(be.got()) == 1 })
	if g := be.got()[0]; g.Header.Get("X-Relay-Event-Id") != ids[0] || !bytes.Contains(g.Body, []byte("wamid.dead-0")) {
		t.Errorf("delivered %s, want %s", g.Header.Get("X-Relay-Event-Id"), ids[0])
	}
	shot("05-after-replay")
	a := auditLines(t, r.logs.String())
	if len(a) < 1 || a[0]["action"] != "replay" || a[0]["token"] != "ops" || fmt.Sprint(a[0]["ids"]) != "["+ids[0]+"]" {
		t.Errorf("audit of the console's replay: %v", a)
	}

	// The quarantine keeps the forged callback; releasing re-verifies it
	// (still failing: the secret did not change).
	step("quarantine", chromedp.Navigate(admin+"/ui/quarantine"), chromedp.WaitVisible(chromedp.CSS("#quarantined")))
	if q := text("#quarantined"); !strings.Contains(q, "bad_signature") || !strings.Contains(q, "/hooks/meta") {
		t.Errorf("quarantine list:\n%s", q)
	}
	shot("06-quarantine-operator")
	step("kept callback", chromedp.Click(chromedp.CSS("#quarantined tbody a")), chromedp.WaitVisible(chromedp.CSS("#body")))
	if b := text("#body"); !strings.Contains(b, "wamid.forged") {
		t.Errorf("kept body:\n%s", b)
	}
	if h := text("#headers"); strings.Contains(h, "sha256=") {
		t.Errorf("the kept signature is shown:\n%s", h)
	}
	shot("07-quarantined-operator")
	step("release", chromedp.Navigate(admin+"/ui/quarantine"), chromedp.WaitVisible(chromedp.CSS("button.release-channel")),
		chromedp.Click(chromedp.CSS("button.release-channel")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if f := text(".flash"); !strings.Contains(f, "Released 0") || !strings.Contains(f, "1 still fail") {
		t.Errorf("release: %q", f)
	}

	// A viewer: no controls, no content.
	reject.Store(true)
	if _, err := chromedp.Run(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCookies, struct{}{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	step("log in as viewer", chromedp.Navigate(admin+"/ui/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), viewerToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#backends")))
	shot("08-overview-viewer")
	step("viewer dead letters", chromedp.Navigate(admin+"/ui/deadletters"), chromedp.WaitVisible(chromedp.CSS("#deadletters")))
	if n := eval(`document.querySelectorAll("button[name=action], input.pick, #select-all").length`); n != 0 {
		t.Errorf("viewer sees %d replay/purge controls", n)
	}
	if n := eval(`document.querySelectorAll("#deadletters tbody tr a").length`); n != 2 {
		t.Errorf("viewer sees %d dead letters, want 2", n)
	}
	shot("09-deadletters-viewer")
	step("viewer inspects", chromedp.Navigate(admin+"/ui/deadletters/"+ids[1]), chromedp.WaitVisible(chromedp.CSS("#content-hidden")))
	if n := eval(`document.querySelectorAll("button.replay-one, button.purge-one, #body, #headers").length`); n != 0 {
		t.Errorf("viewer's inspector shows %d controls or content elements", n)
	}
	shot("10-event-viewer")
	step("viewer quarantine", chromedp.Navigate(admin+"/ui/quarantine"), chromedp.WaitVisible(chromedp.CSS("#quarantined")))
	if n := eval(`document.querySelectorAll("button").length - document.querySelectorAll("header button").length`); n != 0 {
		t.Errorf("viewer's quarantine page shows %d buttons", n)
	}
	shot("11-quarantine-viewer")
	ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	csrf, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("input[name=csrf]").value`))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if st := eval(`fetch("/ui/deadletters", {method: "POST", body: new URLSearchParams({action: "purge_all", csrf: ` + fmt.Sprintf("%q", csrf) + `})}).then(r => r.status)`); st != 403 {
		t.Errorf("viewer POST with a valid CSRF token: %d, want 403", st)
	}
	if got := deadLetterIDs(t, admin, operatorToken); len(got) != 2 {
		t.Fatalf("a viewer changed the dead letters: %v", got)
	}

	// Nothing but the admin listener was asked for anything.
	mu.Lock()
	defer mu.Unlock()
	if len(requested) < 10 {
		t.Fatalf("only %d requests recorded: the network listener is not working", len(requested))
	}
	for _, u := range requested {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "data" && p.Host != r.s.AdminAddr()) {
			t.Errorf("the console requested %s, outside the admin listener %s", u, r.s.AdminAddr())
		}
	}
}

// TestConsoleSessionAndCSRF checks the console's HTTP contract without a
// browser: the session cookie's attributes, CSRF on login and actions, a
// foreign Host refused.
func TestConsoleSessionAndCSRF(t *testing.T) {
	r, _, _, _ := rejectingRelay(t, adminTokensBlock, 1)
	admin := "http://" + r.s.AdminAddr()
	noRedirect := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(admin + "/ui/")
	if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("/ui/ without a session: %v %v", err, resp)
	}
	// Login without the login cookie's CSRF token: refused.
	resp, err = noRedirect.PostForm(admin+"/ui/login", url.Values{"token": {operatorToken}})
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF: %v %v", err, resp)
	}
	// The proper way: GET the form, post it back with its cookie.
	resp, err = noRedirect.Get(admin + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP: %q", csp)
	}
	i := strings.Index(buf.String(), `name="csrf" value="`)
	if i < 0 {
		t.Fatal("no csrf field on the login form")
	}
	tok := buf.String()[i+len(`name="csrf" value="`):]
	tok = tok[:strings.Index(tok, `"`)]
	req, _ := http.NewRequest("POST", admin+"/ui/login", strings.NewReader(url.Values{"token": {operatorToken}, "csrf": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = noRedirect.Do(req)
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %v %v", err, resp)
	}
	var sess *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "edgerelay_session" {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/ui/" {
		t.Fatalf("session cookie: %+v", sess)
	}
	// A cross-site form POST carrying the cookie (as a lax browser would) but no token: refused.
	req, _ = http.NewRequest("POST", admin+"/ui/deadletters", strings.NewReader("action=purge_all"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.AddCookie(sess)
	resp, err = noRedirect.Do(req)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %v %v", err, resp)
	}
	if got := deadLetterIDs(t, admin, operatorToken); len(got) != 1 {
		t.Fatalf("dead letters after a refused POST: %v", got)
	}
	// Foreign Host: 421 for the console too.
	req, _ = http.NewRequest("GET", admin+"/ui/login", nil)
	req.Host = "rebind.evil.example"
	if resp, err = noRedirect.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("console with a foreign Host: %v %v", err, resp)
	}
}
