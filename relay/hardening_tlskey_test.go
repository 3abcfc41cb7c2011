package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeServerCert writes cert.pem and key.pem (with keyMode) into dir.
func writeServerCert(t *testing.T, dir string, keyMode os.FileMode) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), keyMode)
	os.Chmod(filepath.Join(dir, "key.pem"), keyMode) // past the umask
}

// TestLooseTLSKeyFileWarned: a listener key readable by group or others is
// a warning at validate (at key_file's position) and a WARN line when the
// listener loads it; a 0600 key gives neither.
func TestLooseTLSKeyFileWarned(t *testing.T) {
	const cfg = `data_dir = "./data"
listener "public" {
  address = "127.0.0.1:0"
  tls {
    cert_file = "cert.pem"
    key_file  = "key.pem"
  }
}
admin { address = "127.0.0.1:0" }
channel "c" {
  listener = "public"
  path = "/c"
  auth "none" {}
  forward_to = ["b"]
}
backend "b" { url = "http://127.0.0.1:1/" }
`
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o640, true}, {0o604, true}, {0o600, false}, {0o400, false}} {
		dir := t.TempDir()
		writeServerCert(t, dir, tc.mode)
		file := filepath.Join(dir, "relay.hcl")
		os.WriteFile(file, []byte(cfg), 0o600)
		c, diags := LoadConfig(file)
		if diags.HasErrors() {
			t.Fatal(FormatDiagnostics(diags))
		}
		out := FormatDiagnostics(diags)
		pos := file + ":6:5: warning: private key readable by other users"
		if got := strings.Contains(out, pos); got != tc.warn {
			t.Errorf("mode %04o: validate warning %v, want %v:\n%s", tc.mode, got, tc.warn, out)
		}
		logs := &syncBuffer{}
		s, err := New(c, Options{LogOutput: logs})
		if err != nil {
			t.Fatal(err)
		}
		s.Shutdown(t.Context())
		line := `"level":"WARN","msg":"private key file readable by other users"`
		if got := strings.Contains(logs.String(), line); got != tc.warn {
			t.Errorf("mode %04o: load warning %v, want %v:\n%s", tc.mode, got, tc.warn, logs.String())
		}
	}
}
