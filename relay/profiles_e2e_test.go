package relay

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// allProvidersConfig has one channel per provider profile, each with the
// auth its provider uses, all forwarding to b0 (and Meta's routed number
// to b1). SECRET is replaced to build a forger's copy of the same file.
const allProvidersConfig = `
data_dir = "./data"
log { level = "debug" }
queue { retain = "1h" }
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }

channel "meta" {
  listener = "public"
  path = "/meta"
  provider = "meta"
  auth "hmac" { secrets = ["SECRET-meta"] }
  forward_to = ["b0"]
  route {
    when = { phone_number_id = "106540352242922" }
    forward_to = ["b1"]
  }
}
channel "twilio" {
  listener = "public"
  path = "/twilio"
  provider = "twilio"
  public_url = "https://hooks.example.com/hooks/twilio"
  auth "twilio" { auth_tokens = ["SECRET-twilio"] }
  forward_to = ["b0"]
}
channel "infobip" {
  listener = "public"
  path = "/infobip"
  provider = "infobip"
  auth "basic" {
    user "infobip" { password = "SECRET-infobip" }
  }
  forward_to = ["b0"]
}
channel "gupshup" {
  listener = "public"
  path = "/gupshup"
  provider = "gupshup"
  auth "header" { values = ["SECRET-gupshup"] }
  forward_to = ["b0"]
}
channel "karix" {
  listener = "public"
  path = "/karix"
  provider = "karix"
  auth "header" { values = ["SECRET-karix"] }
  forward_to = ["b0"]
}
channel "netcore" {
  listener = "public"
  path = "/netcore"
  provider = "netcore"
  auth "header" { values = ["SECRET-netcore"] }
  forward_to = ["b0"]
}
channel "webex" {
  listener = "public"
  path = "/webex"
  provider = "webex"
  auth "hmac" { secrets = ["SECRET-webex"] }
  forward_to = ["b0"]
}
channel "vonage" {
  listener = "public"
  path = "/vonage"
  provider = "vonage"
  reject_status = 503
  auth "jwt" { secrets = ["SECRET-vonage-0123456789abcdef0123"] }
  forward_to = ["b0"]
}
channel "messagebird" {
  listener = "public"
  path = "/messagebird"
  provider = "messagebird"
  public_url = "https://hooks.example.com/hooks/messagebird"
  auth "jwt" { secrets = ["SECRET-messagebird-0123456789abcdef"] }
  forward_to = ["b0"]
}
channel "sinch" {
  listener = "public"
  path = "/sinch"
  provider = "sinch"
  auth "basic" {
    user "sinch" { password = "SECRET-sinch" }
  }
  forward_to = ["b0"]
}
channel "standard" {
  listener = "public"
  path = "/standard"
  provider = "standard"
  auth "standard_webhooks" { secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }
  forward_to = ["b0"]
}
channel "generic" {
  listener = "public"
  path = "/generic"
  provider = "generic"
  event_id_header = "X-Event-Id"
  auth "hmac" {
    header = "X-Signature"
    secrets = ["SECRET-generic"]
  }
  forward_to = ["b0"]
}
backend "b0" {
  url = "%s"
  retry {
    initial = "20ms"
    max = "100ms"
  }
}
backend "b1" {
  url = "%s"
  retry {
    initial = "20ms"
    max = "100ms"
  }
}
`

func TestEveryProfileEndToEnd(t *testing.T) {
	b0, b1 := newRecorder(t), newRecorder(t)
	cfgText := fmt.Sprintf(allProvidersConfig, b0.srv.URL, b1.srv.URL)
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
