package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// privateCA makes a CA and a leaf for 127.0.0.1 signed by it.
func privateCA(t *testing.T) (caDER []byte, leaf tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "BSP Test Root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bsp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return caDER, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestUpstreamThroughRelay(t *testing.T) {
	caDER, leaf := privateCA(t)
	var hits atomic.Int32
	var gotAuth, gotPath atomic.Value
	bsp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		gotAuth.Store(r.Header.Get("Authorization"))
		gotPath.Store(r.URL.RequestURI())
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Bsp", "yes")
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"messages":[{"id":"wamid.out"}],"echo":%q}`, b)
	}))
	bsp.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	bsp.StartTLS()
	t.Cleanup(bsp.Close)

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bsp-ca.der"), caDER, 0o600)
	cfg := fmt.Sprintf(`
data_dir = "./data"
listener "internal" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
upstream "bsp" {
  listener    = "internal"
  path        = "/out/bsp/"
  base_url    = %q
  allow_paths = ["/whatsapp/1/message/*"]
  inject "header" {
    name  = "Authorization"
    value = "App injected-key"
  }
  trust_store = ["bsp-ca.der"]
}
`, bsp.URL)
	s := startRelayIn(t, dir, cfg).s
	base := "http://" + s.ListenerAddr("internal")

	req, _ := http.NewRequest("POST", base+"/out/bsp/whatsapp/1/message/text?x=1", strings.NewReader(`{"to":"491"}`))
	req.Header.Set("Authorization", "Bearer caller-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Bsp") != "yes" || !bytes.Contains(body, []byte(`wamid.out`)) {
		t.Fatalf("answer not passed through: %d %s", resp.StatusCode, body)
	}
	if gotAuth.Load() != "App injected-key" || gotPath.Load() != "/whatsapp/1/message/text?x=1" {
		t.Fatalf("BSP saw auth %v path %v", gotAuth.Load(), gotPath.Load())
	}
	for _, p := range []string{"/out/bsp/whatsapp/2/other", "/out/bsp/whatsapp/1/message/../../../admin", "/out/bsp/whatsapp/1/message/%2e%2e/x"} {
		resp, err := http.Post(base+p, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", p, resp.StatusCode)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("BSP got %d requests, want 1", hits.Load())
	}
	// A config with only upstreams is a valid, outbound-only relay; and the
	// listener answers 404 for anything that is neither a channel nor an upstream.
	resp, _ = http.Get(base + "/hooks/none")
	if resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
	resp.Body.Close()
}
