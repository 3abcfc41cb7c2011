package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// quarantineConfig is a relay with a Meta channel (hmac secret metaSecret),
// a Twilio channel (auth token twilioToken, behind a public URL), both with
// a quarantine, and one backend.
func quarantineConfig(backend, metaSecret, twilioToken, extra string) string {
	return fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" {
  address  = "127.0.0.1:0"
  max_body = "64KiB"
}
admin { address = "127.0.0.1:0" }
channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" { secrets = [%q] }
  quarantine {
    max_size = "1MiB"
    keep     = "1h"
  }
  forward_to = ["b0"]
}
channel "twilio" {
  listener   = "public"
  path       = "/hooks/twilio"
  provider   = "twilio"
  public_url = "https://hooks.example.com/hooks/twilio"
  auth "twilio" { auth_tokens = [%q] }
  quarantine {}
  forward_to = ["b0"]
}
backend "b0" {
  url     = %q
  timeout = "2s"
  retry {
    initial = "20ms"
    max     = "200ms"
  }
}
%s`, metaSecret, twilioToken, backend, extra)
}

// admin calls the admin API and decodes its JSON answer.
func (r *testRelay) admin(t *testing.T, method, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+r.s.AdminAddr()+path, nil)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, body, err)
	}
	return resp.StatusCode, out
}

// quarantined lists a channel's kept callbacks.
func (r *testRelay) quarantined(t *testing.T, channel string) []map[string]any {
	t.Helper()
	st, out := r.admin(t, http.MethodGet, "/api/v1/quarantine?channel="+channel)
	if st != 200 {
		t.Fatalf("list %s: %d %v", channel, st, out)
	}
	var list []map[string]any
	for _, x := range out["quarantined"].([]any) {
		list = append(list, x.(map[string]any))
	}
	return list
}

func (r *testRelay) release(t *testing.T, channel string) (released, stillFailing int) {
	t.Helper()
	st, out := r.admin(t, http.MethodPost, "/api/v1/quarantine/release?channel="+channel)
	if st != 200 {
		t.Fatalf("release %s: %d %v", channel, st, out)
	}
	return int(out["released"].(float64)), int(out["still_failing"].(float64))
}

// rewrite replaces the relay's configuration file and reloads it.
func (r *testRelay) rewrite(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(r.file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Reload(); err != nil {
		t.Fatal(err)
	}
}

var wamidRE = regexp.MustCompile(`"id":"(wamid\.[^"]+)"`)

// metaDelivered counts the Meta message ids a backend received, and their
// order per sender (ids are wamid.<sender>.<n>).
func metaDelivered(rc *recorder) (count map[string]int, perSender map[string][]string) {
	count, perSender = map[string]int{}, map[string][]string{}
	for _, r := range rc.got() {
		for _, m := range wamidRE.FindAllSubmatch(r.Body, -1) {
			id := string(m[1])
			count[id]++
			sender := strings.Split(id, ".")[1]
			perSender[sender] = append(perSender[sender], id)
		}
	}
	return
}

func quarantineMetric(t *testing.T, r *testRelay, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, name+" "), "%g", &v)
			return v
		}
	}
	return -1
}

// The Meta app secret was rotated on Meta's side first: callbacks signed
// with the new secret are refused with 401 and kept; once the file has the
// new secret and is reloaded, a release delivers each of them once, in
// per-sender order. Forged callbacks stay; a callback Meta retried after
// the fix (delivered live) is not delivered a second time; missing or
// malformed signatures are never kept; the quarantine survives a restart.
func TestQuarantineMetaSecretRotated(t *testing.T) {
	const oldSecret, newSecret = "meta-secret-old", "meta-secret-new"
	be := newRecorder(t)
	dir := t.TempDir()
	r := startRelayIn(t, dir, quarantineConfig(be.srv.URL, oldSecret, "tw-token", ""))

	senders := []string{"4915100000001", "4915100000002", "4915100000003"}
	var sent []string
	for i := range 8 {
		for _, s := range senders {
			id := fmt.Sprintf("wamid.%s.%02d", s, i)
			body := metaBody(id, s)
			if resp := post(t, r.base+"/hooks/meta", body, sign(newSecret, body)); resp.StatusCode != 401 {
				t.Fatalf("%s: status %d, want 401", id, resp.StatusCode)
			}
			sent = append(sent, id)
		}
	}
	// Forged: signed with a secret nobody configures; they must stay.
	for i := range 3 {
		body := metaBody(fmt.Sprintf("wamid.forged.%02d", i), "4915199999999")
		if resp := post(t, r.base+"/hooks/meta", body, sign("forger", body)); resp.StatusCode != 401 {
			t.Fatalf("forged: status %d", resp.StatusCode)
		}
	}
	// Never kept: no signature, an unparsable one.
	body := metaBody("wamid.nosig.00", "4915100000009")
	if resp := post(t, r.base+"/hooks/meta", body, ""); resp.StatusCode != 401 {
		t.Fatalf("no signature: %d", resp.StatusCode)
	}
	if resp := post(t, r.base+"/hooks/meta", body, "sha256=not-hex"); resp.StatusCode != 401 {
		t.Fatalf("malformed signature: %d", resp.StatusCode)
	}
	// The same message again, as Meta's retry after the fix will send it.
	dup := metaBody("wamid.dup.00", "4915100000004")
	post(t, r.base+"/hooks/meta", dup, sign(newSecret, dup))

	list := r.quarantined(t, "meta")
	if len(list) != len(sent)+3+1 {
		t.Fatalf("kept %d, want %d", len(list), len(sent)+4)
	}
	for _, k := range list {
		if k["reason"] != "bad_signature" || k["method"] != "POST" || k["request_uri"] != "/hooks/meta" || !strings.HasPrefix(k["remote_addr"].(string), "127.0.0.1:") {
			t.Fatalf("kept: %v", k)
		}
		if _, ok := k["header"]; ok {
			t.Fatalf("list shows headers: %v", k)
		}
	}
	if !strings.Contains(r.logs.String(), `"quarantine_id":"`+list[0]["id"].(string)+`"`) {
		t.Fatal("the rejection's log line does not name the quarantine id")
	}
	if strings.Contains(r.logs.String(), "must-not-be-forwarded") {
		t.Fatal("a credential header reached the log")
	}
	// One kept callback in full: headers (credentials redacted) and body.
	st, one := r.admin(t, http.MethodGet, "/api/v1/quarantine/"+list[0]["id"].(string))
	cb := one["callback"].(map[string]any)
	h := cb["header"].(map[string]any)
	if st != 200 || h["X-Hub-Signature-256"] == nil || fmt.Sprint(h["Authorization"]) != "[[redacted]]" || fmt.Sprint(h["Cookie"]) != "[[redacted]]" || cb["body"] == "" {
		t.Fatalf("show: %d %v", st, one)
	}
	if got := quarantineMetric(t, r, `edgerelay_quarantine_callbacks{channel="meta"}`); got != float64(len(list)) {
		t.Fatalf("edgerelay_quarantine_callbacks = %v", got)
	}
	if got := quarantineMetric(t, r, `edgerelay_quarantine_bytes{channel="meta"}`); got <= 0 {
		t.Fatalf("edgerelay_quarantine_bytes = %v", got)
	}
	if n := len(be.got()); n != 0 {
		t.Fatalf("%d quarantined callbacks reached the backend", n)
	}
	// Releasing before the fix releases nothing.
	if rel, still := r.release(t, "meta"); rel != 0 || still != len(list) {
		t.Fatalf("release before the fix: %d/%d", rel, still)
	}

	// Restart on the same data directory: the quarantine is still there.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r.s.Shutdown(ctx)
	cancel()
	r = startRelayIn(t, dir, quarantineConfig(be.srv.URL, oldSecret, "tw-token", ""))
	if got := r.quarantined(t, "meta"); len(got) != len(list) || got[0]["id"] != list[0]["id"] {
		t.Fatalf("after restart: %d kept", len(got))
	}

	// The operator fixes the file (new secret, old one for rotation) and reloads.
	cfg := quarantineConfig(be.srv.URL, newSecret, "tw-token", "")
	cfg = strings.Replace(cfg, fmt.Sprintf("secrets = [%q]", newSecret), fmt.Sprintf("secrets = [%q, %q]", newSecret, oldSecret), 1)
	r.rewrite(t, cfg)
	// Meta retries the dup message now: delivered live.
	if resp := post(t, r.base+"/hooks/meta", dup, sign(newSecret, dup)); resp.StatusCode != 200 {
		t.Fatalf("retry after the fix: %d", resp.StatusCode)
	}
	waitFor(t, 5*time.Second, "the live retry", func() bool { c, _ := metaDelivered(be); return c["wamid.dup.00"] == 1 })

	rel, still := r.release(t, "meta")
	if rel != len(sent)+1 || still != 3 {
		t.Fatalf("release: released %d, still failing %d; want %d and 3", rel, still, len(sent)+1)
	}
	waitFor(t, 10*time.Second, "released callbacks", func() bool { c, _ := metaDelivered(be); return len(c) == len(sent)+1 })
	time.Sleep(300 * time.Millisecond) // anything extra would show up now
	count, perSender := metaDelivered(be)
	for _, id := range append(sent, "wamid.dup.00") {
		if count[id] != 1 {
			t.Fatalf("%s delivered %d times", id, count[id])
		}
	}
	if len(count) != len(sent)+1 {
		t.Fatalf("delivered %v", count)
	}
	for _, s := range senders {
		got := perSender[s]
		for i, id := range got {
			if want := fmt.Sprintf("wamid.%s.%02d", s, i); id != want {
				t.Fatalf("sender %s: order %v", s, got)
			}
		}
	}
	// The released events went through the live path: credentials dropped,
	// original arrival time kept.
	for _, g := range be.got() {
		if g.Header.Get("Authorization") != "" || g.Header.Get("Cookie") != "" || g.Header.Get("X-Custom") != "kept" {
			t.Fatalf("released event headers: %v", g.Header)
		}
		at, err := time.Parse(time.RFC3339Nano, g.Header.Get("X-Relay-Received-At"))
		if err != nil || (!bytes.Contains(g.Body, []byte("wamid.dup")) && time.Since(at) < 300*time.Millisecond) {
			t.Fatalf("X-Relay-Received-At %q is not the original arrival", g.Header.Get("X-Relay-Received-At"))
		}
	}
	left := r.quarantined(t, "meta")
	if len(left) != 3 {
		t.Fatalf("left %d, want the 3 forged", len(left))
	}
	if got := quarantineMetric(t, r, `edgerelay_quarantine_released_total{channel="meta"}`); got != float64(len(sent)+1) {
		t.Fatalf("edgerelay_quarantine_released_total = %v", got)
	}
	// A second release finds only the forged ones.
	if rel, still := r.release(t, "meta"); rel != 0 || still != 3 {
		t.Fatalf("second release: %d/%d", rel, still)
	}
	// Delete one, purge the rest.
	if st, out := r.admin(t, http.MethodDelete, "/api/v1/quarantine/"+left[0]["id"].(string)); st != 200 || out["deleted"] != 1.0 {
		t.Fatalf("delete: %d %v", st, out)
	}
	if st, _ := r.admin(t, http.MethodGet, "/api/v1/quarantine/"+left[0]["id"].(string)); st != 404 {
		t.Fatalf("deleted one: %d", st)
	}
	if st, out := r.admin(t, http.MethodPost, "/api/v1/quarantine/purge?channel=meta"); st != 200 || out["purged"] != 2.0 {
		t.Fatalf("purge: %d %v", st, out)
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"POST", "/api/v1/quarantine/release", 400},
		{"POST", "/api/v1/quarantine/release?channel=nope", 404},
		{"GET", "/api/v1/quarantine?channel=nope", 404},
		{"GET", "/api/v1/quarantine/0000000000000001", 404},
		{"GET", "/api/v1/quarantine/not-an-id", 404},
	} {
		if st, out := r.admin(t, c.method, c.path); st != c.status {
			t.Fatalf("%s %s: %d %v, want %d", c.method, c.path, st, out, c.status)
		}
	}
}

// Twilio signs the URL it calls (with its query) and the form parameters:
// after the auth token was rotated, the release verifies each kept
// callback on the channel's public_url plus the query it arrived with, and
// its original form body.
func TestQuarantineTwilioTokenRotated(t *testing.T) {
	const oldToken, newToken = "twilio-token-old", "twilio-token-new"
	be := newRecorder(t)
	r := startRelay(t, quarantineConfig(be.srv.URL, "meta-secret", oldToken, ""))
	var sids []string
	for i := range 5 {
		sid := fmt.Sprintf("SM%032d", i)
		form := url.Values{"MessageSid": {sid}, "From": {"whatsapp:+4915100000001"}, "To": {"whatsapp:+15550783881"},
			"Body": {fmt.Sprintf("hallo %d", i)}, "AccountSid": {"AC0001"}}
		query := fmt.Sprintf("lb=%d&region=eu", i)
		sig := auth.SignTwilio(newToken, "https://hooks.example.com/hooks/twilio?"+query, form)
		req, _ := http.NewRequest(http.MethodPost, r.base+"/hooks/twilio?"+query, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		sids = append(sids, sid)
	}
	list := r.quarantined(t, "twilio")
	if len(list) != 5 || list[2]["request_uri"] != "/hooks/twilio?lb=2&region=eu" {
		t.Fatalf("kept: %v", list)
	}
	// The new token, but a public_url that is not the one Twilio calls:
	// the signatures cannot verify, nothing is released.
	cfg := quarantineConfig(be.srv.URL, "meta-secret", newToken, "")
	r.rewrite(t, strings.Replace(cfg, "https://hooks.example.com/hooks/twilio", "https://other.example.com/hooks/twilio", 1))
	if rel, still := r.release(t, "twilio"); rel != 0 || still != 5 {
		t.Fatalf("release with the wrong public_url: %d/%d", rel, still)
	}
	r.rewrite(t, cfg)
	if rel, still := r.release(t, "twilio"); rel != 5 || still != 0 {
		t.Fatalf("release: %d/%d", rel, still)
	}
	waitFor(t, 5*time.Second, "twilio deliveries", func() bool { return len(be.got()) == 5 })
	for i, g := range be.got() {
		form, _ := url.ParseQuery(string(g.Body))
		if form.Get("MessageSid") != sids[i] || g.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || g.Header.Get("X-Relay-Channel") != "twilio" {
			t.Fatalf("delivery %d: %v %q", i, g.Header, g.Body)
		}
	}
}

// A callback whose other auth block fails for a reason that is never kept
// (here ip_allow) is not kept, whichever block failed first.
func TestQuarantineNeverKeepsIPNotAllowed(t *testing.T) {
	be := newRecorder(t)
	cfg := quarantineConfig(be.srv.URL, "meta-secret", "tw", "")
	cfg = strings.Replace(cfg, `auth "hmac" { secrets = ["meta-secret"] }`, `auth "hmac" { secrets = ["meta-secret"] }
  auth "ip_allow" { cidrs = ["203.0.113.0/24"] }`, 1)
	r := startRelay(t, cfg)
	body := metaBody("wamid.x.00", "4915100000001")
	if resp := post(t, r.base+"/hooks/meta", body, sign("other", body)); resp.StatusCode != 401 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if l := r.quarantined(t, "meta"); len(l) != 0 {
		t.Fatalf("kept from a client outside ip_allow: %v", l)
	}
}

// A flood of forged callbacks ten times max_size keeps the quarantine's
// files within max_size, drops the oldest first, reaches no backend and
// does not grow the relay's heap.
func TestQuarantineFloodBounded(t *testing.T) {
	be := newRecorder(t)
	cfg := quarantineConfig(be.srv.URL, "meta-secret", "tw", "")
	cfg = strings.Replace(cfg, `log { level = "debug" }`, `log { level = "error" }`, 1)
	dir := t.TempDir()
	r := startRelayIn(t, dir, cfg)
	const maxSize = 1 << 20
	pad := strings.Repeat("f", 2000)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func(i int) {
		body := metaBody(fmt.Sprintf("wamid.flood.%06d", i), "4915100000001")
		body = bytes.Replace(body, []byte(`"hall\u00f6"`), []byte(`"`+pad+`"`), 1)
		req, _ := http.NewRequest(http.MethodPost, r.base+"/hooks/meta", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sign("forged", body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	perBound := maxSize / 2400
	i := 0
	for ; i < perBound; i++ {
		send(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	deadline := time.Now().Add(2 * time.Minute)
	for ; i < 10*perBound && time.Now().Before(deadline); i++ {
		send(i)
	}
	if i < 10*perBound {
		t.Fatalf("sent only %d of %d in time", i, 10*perBound)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d forged callbacks; heap in use %d → %d (growth %d)", i, before.HeapInuse, after.HeapInuse, growth)
	if growth > 2<<20 {
		t.Fatalf("heap grew by %d bytes", growth)
	}
	size := int64(0)
	filepath.Walk(filepath.Join(dir, "data", "quarantine", "meta"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	if size > maxSize || size < maxSize/2 {
		t.Fatalf("quarantine files hold %d bytes, bound %d", size, maxSize)
	}
	if got := quarantineMetric(t, r, `edgerelay_quarantine_bytes{channel="meta"}`); got != float64(size) {
		t.Fatalf("edgerelay_quarantine_bytes = %v, files %d", got, size)
	}
	if got := quarantineMetric(t, r, `edgerelay_quarantine_dropped_total{channel="meta"}`); got <= 0 {
		t.Fatalf("edgerelay_quarantine_dropped_total = %v", got)
	}
	list := r.quarantined(t, "meta")
	st, newest := r.admin(t, http.MethodGet, "/api/v1/quarantine/"+list[len(list)-1]["id"].(string))
	if st != 200 || !strings.Contains(fmt.Sprint(newest), "") {
		t.Fatal(st)
	}
	wantNewest := fmt.Sprintf("wamid.flood.%06d", i-1)
	wantOldest := fmt.Sprintf("wamid.flood.%06d", i-len(list))
	if !bytes.Contains(bodyOf(t, newest), []byte(wantNewest)) {
		t.Fatalf("newest kept is not %s", wantNewest)
	}
	_, oldest := r.admin(t, http.MethodGet, "/api/v1/quarantine/"+list[0]["id"].(string))
	if !bytes.Contains(bodyOf(t, oldest), []byte(wantOldest)) {
		t.Fatalf("oldest kept is not %s: the oldest must be dropped first", wantOldest)
	}
	if n := len(be.got()); n != 0 {
		t.Fatalf("%d forged callbacks reached the backend", n)
	}
}

func bodyOf(t *testing.T, out map[string]any) []byte {
	t.Helper()
	var b []byte
	raw, _ := json.Marshal(out["callback"].(map[string]any)["body"])
	json.Unmarshal(raw, &b)
	return b
}
