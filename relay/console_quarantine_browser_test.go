package relay

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestConsoleQuarantineInChromium drives the quarantine page in a real
// headless Chromium through a whole rotation: an operator sees the kept
// callbacks with their reasons, inspects one (JSON body pretty-printed, credentials
// redacted), releases the channel after the secret was fixed (the
// verified ones are delivered, the forged one stays) and deletes the
// forged one; a viewer sees the list but no controls and no content, and
// cannot post an action even with a valid CSRF token.
func TestConsoleQuarantineInChromium(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("chromium not installed (apt-get install chromium; .ci/run installs it): the console's browser test cannot run here")
	}
	const oldSecret, newSecret = "meta-secret-old", "meta-secret-new"
	be := newRecorder(t)
	cfg := func(secret string) string {
		return withAdmin(quarantineConfig(be.srv.URL, secret, "tw-token", ""), adminTokensBlock)
	}
	r := startRelay(t, cfg(oldSecret))
	for i := range 3 {
		body := metaBody(fmt.Sprintf("wamid.console.%d", i), "4915100000001")
		if resp := post(t, r.base+"/hooks/meta", body, sign(newSecret, body)); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	forged := metaBody("wamid.console.forged", "4915100000002")
	post(t, r.base+"/hooks/meta", forged, sign("forger", forged))
	admin := "http://" + r.s.AdminAddr()
	shots := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
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

	step("log in as operator", chromedp.Navigate(admin+"/ui/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), operatorToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#backends")))
	step("quarantine", chromedp.Click(chromedp.CSS(`nav a[href="/ui/quarantine"]`)), chromedp.WaitVisible(chromedp.CSS("#quarantined")))
	page := strings.ToLower(text("main")) // headings are set in capitals by the stylesheet
	for _, want := range []string{"meta", "bad_signature", "twilio", "/hooks/meta"} {
		if !strings.Contains(page, want) {
			t.Errorf("quarantine page lacks %q:\n%s", want, page)
		}
	}
	if n := eval(`document.querySelectorAll("#quarantined tbody tr a").length`); n != 4 {
		t.Errorf("%d kept callbacks listed, want 4", n)
	}
	shot("q1-quarantine-operator")

	step("inspect", chromedp.Click(chromedp.CSS("#quarantined tbody tr:first-child a")), chromedp.WaitVisible(chromedp.CSS("#body")))
	if b := text("#body"); !strings.Contains(b, "\n  \"object\": \"whatsapp_business_account\"") || !strings.Contains(b, "wamid.console.0") {
		t.Errorf("body not pretty-printed JSON:\n%s", b)
	}
	h := text("#headers")
	if !strings.Contains(h, "X-Hub-Signature-256") || !strings.Contains(h, "[redacted]") || strings.Contains(h, "must-not-be-forwarded") || strings.Contains(h, sign(newSecret, metaBody("wamid.console.0", "4915100000001"))[7:]) {
		t.Errorf("headers (credentials must be redacted):\n%s", h)
	}
	shot("q2-kept-callback-operator")

	// Fix the secret, reload, release from the page.
	r.rewrite(t, cfg(newSecret))
	step("release", chromedp.Navigate(admin+"/ui/quarantine?channel=meta"), chromedp.WaitVisible(chromedp.CSS("button.release-channel")),
		chromedp.Click(chromedp.CSS("button.release-channel")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if f := text(".flash"); !strings.Contains(f, "Released 3") || !strings.Contains(f, "1 still fail") {
		t.Errorf("after release: %q", f)
	}
	waitFor(t, 10*time.Second, "released deliveries", func() bool { return len(be.got()) == 3 })
	if n := eval(`document.querySelectorAll("#quarantined tbody tr a").length`); n != 1 {
		t.Errorf("%d left after the release, want the forged one", n)
	}
	shot("q3-after-release")
	a := auditLines(t, r.logs.String())
	if len(a) != 1 || a[0]["action"] != "quarantine_release" || a[0]["token"] != "ops" || a[0]["channel"] != "meta" {
		t.Errorf("audit of the console's release: %v", a)
	}

	// A viewer: the list, no controls, no content, no action.
	if _, err := chromedp.Run(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCookies, struct{}{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	step("log in as viewer", chromedp.Navigate(admin+"/ui/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), viewerToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#backends")))
	step("viewer quarantine", chromedp.Navigate(admin+"/ui/quarantine"), chromedp.WaitVisible(chromedp.CSS("#quarantined")))
	if n := eval(`document.querySelectorAll("button[name=action]").length`); n != 0 {
		t.Errorf("viewer sees %d quarantine controls", n)
	}
	if n := eval(`document.querySelectorAll("#quarantined tbody tr a").length`); n != 1 {
		t.Errorf("viewer sees %d kept callbacks, want 1", n)
	}
	shot("q4-quarantine-viewer")
	step("viewer inspects", chromedp.Click(chromedp.CSS("#quarantined tbody tr:first-child a")), chromedp.WaitVisible(chromedp.CSS("#content-hidden")))
	if n := eval(`document.querySelectorAll("#delete-one, #body, #headers").length`); n != 0 {
		t.Errorf("viewer's inspector shows %d controls or content elements", n)
	}
	ctx, cancel := context.WithTimeout(bctx, 15*time.Second)
	csrf, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("input[name=csrf]").value`))
	cancel()
	if err != nil || csrf == "" {
		t.Fatalf("csrf token of the viewer's page: %q %v", csrf, err)
	}
	if st := eval(`fetch("/ui/quarantine", {method: "POST", body: new URLSearchParams({action: "purge", channel: "meta", csrf: ` + fmt.Sprintf("%q", csrf) + `})}).then(r => r.status)`); st != http.StatusForbidden {
		t.Errorf("viewer POST with a valid CSRF token: %d, want 403", st)
	}
	if n := adminQuarantined(t, admin); n != 1 {
		t.Fatalf("a viewer changed the quarantine: %d kept", n)
	}

	// The operator deletes the forged one from its inspector.
	if _, err := chromedp.Run(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCookies, struct{}{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	step("log in as operator again", chromedp.Navigate(admin+"/ui/login"), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), operatorToken), chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#backends")))
	step("open the forged one", chromedp.Navigate(admin+"/ui/quarantine?channel=meta"), chromedp.WaitVisible(chromedp.CSS("#quarantined tbody tr a")),
		chromedp.Click(chromedp.CSS("#quarantined tbody tr:first-child a")), chromedp.WaitVisible(chromedp.CSS("#body")))
	if b := text("#body"); !strings.Contains(b, "wamid.console.forged") {
		t.Fatalf("the one left is not the forged one:\n%s", b)
	}
	eval(`window.confirm = () => true, 1`)
	step("delete it", chromedp.Click(chromedp.CSS("#delete-one")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if l := adminQuarantined(t, admin); l != 0 {
		t.Errorf("flash %q, %d kept callbacks left after the delete", text(".flash"), l)
	}
	if n := eval(`document.querySelectorAll("#quarantined tbody tr a").length`); n != 0 {
		t.Errorf("%d kept callbacks left after the delete", n)
	}
}

// adminQuarantined counts meta's kept callbacks through the admin API.
func adminQuarantined(t *testing.T, admin string) int {
	t.Helper()
	resp, body := adminDo(t, "GET", admin+"/api/v1/quarantine?channel=meta", operatorToken, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	return strings.Count(string(body), `"reason"`)
}
