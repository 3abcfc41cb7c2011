package relay

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// allProvidersConfig reads testdata/all_providers.hcl with the backends' URLs.
func allProvidersConfig(t *testing.T, b0, b1 string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/all_providers.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("http://127.0.0.1:9801/b0", b0, "http://127.0.0.1:9802/b1", b1).Replace(string(b))
}

func TestEveryProfileEndToEnd(t *testing.T) {
	b0, b1 := newRecorder(t), newRecorder(t)
	cfgText := allProvidersConfig(t, b0.srv.URL, b1.srv.URL)
	r := startRelay(t, cfgText)
	cfg := r.s.Config()

	// The forger knows everything but the secrets.
	forgedText := strings.ReplaceAll(cfgText, "SECRET-", "FORGED-")
	forgedText = strings.ReplaceAll(forgedText, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
	dir := t.TempDir()
	forgedFile := filepath.Join(dir, "forged.hcl")
	os.WriteFile(forgedFile, []byte(forgedText), 0o600)
	forged, diags := LoadConfig(forgedFile)
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}

	want := 0
	for _, ch := range cfg.Channels {
		for _, kind := range []string{"inbound", "status"} {
			if _, ok := ch.Profile.Samples[kind]; !ok {
				continue
			}
			t.Run(ch.Name+"/"+kind, func(t *testing.T) {
				var out bytes.Buffer
				res, err := Simulate(cfg, SimulateOptions{Channel: ch.Name, Sample: kind, URL: r.base + ch.Path, Out: &out})
				if err != nil {
					t.Fatal(err)
				}
				if res.Status != ch.Response.Status && !(ch.Response.Status == 0 && res.Status == 200) {
					t.Fatalf("correctly signed %s sample answered %d:\n%s\n%s", ch.Provider, res.Status, out.String(), r.logs.String())
				}
				if ch.Provider == "twilio" && !strings.Contains(res.Body, "<Response/>") {
					t.Errorf("twilio answer %q is not empty TwiML", res.Body)
				}
				want++
				fr, err := Simulate(forged, SimulateOptions{Channel: ch.Name, Sample: kind, URL: r.base + ch.Path, Out: &out})
				if err != nil {
					t.Fatal(err)
				}
				if fr.Status != ch.RejectStatus {
					t.Errorf("forged %s sample answered %d, want %d", ch.Provider, fr.Status, ch.RejectStatus)
				}
			})
		}
	}
	waitFor(t, 10*time.Second, "every authentic sample delivered", func() bool { return len(b0.got())+len(b1.got()) == want })
	time.Sleep(200 * time.Millisecond)
	if got := len(b0.got()) + len(b1.got()); got != want {
		t.Fatalf("%d deliveries, want %d (a forged one got through?)", got, want)
	}
	// Routing: Meta's sample number goes to b1 only.
	for _, g := range b1.got() {
		if g.Header.Get("X-Relay-Channel") != "meta" {
			t.Errorf("b1 got a %s event", g.Header.Get("X-Relay-Channel"))
		}
	}
	if len(b1.got()) == 0 {
		t.Error("the Meta route sent nothing to b1")
	}
	// Every delivered event carries the keys its profile extracted.
	perChannel := map[string]int{}
	for _, g := range append(b0.got(), b1.got()...) {
		ch := g.Header.Get("X-Relay-Channel")
		perChannel[ch]++
		ev, _, err := r.s.Queue().Get(g.Header.Get("X-Relay-Event-Id"))
		if err != nil {
			t.Fatalf("retained event %s: %v", g.Header.Get("X-Relay-Event-Id"), err)
		}
		if ch != "generic" && ch != "standard" && ev.OrderKey == "" {
			t.Errorf("%s event has no order key", ch)
		}
		if ch != "generic" && ev.ProviderEventID == "" {
			t.Errorf("%s event has no provider event id", ch)
		}
	}
	if len(perChannel) != len(cfg.Channels) {
		t.Errorf("deliveries per channel: %v", perChannel)
	}
	logs := r.logs.String()
	for _, sec := range []string{"SECRET-", "FORGED-", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if strings.Contains(logs, sec) {
			t.Errorf("log contains secret material %q", sec)
		}
	}
	if strings.Count(logs, `"msg":"callback rejected"`) < want {
		t.Errorf("every forged callback must be logged with its reason")
	}
}

func TestMetaBatchAndStatusIDs(t *testing.T) {
	// sent, delivered, read of one message are three events, not duplicates.
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	for _, st := range []string{"sent", "delivered", "read", "read"} {
		body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"2"},"statuses":[{"id":"wamid.S1","status":"` + st + `","timestamp":"1","recipient_id":"4915100000009"}]},"field":"messages"}]}]}`)
		if resp := post(t, r.base+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != http.StatusOK {
			t.Fatal(resp.StatusCode)
		}
	}
	waitFor(t, 5*time.Second, "3 status deliveries", func() bool { return len(be.got()) == 3 })
	time.Sleep(100 * time.Millisecond)
	if n := len(be.got()); n != 3 {
		t.Fatalf("%d deliveries, want 3 (the repeated read is a duplicate)", n)
	}
}
