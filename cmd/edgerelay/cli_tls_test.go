package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

// TestAdminOverHTTPS: with an admin tls block, -config means HTTPS trusting
// the admin's certificate file; -admin https://... needs -cacert for a
// private certificate and says why without it.
func TestAdminOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "edgerelay admin test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath := filepath.Join(dir, "admin.pem")
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, "admin.key"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))

	addrs := freeAddrs(t, 2)
	cfgPath := filepath.Join(dir, "relay.hcl")
	writeFile(t, cfgPath, `
data_dir = "./data"
listener "public" { address = "`+addrs[0]+`" }
admin {
  address = "`+addrs[1]+`"
  tls {
    cert_file = "admin.pem"
    key_file  = "admin.key"
  }
}
channel "c" {
  listener   = "public"
  path       = "/c"
  auth "none" {}
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
	t.Setenv(adminEnvToken, "")
	if code, out, errs := cliRun("dlq", "list", "-config", cfgPath); code != 0 || !strings.Contains(out, "EVENT ID") {
		t.Fatalf("dlq list -config with an HTTPS admin: exit %d, %s%s", code, out, errs)
	}
	code, _, errs := cliRun("dlq", "list", "-admin", "https://"+addrs[1])
	if code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("an untrusted admin certificate: exit %d, %q", code, errs)
	}
	if code, out, errs := cliRun("dlq", "list", "-admin", "https://"+addrs[1], "-cacert", certPath); code != 0 || !strings.Contains(out, "EVENT ID") {
		t.Fatalf("dlq list -cacert: exit %d, %s%s", code, out, errs)
	}
	if code, _, errs := cliRun("dlq", "list", "-admin", addrs[1]); code != 1 || !strings.Contains(errs, "speaks HTTPS") {
		t.Fatalf("plain HTTP to an HTTPS admin: exit %d, %q", code, errs)
	}
}
