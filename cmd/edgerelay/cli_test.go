package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

// cliRun runs the CLI in process and returns its exit code and outputs.
func cliRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpAndUsage: every command answers -h with its own usage on stdout
// and exit 0; help NAME is the same text; unknown commands and
// subcommands say so and exit 2; an admin command without -admin or
// -config says where it wants to be pointed instead of reading a file.
func TestHelpAndUsage(t *testing.T) {
	for _, c := range commands {
		code, out, errs := cliRun(c.name, "-h")
		if code != 0 || !strings.HasPrefix(out, "usage: edgerelay "+c.name) || errs != "" {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q", c.name, code, out, errs)
		}
		code, help, _ := cliRun("help", c.name)
		if code != 0 || !strings.HasPrefix(help, c.usage) {
			t.Errorf("help %s: exit %d, %q", c.name, code, help)
		}
	}
	if code, out, _ := cliRun("help", "run"); !strings.Contains(out, "SIGHUP") || code != 0 {
		t.Errorf("help run printed %q (%d), want run's usage", out, code)
	}
	if code, out, _ := cliRun("run", "-h"); code != 0 || !strings.Contains(out, "-shutdown-grace") {
		t.Errorf("run -h: exit %d, %q", code, out)
	}
	for _, sub := range []string{"list", "show", "replay", "purge"} {
		if code, out, _ := cliRun("dlq", sub, "-h"); code != 0 || !strings.HasPrefix(out, "usage: edgerelay dlq "+sub) || !strings.Contains(out, "-token") {
			t.Errorf("dlq %s -h: exit %d, %q", sub, code, out)
		}
	}
	if code, out, _ := cliRun("dlq", "-h"); code != 0 || !strings.HasPrefix(out, "usage: edgerelay dlq") || strings.Contains(out, "configuration file") {
		t.Errorf("dlq -h: exit %d, %q", code, out)
	}
	if code, _, errs := cliRun("dlq", "frob"); code != 2 || !strings.Contains(errs, `unknown subcommand "frob"`) {
		t.Errorf("dlq frob: exit %d, %q", code, errs)
	}
	if code, _, errs := cliRun("frob"); code != 2 || !strings.Contains(errs, `unknown command "frob"`) {
		t.Errorf("frob: exit %d, %q", code, errs)
	}
	if code, _, errs := cliRun("help", "frob"); code != 2 || !strings.Contains(errs, `unknown command "frob"`) {
		t.Errorf("help frob: exit %d, %q", code, errs)
	}
	if code, _, errs := cliRun("run", "-nosuchflag"); code != 2 || !strings.Contains(errs, "-nosuchflag") || !strings.Contains(errs, "usage: edgerelay run") {
		t.Errorf("run -nosuchflag: exit %d, %q", code, errs)
	}
	// No -config and no -admin: nothing is read from ./config.hcl.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config.hcl"), "this is not HCL {{{")
	t.Chdir(dir)
	for _, args := range [][]string{{"dlq", "list"}, {"certs"}} {
		code, _, errs := cliRun(args...)
		if code != 1 || !strings.Contains(errs, "give -admin HOST:PORT") || strings.Contains(errs, "config.hcl") {
			t.Errorf("%v without -admin/-config: exit %d, %q", args, code, errs)
		}
	}
	if code, _, errs := cliRun("dlq", "replay"); code != 2 || !strings.Contains(errs, "give event ids or -all") {
		t.Errorf("dlq replay without ids: exit %d, %q", code, errs)
	}
}

func TestAdminBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9090":               "http://127.0.0.1:9090",
		":9090":                        "http://127.0.0.1:9090",
		"0.0.0.0:9090":                 "http://127.0.0.1:9090",
		"[::1]:9090":                   "http://[::1]:9090",
		"localhost:9090":               "http://localhost:9090",
		"http://127.0.0.1:9090/":       "http://127.0.0.1:9090",
		"https://ops.example.com:9443": "https://ops.example.com:9443",
	} {
		got, err := adminBaseURL(in)
		if err != nil || got != want {
			t.Errorf("adminBaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1", "ftp://x:1", "http://", "a:b:c"} {
		if got, err := adminBaseURL(bad); err == nil {
			t.Errorf("adminBaseURL(%q) = %q, want an error", bad, got)
		}
	}
}

// TestCertsAndTokens runs a relay with admin tokens and a self-signed
// listener: certs shows the real expiry (not 0001-01-01), -admin takes
// host:port, -token and EDGERELAY_ADMIN_TOKEN are sent as bearer tokens, a
// missing token is explained, and a viewer's dlq show hides the body.
func TestCertsAndTokens(t *testing.T) {
	addrs := freeAddrs(t, 2)
	dir := t.TempDir()
	t.Setenv("CLI_TEST_VIEWER", "viewer-token-0123456789abcdef")
	t.Setenv("CLI_TEST_OPERATOR", "operator-token-0123456789abcdef")
	t.Setenv(adminEnvToken, "")
	cfgPath := filepath.Join(dir, "relay.hcl")
	writeFile(t, cfgPath, `
data_dir = "./data"
listener "public" {
  address = "`+addrs[0]+`"
  tls {
    self_signed = true
    names       = ["hooks.test"]
  }
}
admin {
  address = "`+addrs[1]+`"
  token "noc" {
    value = env("CLI_TEST_VIEWER")
    role  = "viewer"
  }
  token "ops" {
    value = env("CLI_TEST_OPERATOR")
    role  = "operator"
  }
}
channel "meta" {
  listener   = "public"
  path       = "/hooks/meta"
  provider   = "meta"
  auth "hmac" { secrets = ["s"] }
  forward_to = ["crm"]
}
backend "crm" { url = "http://127.0.0.1:9/" }
`)
	cfg, diags := relay.LoadConfig(cfgPath)
	if diags.HasErrors() {
		t.Fatal(relay.FormatDiagnostics(diags))
	}
	s, err := relay.New(cfg, relay.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})

	code, _, errs := cliRun("certs", "-admin", addrs[1])
	if code != 1 || !strings.Contains(errs, "401") || !strings.Contains(errs, "-token") || !strings.Contains(errs, adminEnvToken) {
		t.Fatalf("certs without a token: exit %d, %q", code, errs)
	}
	code, out, errs := cliRun("certs", "-admin", addrs[1], "-token", "viewer-token-0123456789abcdef")
	if code != 0 {
		t.Fatalf("certs -token: exit %d, %s", code, errs)
	}
	row := regexp.MustCompile(`(?m)^public\s+self_signed\s+\S*hooks\.test\S*\s+.*\s(\d{4}-\d\d-\d\dT\S+)\s+(\d+)\s*$`).FindStringSubmatch(out)
	if row == nil {
		t.Fatalf("certs: no row for the public listener's certificate:\n%s", out)
	}
	exp, err := time.Parse(time.RFC3339, row[1])
	if err != nil || exp.Before(time.Now()) || exp.After(time.Now().AddDate(20, 0, 0)) || strings.Contains(out, "0001-01-01") {
		t.Fatalf("certs: EXPIRES %q is not the certificate's expiry:\n%s", row[1], out)
	}
	t.Setenv(adminEnvToken, "operator-token-0123456789abcdef")
	if code, out, errs := cliRun("certs", "-config", cfgPath); code != 0 || !strings.Contains(out, row[1]) {
		t.Fatalf("certs -config with %s: exit %d, %s%s", adminEnvToken, code, out, errs)
	}
	t.Setenv(adminEnvToken, "wrong")
	if code, _, errs := cliRun("dlq", "list", "-admin", "http://"+addrs[1]); code != 1 || !strings.Contains(errs, "token was refused") {
		t.Fatalf("dlq list with a wrong token: exit %d, %q", code, errs)
	}
	if code, _, errs := cliRun("dlq", "purge", "-all", "-admin", addrs[1], "-token", "viewer-token-0123456789abcdef"); code != 1 || !strings.Contains(errs, "403") || !strings.Contains(errs, "operator token") {
		t.Fatalf("dlq purge with a viewer token: exit %d, %q", code, errs)
	}
}

// TestReceiveBindFailure: a receive that cannot bind says why and never
// claims to be listening.
func TestReceiveBindFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errs := cliRun("receive", "-addr", ln.Addr().String())
	if code != 1 || !strings.Contains(errs, "address already in use") || strings.Contains(errs, "listening") {
		t.Fatalf("receive on a taken port: exit %d, stderr %q", code, errs)
	}
}

func TestBodyText(t *testing.T) {
	for _, c := range []struct{ in, kind, text string }{
		{`{"a":[1,2]}`, "JSON", "{\n  \"a\": [\n    1,\n    2\n  ]\n}"},
		{"Body=hello&From=whatsapp%3A%2B1", "text", "Body=hello&From=whatsapp%3A%2B1"},
		{"\xff\xfe\x00", "binary, base64", "//4A"},
		{"", "empty", ""},
	} {
		kind, text := bodyText([]byte(c.in))
		if kind != c.kind || text != c.text {
			t.Errorf("bodyText(%q) = %q, %q; want %q, %q", c.in, kind, text, c.kind, c.text)
		}
	}
}

// TestVersion builds the binary as "make build" does and checks that
// version reports the module's build info: in a git checkout the VCS
// revision (the one HEAD names) and its time; without VCS stamping, a
// plain statement that it is unknown.
func TestVersion(t *testing.T) {
	info := buildInfo{Version: "(devel)", Revision: "0123456789abcdef0123", Modified: true}
	if got := info.short(); got != "devel+0123456789ab-dirty" {
		t.Errorf("short() = %q", got)
	}
	if got := (buildInfo{Version: "v1.2.3"}).short(); got != "v1.2.3" {
		t.Errorf("short() = %q", got)
	}
	// -buildvcs=auto stamps where the toolchain can (a git clone; not a
	// linked worktree) and is silent elsewhere: what was recorded decides
	// what version must say.
	bin := filepath.Join(t.TempDir(), "edgerelay")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`vcs\.revision=([0-9a-f]+)`).FindSubmatch(meta)
	vcs := m != nil
	if vcs {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil || strings.TrimSpace(string(head)) != string(m[1]) {
			t.Fatalf("the recorded revision %s is not HEAD %s (%v)", m[1], head, err)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "edgerelay ") || !strings.Contains(string(out), "go1.") {
		t.Fatalf("version printed %q", out)
	}
	if vcs {
		rev := string(m[1])
		if !strings.Contains(string(out), "revision  "+rev) || !regexp.MustCompile(`committed \d{4}-\d\d-\d\dT`).Match(out) ||
			!regexp.MustCompile(`^edgerelay \S*`+rev[:12]).Match(out) {
			t.Fatalf("version in a git checkout (HEAD %s) printed:\n%s", rev, out)
		}
	} else if !strings.Contains(string(out), "revision  unknown") {
		t.Fatalf("version without VCS information printed:\n%s", out)
	}
}
