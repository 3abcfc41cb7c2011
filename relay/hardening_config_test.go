package relay

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestInjectingUpstreamNeedsCallerAuthWhenExposed: an upstream that injects
// credentials, without caller_auth, on a listener that hosts channels,
// serves TLS or is not loopback is a validation error at the upstream
// block (file:line:col), unless caller_auth "none" {} says so on purpose.
func TestInjectingUpstreamNeedsCallerAuthWhenExposed(t *testing.T) {
	const head = `data_dir = "./data"
admin { address = "127.0.0.1:0" }
`
	upstream := func(callerAuth string) string {
		return `upstream "bsp" {
  listener      = "l"
  path          = "/out/bsp/"
  base_url      = "https://api.example.com"
  allow_paths   = ["/**"]
  allow_methods = ["GET", "POST", "DELETE"]
  inject "header" {
    name  = "Authorization"
    value = "App key"
  }
` + callerAuth + `}
`
	}
	const channel = `channel "c" {
  listener = "l"
  path = "/hooks/c"
  auth "none" {}
  forward_to = ["b"]
}
backend "b" { url = "http://127.0.0.1:1/" }
`
	cases := []struct {
		name, listener, extra, callerAuth string
		want                              string // "" = valid
	}{
		{"public address", `listener "l" { address = "0.0.0.0:0" }`, "", "", "is not loopback"},
		{"empty host", `listener "l" { address = ":0" }`, "", "", "is not loopback"},
		{"tls on loopback", "listener \"l\" {\n  address = \"127.0.0.1:0\"\n  tls { self_signed = true }\n}", "", "", "serves TLS"},
		{"hosts a channel", `listener "l" { address = "127.0.0.1:0" }`, channel, "", `hosts channel "c"`},
		{"public, none on purpose", `listener "l" { address = "0.0.0.0:0" }`, channel, "  caller_auth \"none\" {}\n", ""},
		{"public, caller jwt", `listener "l" { address = "0.0.0.0:0" }`, "", "  caller_auth \"header\" {\n    name = \"X-Caller\"\n    values = [\"caller-secret-0123456789\"]\n  }\n", ""},
		{"loopback internal", `listener "l" { address = "127.0.0.1:0" }`, "", "", ""},
		{"localhost internal", `listener "l" { address = "localhost:0" }`, "", "", ""},
		{"ipv6 loopback", `listener "l" { address = "[::1]:0" }`, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "relay.hcl")
			text := head + tc.listener + "\n" + tc.extra + upstream(tc.callerAuth)
			os.WriteFile(file, []byte(text), 0o600)
			_, diags := LoadConfig(file)
			out := FormatDiagnostics(diags)
			if tc.want == "" {
				if diags.HasErrors() {
					t.Fatalf("want valid, got:\n%s", out)
				}
				return
			}
			line := 1 + strings.Count(text[:strings.Index(text, `upstream "bsp"`)], "\n")
			pos := file + ":" + strconv.Itoa(line) + ":1: error: credentials injected for anyone"
			if !strings.Contains(out, pos) || !strings.Contains(out, tc.want) || !strings.Contains(out, `caller_auth "none" {}`) {
				t.Fatalf("want %q and %q, got:\n%s", pos, tc.want, out)
			}
		})
	}
}
