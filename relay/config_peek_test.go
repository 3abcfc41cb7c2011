package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeekAdmin reads only the admin block: the channels' unset env()
// secrets (set only where the relay runs) do not matter to a CLI that
// needs the admin address.
func TestPeekAdmin(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rest := `
data_dir = "./data"
listener "public" { address = "127.0.0.1:8443" }
channel "meta" {
  listener = "public"
  path     = "/m"
  provider = "meta"
  auth "hmac" { secrets = [env("PEEK_TEST_UNSET_SECRET")] }
  forward_to = ["crm"]
}
backend "crm" { url = "http://127.0.0.1:9/" }
`
	ep, diags := PeekAdmin(write("none.hcl", rest))
	if diags.HasErrors() || ep.Address != "127.0.0.1:9090" || ep.TLS {
		t.Fatalf("no admin block: %+v %s", ep, FormatDiagnostics(diags))
	}
	ep, diags = PeekAdmin(write("tls.hcl", rest+`
admin {
  address = "0.0.0.0:9443"
  token "ops" {
    value = env("PEEK_TEST_UNSET_TOKEN")
    role  = "operator"
  }
  tls {
    cert_file = "certs/admin.pem"
    key_file  = "certs/admin.key"
  }
}
`))
	if diags.HasErrors() || ep.Address != "0.0.0.0:9443" || !ep.TLS || ep.CertFile != filepath.Join(dir, "certs", "admin.pem") {
		t.Fatalf("admin with tls: %+v %s", ep, FormatDiagnostics(diags))
	}
	_, diags = PeekAdmin(write("bad.hcl", rest+`admin { address = "nope" }`))
	if !diags.HasErrors() || !strings.Contains(FormatDiagnostics(diags), "bad.hcl:12:9: error: invalid address") {
		t.Fatalf("a bad admin address: %s", FormatDiagnostics(diags))
	}
	if _, diags = PeekAdmin(filepath.Join(dir, "missing.hcl")); !diags.HasErrors() {
		t.Fatal("a missing file gave no error")
	}
}
