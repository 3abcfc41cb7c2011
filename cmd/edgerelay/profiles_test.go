package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

// TestEveryProfileThroughTheBinary runs `edgerelay run` with one channel per
// provider and drives it with `edgerelay simulate`: every correctly signed
// sample is answered as its provider expects and delivered; the same
// samples signed with the wrong secrets are refused and never delivered.
func TestEveryProfileThroughTheBinary(t *testing.T) {
	bin := relayBin(t)
	var mu sync.Mutex
	perChannel := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		perChannel[r.Header.Get("X-Relay-Channel")]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range perChannel {
			n += c
		}
		return n
	}

	tmpl, err := os.ReadFile("../../relay/testdata/all_providers.hcl")
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	cfgText := strings.NewReplacer("http://127.0.0.1:9801/b0", srv.URL, "http://127.0.0.1:9802/b1", srv.URL).Replace(string(tmpl))
	cfgText = strings.Replace(cfgText, `listener "public" { address = "127.0.0.1:0" }`, `listener "public" { address = "`+addrs[0]+`" }`, 1)
	cfgText = strings.Replace(cfgText, `admin { address = "127.0.0.1:0" }`, `admin { address = "`+addrs[1]+`" }`, 1)
	dir := t.TempDir()
	good := filepath.Join(dir, "relay.hcl")
	forged := filepath.Join(dir, "forged.hcl")
	writeFile(t, good, cfgText)
	forgedText := strings.ReplaceAll(cfgText, "SECRET-", "FORGED-")
	forgedText = strings.ReplaceAll(forgedText, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
	writeFile(t, forged, forgedText)
	cfg, diags := relay.LoadConfig(good)
	if diags.HasErrors() {
		t.Fatal(relay.FormatDiagnostics(diags))
	}
	logs := &lockedBuffer{}
	startRelay(t, bin, good, addrs[1], logs)

	simulate := func(file, channel, kind string) (string, int) {
		out, err := exec.Command(bin, "simulate", "-config", file, "-channel", channel, "-sample", kind).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	want := 0
	for _, ch := range cfg.Channels {
		for _, kind := range []string{"inbound", "status"} {
			if _, ok := ch.Profile.Samples[kind]; !ok {
				continue
			}
			out, code := simulate(good, ch.Name, kind)
			if code != 0 || !strings.Contains(out, "< 200 OK") {
				t.Errorf("%s %s: exit %d\n%s", ch.Name, kind, code, out)
				continue
			}
			want++
			out, code = simulate(forged, ch.Name, kind)
			if code == 0 || !strings.Contains(out, "< "+strconv.Itoa(ch.RejectStatus)) {
				t.Errorf("forged %s %s: exit %d\n%s", ch.Name, kind, code, out)
			}
		}
	}
	waitFor(t, 15*time.Second, func() bool { return total() == want }, "every authentic sample delivered")
	time.Sleep(200 * time.Millisecond)
	if n := total(); n != want {
		t.Fatalf("%d deliveries, want %d", n, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(perChannel) != len(cfg.Channels) {
		t.Errorf("deliveries per channel %v, want all %d channels", perChannel, len(cfg.Channels))
	}
	if strings.Contains(logs.String(), "SECRET-") || strings.Contains(logs.String(), "FORGED-") {
		t.Error("secret in the log")
	}
}
