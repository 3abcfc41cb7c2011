package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, der: der}
}

func (ca *testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMutualTLSChannel: a listener requiring BSP client certificates, and
// a channel pinning the certificate's name. Only the right certificate
// reaches the channel; the callback is then delivered.
func TestMutualTLSChannel(t *testing.T) {
	be := newRecorder(t)
	bspCA, otherCA := newTestCA(t, "BSP Client Root"), newTestCA(t, "Other Root")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bsp-client-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bspCA.der}), 0o600)
	cfg := fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" {
  address = "127.0.0.1:0"
  tls {
    self_signed = true
    client_ca   = ["bsp-client-ca.pem"]
  }
}
admin { address = "127.0.0.1:0" }
channel "meta" {
  listener     = "public"
  path         = "/hooks/meta"
  provider     = "meta"
  client_names = ["webhooks.meta.example"]
  auth "hmac" { secrets = ["%s"] }
  forward_to   = ["b0"]
}
backend "b0" { url = %q }
`, testSecret, be.srv.URL)
	r := startRelayIn(t, dir, cfg)
	s, logs := r.s, r.logs
	url := "https://" + s.ListenerAddr("public") + "/hooks/meta"

	// The self-signed development certificate is persisted under data_dir.
	served, err := os.ReadFile(filepath.Join(dir, "data", "selfsigned", "public.crt"))
	if err != nil {
		t.Fatalf("self-signed certificate not persisted: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(served)

	send := func(cert *tls.Certificate) (int, error) {
		tc := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
		body := metaBody(fmt.Sprintf("wamid.mtls-%d", time.Now().UnixNano()), "4915100000010")
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if _, err := send(nil); err == nil {
		t.Error("no client certificate: handshake must fail")
	}
	other := otherCA.client(t, "webhooks.meta.example")
	if _, err := send(&other); err == nil {
		t.Error("certificate from another CA: handshake must fail")
	}
	wrongName := bspCA.client(t, "someone-else.example")
	if st, err := send(&wrongName); err != nil || st != 401 {
		t.Errorf("pinned-name mismatch: %d %v, want 401", st, err)
	}
	right := bspCA.client(t, "webhooks.meta.example")
	if st, err := send(&right); err != nil || st != 200 {
		t.Fatalf("right certificate: %d %v", st, err)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(be.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(be.got()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
	if !strings.Contains(logs.String(), `"reason":"client_name"`) {
		t.Error("client_name rejection not logged")
	}
	if !strings.Contains(logs.String(), "not for production") && !strings.Contains(strings.ToLower(logs.String()), "self-signed") {
		t.Error("self-signed listener not announced in the log")
	}
}

// TestBackendTrustStore: an HTTPS backend with a private CA is reached when
// the CA comes as a PKCS#12 trust store, and refused with the system roots.
func TestBackendTrustStore(t *testing.T) {
	caDER, leaf := privateCA(t)
	ca, _ := x509.ParseCertificate(caDER)
	got := make(chan []byte, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	p12, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{ca}, "changeit")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "internal-ca.p12"), p12, 0o600)
	cfg := fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "meta" {
  listener = "public"
  path     = "/hooks/meta"
  provider = "meta"
  auth "hmac" { secrets = ["%s"] }
  forward_to = ["pinned", "system"]
}
backend "pinned" {
  url                  = "%s/pinned"
  trust_store          = ["internal-ca.p12"]
  trust_store_password = "changeit"
}
backend "system" {
  url = "%s/system"
  retry {
    initial = "50ms"
    max     = "100ms"
  }
}
`, testSecret, srv.URL, srv.URL)
	s := startRelayIn(t, dir, cfg).s
	body := metaBody("wamid.trust", "4915100000011")
	if resp := post(t, "http://"+s.ListenerAddr("public")+"/hooks/meta", body, sign(testSecret, body)); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, body) {
			t.Fatal("body changed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pinned backend was not reached")
	}
	time.Sleep(400 * time.Millisecond) // several retries of the other
	select {
	case <-got:
		t.Fatal("a backend trusting only the system roots accepted a private CA")
	default:
	}
	if st := s.Queue().Stats()["system"]; st.Pending+st.InFlight != 1 {
		t.Errorf("the refused delivery must stay queued for retry: %+v", st)
	}
}
