package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func quarantineOpsConfig(listen, admin, secret, backend string) string {
	return fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = %q }
admin {
  address = %q
  token "noc" {
    value = "viewer-token-q-0123456789abcdef"
    role  = "viewer"
  }
  token "ops" {
    value = "operator-token-q-0123456789abcdef"
    role  = "operator"
  }
}
channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" { secrets = [%q] }
  quarantine {
    max_size = "1MiB"
    keep     = "24h"
  }
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

// TestQuarantineCommands runs the real binary: callbacks signed with a
// secret Meta rotated first are refused and kept; a viewer lists them but
// sees no headers or body and cannot release; after the file gets the new
// secret and SIGHUP, an operator's `quarantine release` delivers every one
// once, in per-sender order.
func TestQuarantineCommands(t *testing.T) {
	bin := relayBin(t)
	be := &opsBackend{}
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)
	addrs := freeAddrs(t, 2)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "relay.hcl")
	writeFile(t, cfgPath, quarantineOpsConfig(addrs[0], addrs[1], "meta-secret-old", srv.URL))
	logs := &lockedBuffer{}
	p := startRelay(t, bin, cfgPath, addrs[1], logs)
	t.Setenv(adminEnvToken, "")
	viewer := []string{"-admin", addrs[1], "-token", "viewer-token-q-0123456789abcdef"}
	operator := []string{"-admin", addrs[1], "-token", "operator-token-q-0123456789abcdef"}

	var sent, sigs []string
	for i := range 4 {
		for sender := 1; sender <= 2; sender++ {
			id := fmt.Sprintf("wamid.CRASH-q-%d-%d", sender, i)
			body := crashBody(id, sender)
			sig := signWith("meta-secret-new", body)
			req, _ := http.NewRequest("POST", "http://"+addrs[0]+"/hooks/meta", bytes.NewReader(body))
			req.Header.Set("X-Hub-Signature-256", sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("%s: %d, want 401", id, resp.StatusCode)
			}
			sent, sigs = append(sent, id), append(sigs, sig)
		}
	}

	code, out, errs := cliRun(append([]string{"quarantine", "list", "-channel", "meta"}, viewer...)...)
	if code != 0 {
		t.Fatalf("list: exit %d %s", code, errs)
	}
	rows := regexp.MustCompile(`(?m)^([0-9a-f]{16})\s+meta\s+bad_signature\s+\S+\s+127\.0\.0\.1:\d+\s+POST /hooks/meta\s+\d+$`).FindAllStringSubmatch(out, -1)
	if len(rows) != len(sent) || !strings.Contains(out, "channel meta: 8 kept") {
		t.Fatalf("list: %d rows:\n%s", len(rows), out)
	}
	code, out, _ = cliRun(append(append([]string{"quarantine", "show"}, viewer...), rows[0][1])...)
	if code != 0 || !strings.Contains(out, "not shown") || strings.Contains(out, "sha256=") || strings.Contains(out, "CRASH") {
		t.Fatalf("viewer show: exit %d\n%s", code, out)
	}
	code, out, _ = cliRun(append(append([]string{"quarantine", "show"}, operator...), rows[0][1])...)
	if code != 0 || !strings.Contains(out, sent[0]) || !strings.Contains(out, "X-Hub-Signature-256: [redacted]") || strings.Contains(out, sigs[0]) {
		t.Fatalf("operator show: exit %d\n%s", code, out)
	}
	if code, _, errs := cliRun(append([]string{"quarantine", "release", "-channel", "meta"}, viewer...)...); code != 1 || !strings.Contains(errs, "403") {
		t.Fatalf("viewer release: exit %d %q", code, errs)
	}
	if code, out, _ := cliRun(append([]string{"quarantine", "release", "-channel", "meta"}, operator...)...); code != 0 || !strings.Contains(out, "released 0, still failing 8") {
		t.Fatalf("release before the fix: exit %d %q", code, out)
	}

	writeFile(t, cfgPath, quarantineOpsConfig(addrs[0], addrs[1], "meta-secret-new", srv.URL))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "configuration reloaded") }, "reload log line")
	if code, out, errs := cliRun(append([]string{"quarantine", "release", "-channel", "meta"}, operator...)...); code != 0 || !strings.Contains(out, "released 8, still failing 0") {
		t.Fatalf("release: exit %d %q %q", code, out, errs)
	}
	waitFor(t, 10*time.Second, func() bool { return len(be.got()) == len(sent) }, "released deliveries")
	time.Sleep(200 * time.Millisecond)
	got := be.got()
	if len(got) != len(sent) {
		t.Fatalf("delivered %d, want %d: %v", len(got), len(sent), got)
	}
	last := map[string]int{}
	for _, id := range got {
		var sender, n int
		fmt.Sscanf(id, "wamid.CRASH-q-%d-%d", &sender, &n)
		if prev, ok := last[fmt.Sprint(sender)]; ok && n != prev+1 {
			t.Fatalf("sender %d out of order: %v", sender, got)
		}
		last[fmt.Sprint(sender)] = n
	}
	if code, out, _ := cliRun(append([]string{"quarantine", "purge", "-channel", "meta"}, operator...)...); code != 0 || !strings.Contains(out, "purged 0") {
		t.Fatalf("purge: exit %d %q", code, out)
	}
	if !strings.Contains(logs.String(), `"action":"quarantine_release"`) {
		t.Error("no audit line for the release")
	}
	for _, s := range append(sigs, "meta-secret-old", "meta-secret-new", "operator-token-q") {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("%q in the log", s)
		}
	}
}
