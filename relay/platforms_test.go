package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlatformExamples validates the seeded platforms' examples and checks
// that the README shows each of them unchanged, so neither can rot.
func TestPlatformExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/platforms/*.hcl")
	if len(files) < 3 {
		t.Fatalf("platform examples: %v", files)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, diags := LoadConfig(f)
			if diags.HasErrors() {
				t.Fatalf("%s:\n%s", f, FormatDiagnostics(diags))
			}
			if len(cfg.Channels) == 0 || len(cfg.Backends) == 0 {
				t.Fatalf("%s: wants a channel and a backend", f)
			}
			injected := false
			for _, b := range cfg.Backends {
				injected = injected || len(b.Inject) > 0
			}
			if !injected {
				t.Errorf("%s: no backend injects credentials", f)
			}
			src, _ := os.ReadFile(f)
			if !strings.Contains(string(readme), "```hcl\n"+string(src)+"```") {
				t.Errorf("README.md does not show %s unchanged", f)
			}
		})
	}
}
