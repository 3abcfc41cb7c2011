package pebbletest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/pebbletest"
)

// TestStart checks what a client of the CA relies on: the directory
// answers over HTTPS trusted through TrustedRootFile, and the issuance
// root is a CA certificate.
func TestStart(t *testing.T) {
	ca := pebbletest.Start(t, pebbletest.Options{})
	pemData, err := os.ReadFile(ca.TrustedRootFile(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatalf("trusted root file: %q", pemData)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(ca.DirectoryURL())
	if err != nil {
		t.Fatalf("directory over HTTPS trusting the endpoint certificate: %v", err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("directory: status %d: %v", resp.StatusCode, err)
	}
	if u, _ := dir["newOrder"].(string); !strings.HasSuffix(u, "/order-plz") {
		t.Fatalf("directory %v lacks newOrder", dir)
	}
	if ca.Orders() != 0 {
		t.Fatalf("%d orders before any client", ca.Orders())
	}

	b, _ := pem.Decode(ca.RootsPEM())
	if b == nil {
		t.Fatalf("roots PEM: %q", ca.RootsPEM())
	}
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !root.IsCA || !strings.Contains(root.Subject.CommonName, "Pebble") {
		t.Fatalf("issuance root %v: %v", root.Subject, err)
	}
	if _, err := root.Verify(x509.VerifyOptions{Roots: ca.IssuerPool()}); err != nil {
		t.Fatalf("root not in IssuerPool: %v", err)
	}
}

func TestFreshDomain(t *testing.T) {
	a, b := pebbletest.FreshDomain(), pebbletest.FreshDomain()
	if a == b || !strings.HasSuffix(a, "."+pebbletest.Zone) || strings.ToLower(a) != a {
		t.Fatalf("FreshDomain gave %q and %q", a, b)
	}
}
