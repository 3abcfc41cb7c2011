package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

// opsBackend records message ids and answers with status (0 = 200).
type opsBackend struct {
	mu     sync.Mutex
	ids    []string
	status atomic.Int32
}

func (b *opsBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if st := b.status.Load(); st != 0 {
		w.WriteHeader(int(st))
		return
	}
	b.mu.Lock()
	b.ids = append(b.ids, messageID(body))
	b.mu.Unlock()
}

func (b *opsBackend) got() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.ids...)
}

func opsConfig(listen, admin, secret, backend string) string {
	return fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = %q }
admin { address = %q }
channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" { secrets = [%q] }
  forward_to = ["crm"]
}
backend "crm" {
  url = %q
  retry {
    initial = "50ms"
    max     = "200ms"
  }
}
`, listen, admin, secret, backend)
}

func signWith(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestSignalsReloadAndDrain runs the real binary: SIGHUP rotates the secret
// on a live keep-alive connection, a listener address change is refused
// whole, and SIGTERM drains and exits 0 with everything delivered.
func TestSignalsReloadAndDrain(t *testing.T) {
	bin := relayBin(t)
	be := &opsBackend{}
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)
	addrs := freeAddrs(t, 3)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "relay.hcl")
	writeFile(t, cfgPath, opsConfig(addrs[0], addrs[1], "secret-one", srv.URL))
	logs := &lockedBuffer{}
	p := startRelay(t, bin, cfgPath, addrs[1], logs)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	send := func(id, secret string) (status int, reused bool) {
		body := crashBody(id, 1)
		req, _ := http.NewRequest("POST", "http://"+addrs[0]+"/hooks/meta", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", signWith(secret, body))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, reused
	}
	if st, _ := send("wamid.sig-1", "secret-one"); st != 200 {
		t.Fatalf("before reload: %d", st)
	}
	// Info lines are gathered (relay/logout) but reach the log within its delay, while the
	// relay keeps running.
	waitFor(t, 5*time.Second, func() bool {
		return strings.Contains(logs.String(), `"provider_event_id":"wamid.sig-1"`)
	}, "the accepted callback's log line")
	writeFile(t, cfgPath, opsConfig(addrs[0], addrs[1], "secret-two", srv.URL))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "configuration reloaded") }, "reload log line")
	if st, reused := send("wamid.sig-2", "secret-one"); st != 401 || !reused {
		t.Errorf("old secret after SIGHUP: %d (connection reused %v)", st, reused)
	}
	if st, reused := send("wamid.sig-3", "secret-two"); st != 200 || !reused {
		t.Errorf("new secret after SIGHUP: %d (connection reused %v)", st, reused)
	}

	// A listen address cannot change live: refused whole, old config stays.
	writeFile(t, cfgPath, opsConfig(addrs[2], addrs[1], "secret-three", srv.URL))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "reload refused") }, "refusal log line")
	if !strings.Contains(logs.String(), "address") {
		t.Errorf("refusal does not name what changed:\n%s", logs.Tail())
	}
	if st, _ := send("wamid.sig-4", "secret-two"); st != 200 {
		t.Errorf("after a refused reload the old secret must still work: %d", st)
	}

	waitFor(t, 10*time.Second, func() bool { return len(be.got()) == 3 }, "3 deliveries")
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("SIGTERM did not stop the relay")
	}
	if !p.cmd.ProcessState.Success() {
		t.Fatalf("exit after SIGTERM: %v\n%s", p.cmd.ProcessState, logs.Tail())
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Error("no drain log line")
	}
	for _, s := range []string{"secret-one", "secret-two", "secret-three"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("secret %q in the log", s)
		}
	}
}

// TestDLQCommands drives `edgerelay dlq` against a running relay's admin API.
func TestDLQCommands(t *testing.T) {
	be := &opsBackend{}
	be.status.Store(400)
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)
	addrs := freeAddrs(t, 2)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "relay.hcl")
	writeFile(t, cfgPath, opsConfig(addrs[0], addrs[1], "dlq-secret", srv.URL))
	cfg, diags := relay.LoadConfig(cfgPath)
	if diags.HasErrors() {
		t.Fatal(relay.FormatDiagnostics(diags))
	}
	s, err := relay.New(cfg, relay.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	post := func(id string) {
		body := crashBody(id, 2)
		req, _ := http.NewRequest("POST", "http://"+addrs[0]+"/hooks/meta", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", signWith("dlq-secret", body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("post: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return out.String() + errb.String(), code
	}
	post("wamid.dlq-1")
	var eventID string
	waitFor(t, 10*time.Second, func() bool {
		out, _ := cli("dlq", "list", "-config", cfgPath, "-json")
		if i := strings.Index(out, `"event_id": "`); i >= 0 {
			eventID = out[i+len(`"event_id": "`):]
			eventID = eventID[:strings.Index(eventID, `"`)]
			return true
		}
		return false
	}, "a dead letter")
	out, code := cli("dlq", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, eventID) || !strings.Contains(out, "crm") || !strings.Contains(out, "400") {
		t.Fatalf("dlq list (%d):\n%s", code, out)
	}
	// dlq show prints the event for a person: the body as indented JSON
	// text (not base64), the dead letter's backend and error.
	out, code = cli("dlq", "show", "-admin", addrs[1], eventID)
	if code != 0 || !strings.Contains(out, "channel") || !strings.Contains(out, "meta (provider meta)") ||
		!strings.Contains(out, "JSON):\n{\n  \"object\": \"whatsapp_business_account\"") || !strings.Contains(out, "wamid.dlq-1") ||
		!strings.Contains(out, "400") {
		t.Fatalf("dlq show (%d):\n%s", code, out)
	}
	out, code = cli("dlq", "show", "-json", "-admin", "http://"+addrs[1], eventID)
	if code != 0 || !strings.Contains(out, `"channel": "meta"`) || !strings.Contains(out, `"body":`) || !strings.Contains(out, `"last_error":`) {
		t.Fatalf("dlq show -json (%d):\n%s", code, out)
	}
	// A misspelt backend is an error, not "replayed 0".
	out, code = cli("dlq", "replay", "-all", "-backend", "nosuch", "-admin", addrs[1])
	if code != 1 || !strings.Contains(out, `unknown backend "nosuch"`) || strings.Contains(out, "replayed") {
		t.Fatalf("dlq replay -all -backend nosuch (%d): %s", code, out)
	}
	be.status.Store(0)
	out, code = cli("dlq", "replay", "-config", cfgPath, eventID)
	if code != 0 || !strings.Contains(out, "replayed 1") {
		t.Fatalf("dlq replay (%d): %s", code, out)
	}
	waitFor(t, 10*time.Second, func() bool { return len(be.got()) == 1 }, "replayed delivery")

	be.status.Store(400)
	post("wamid.dlq-2")
	post("wamid.dlq-3")
	waitFor(t, 10*time.Second, func() bool {
		out, _ := cli("dlq", "list", "-config", cfgPath, "-json")
		return strings.Count(out, `"event_id"`) == 2
	}, "two dead letters")
	out, code = cli("dlq", "purge", "-all", "-backend", "crm", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "purged 2") {
		t.Fatalf("dlq purge -all (%d): %s", code, out)
	}
	out, _ = cli("dlq", "list", "-config", cfgPath, "-json")
	if strings.Contains(out, "event_id") {
		t.Fatalf("dead letters left after purge: %s", out)
	}
	if _, code := cli("dlq", "replay", "-config", cfgPath); code == 0 {
		t.Error("replay without ids or -all must fail")
	}
	if out, code := cli("dlq", "show", "-config", cfgPath, "no-such-event"); code == 0 || !strings.Contains(out, "no such") {
		t.Errorf("show of an unknown id: %d %s", code, out)
	}
}
