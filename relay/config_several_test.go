package relay

import (
	"strings"
	"testing"
)

// TestConfigReportsEveryProblemAtOnce: a missing required attribute or an
// unset env() does not hide the other problems of the file, and each
// problem is said once (no "value must be known" echo of a failed env()).
func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	cfg, diags := LoadConfig("testdata/config/several_at_once.hcl")
	if cfg != nil {
		t.Fatal("an invalid file gave a Config")
	}
	got := FormatDiagnostics(diags)
	for _, want := range []string{
		`several_at_once.hcl:1:1: error: Missing required argument: The argument "data_dir" is required`,
		`several_at_once.hcl:4:14: error: Missing required argument: The argument "path" is required`,
		`several_at_once.hcl:4:1: error: missing authentication: channel "c1"`,
		`several_at_once.hcl:5:3: error: unknown listener: channel "c1" names listener "publik"`,
		`several_at_once.hcl:7:3: error: unknown backend: backend "crmm" is not defined (did you mean "crm"?)`,
		`several_at_once.hcl:12:28: error: Error in function call: Call to function "env" failed: environment variable EDGERELAY_TEST_UNSET_VAR is not set`,
		`several_at_once.hcl:13:18: error: Error in function call: Call to function "env" failed: environment variable EDGERELAY_TEST_UNSET_VAR2 is not set`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing diagnostic %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 7 {
		t.Errorf("want exactly 7 diagnostics (one per problem), got %d:\n%s", n, got)
	}
	if strings.Contains(got, "must be known") || strings.Contains(got, "empty secret list") {
		t.Errorf("an unset env() must give one diagnostic, not an echo:\n%s", got)
	}
}
