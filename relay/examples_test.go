package relay

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/relay/profile"
)

// TestProviderExamples: examples/ has one configuration per provider
// profile, and each validates as is once the environment variables it
// names are set (as an EnvironmentFile would set them).
func TestProviderExamples(t *testing.T) {
	envRef := regexp.MustCompile(`env\("([A-Z0-9_]+)"\)`)
	for _, name := range profile.Names() {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join("..", "examples", name+".hcl")
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("no example for provider %q: %v", name, err)
			}
			for _, m := range envRef.FindAllStringSubmatch(string(src), -1) {
				v := "example-" + strings.ToLower(m[1]) + "-0123456789abcdef0123456789abcdef"
				if strings.Contains(m[1], "SIGNING_SECRET") || strings.HasPrefix(m[1], "STANDARD_") {
					v = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
				}
				t.Setenv(m[1], v)
			}
			cfg, diags := LoadConfig(f)
			if diags.HasErrors() {
				t.Fatalf("%s does not validate:\n%s", f, FormatDiagnostics(diags))
			}
			if len(diags) > 0 {
				t.Errorf("%s has warnings:\n%s", f, FormatDiagnostics(diags))
			}
			found := false
			for _, ch := range cfg.Channels {
				found = found || ch.Provider == name
			}
			if !found {
				t.Errorf("%s has no channel of provider %q", f, name)
			}
		})
	}
	// The end-to-end profile tests' configuration validates as is too.
	if _, diags := LoadConfig("testdata/all_providers.hcl"); diags.HasErrors() {
		t.Errorf("testdata/all_providers.hcl:\n%s", FormatDiagnostics(diags))
	}
}
