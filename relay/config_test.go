package relay

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestConfigExample loads config.hcl.example, so the example can never rot.
func TestConfigExample(t *testing.T) {
	cfg, diags := LoadConfig("../config.hcl.example")
	if diags.HasErrors() {
		t.Fatalf("config.hcl.example does not validate:\n%s", FormatDiagnostics(diags))
	}
	if len(cfg.Channels) != 3 || len(cfg.Backends) != 2 || len(cfg.Upstreams) != 1 {
		t.Fatalf("unexpected shape: %s", cfg.Summary())
	}
	meta := cfg.Channels[0]
	if meta.Provider != "meta" || !meta.Ordered || meta.DedupeWindow != 24*time.Hour || meta.RejectStatus != 401 {
		t.Errorf("meta channel defaults wrong: %+v", meta)
	}
	if h := meta.Auth[0].HMAC; h.Header != "X-Hub-Signature-256" || h.Prefix != "sha256=" || len(h.Secrets) != 1 {
		t.Errorf("meta hmac defaults wrong (the empty OLD secret must be dropped): %+v", h.Header)
	}
	if !filepath.IsAbs(cfg.DataDir) || filepath.Base(cfg.DataDir) != "data" {
		t.Errorf("data_dir must resolve relative to the file: %s", cfg.DataDir)
	}
	crm := cfg.Backends[0]
	if crm.Retry.MaxAge != 168*time.Hour || crm.Breaker.Failures != 5 || crm.SignSecret == "" {
		t.Errorf("backend crm wrong: %+v", crm)
	}
	if sb := cfg.Backends[1]; len(sb.Inject) != 1 || sb.Inject[0].Type != "basic" || sb.Rate != 200 {
		t.Errorf("the example's injected backend is missing: %+v", sb.Inject)
	}
}

// TestConfigDiagnostics compares the diagnostics of every invalid file in
// testdata/config with its golden file (go test -run Diagnostics -update).
func TestConfigDiagnostics(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.hcl")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, diags := LoadConfig(f)
			if cfg != nil || !diags.HasErrors() {
				t.Fatalf("%s: expected errors", f)
			}
			got := FormatDiagnostics(diags)
			golden := strings.TrimSuffix(f, ".hcl") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (run with -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ\n--- got\n%s--- want\n%s", got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("diagnostic without file:line:col: %q", line)
				}
				if strings.Contains(line, "s3cret") {
					t.Errorf("diagnostic leaks a secret: %q", line)
				}
			}
		})
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	for in, want := range map[string]int64{"3MiB": 3 << 20, "10GiB": 10 << 30, "512KB": 512000, "1024": 1024, "1.5KiB": 1536} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ten", "-1MiB", "3XB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "7d": 168 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestConfigFunctions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("from-file\n\n"), 0o600)
	t.Setenv("EDGERELAY_TEST_SECRET", "from-env")
	src := `
data_dir = "d"
listener "l" { address = "127.0.0.1:0" }
channel "c" {
  listener = "l"
  path = "/c"
  provider = "meta"
  auth "hmac" { secrets = [env("EDGERELAY_TEST_SECRET"), file("secret.txt"), env("EDGERELAY_TEST_NOPE", "")] }
  forward_to = ["b"]
}
backend "b" { url = "http://127.0.0.1:1/" }
`
	abs := filepath.Join(dir, "c.hcl")
	cfg, diags := ParseConfig("c.hcl", abs, []byte(src))
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	got := cfg.Channels[0].Auth[0].HMAC.Secrets
	if len(got) != 2 || got[0] != "from-env" || got[1] != "from-file" {
		t.Fatalf("secrets = %q", got)
	}
	if cfg.DataDir != filepath.Join(dir, "d") {
		t.Fatalf("data_dir = %s", cfg.DataDir)
	}
}
