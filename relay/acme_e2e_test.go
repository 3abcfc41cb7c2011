package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/pebbletest"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// TestACMETLSALPNThroughRelay runs the relay on a configuration whose
// public listener gets its certificate from an ACME CA (Pebble) through
// TLS-ALPN-01 answered by the listener itself, then takes a signed Meta
// callback over HTTPS verified against the CA's root.
func TestACMETLSALPNThroughRelay(t *testing.T) {
	runACMEThroughRelay(t, relaytls.ChallengeTLSALPN01)
}

// TestACMEHTTP01ThroughRelay does the same through HTTP-01 answered by
// the relay's plain challenge listener (http_challenge_address).
func TestACMEHTTP01ThroughRelay(t *testing.T) {
	runACMEThroughRelay(t, relaytls.ChallengeHTTP01)
}

func runACMEThroughRelay(t *testing.T, challenge string) {
	domain := pebbletest.FreshDomain()
	// The CA must know the validation ports before the relay binds them.
	// Pebble validates only the configured challenge: the other port is
	// left at 0 (never served).
	tlsPort := pebbletest.FreePort(t)
	var alpnPort, httpPort int
	switch challenge {
	case relaytls.ChallengeTLSALPN01:
		alpnPort = tlsPort
	case relaytls.ChallengeHTTP01:
		httpPort = pebbletest.FreePort(t)
	}
	listenAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))

	// The first order is held until the test has seen the relay without
	// a certificate.
	gate := make(chan struct{})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gate) }) }
	pebble := pebbletest.Start(t, pebbletest.Options{
		HTTPPort: httpPort,
		TLSPort:  alpnPort,
		OnOrder: func() {
			select {
			case <-gate:
			case <-time.After(15 * time.Second):
			}
		},
	})
	t.Cleanup(release) // before Pebble's servers close, which wait for the held request

	dir := t.TempDir()
	pebble.TrustedRootFile(t, dir) // pebble-endpoint.pem, named relative to the config file
	challengeAddr := ""
	if httpPort != 0 {
		challengeAddr = fmt.Sprintf("\n    http_challenge_address = \"127.0.0.1:%d\"", httpPort)
	}
	be := newRecorder(t)
	cfg := fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" {
  address = %q
  tls {
    acme {
      domains    = [%q]
      email      = "ops@edgerelay.test"
      ca         = %q
      ca_roots   = ["pebble-endpoint.pem"]
      challenges = [%q]
    }%s
  }
}
admin { address = "127.0.0.1:0" }
channel "meta" {
  listener   = "public"
  path       = "/hooks/meta"
  provider   = "meta"
  auth "hmac" { secrets = [%q] }
  forward_to = ["crm"]
}
backend "crm" {
  url     = %q
  timeout = "2s"
  retry {
    initial = "20ms"
    max     = "200ms"
  }
}
`, listenAddr, domain, pebble.DirectoryURL(), challenge, challengeAddr, testSecret, be.srv.URL+"/events")
	file := filepath.Join(dir, "relay.hcl")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, diags := LoadConfig(file)
	if diags.HasErrors() {
		t.Fatalf("config:\n%s", FormatDiagnostics(diags))
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay log:\n%s", logs.String())
		}
	})
	s, err := New(c, Options{LogOutput: logs, ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	admin := "http://" + s.AdminAddr()
	roots := pebble.IssuerPool()
	clientTLS := &tls.Config{RootCAs: roots, ServerName: domain}

	// Held at the CA: no certificate, not ready, nothing served for the name.
	waitFor(t, 10*time.Second, "the relay's order at the CA", func() bool { return pebble.Orders() >= 1 })
	status, body := adminGet(t, admin+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, `listener public has no certificate yet`) {
		t.Fatalf("readyz before the certificate: %d %s", status, body)
	}
	if _, err := tlsDial(listenAddr, clientTLS); err == nil {
		t.Fatal("a certificate for the name is served while the order is held")
	}
	if _, body := adminGet(t, admin+"/api/v1/certs"); strings.Contains(body, domain) {
		t.Fatalf("/api/v1/certs lists a certificate before issuance: %s", body)
	}

	release()
	released := time.Now()
	waitFor(t, 15*time.Second, "readyz to report ready", func() bool {
		status, _ := adminGet(t, admin+"/readyz")
		return status == http.StatusOK
	})
	t.Logf("%s: certificate issued %s after the order was released (%s after Start)",
		challenge, time.Since(released).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	if n := pebble.Orders(); n != 1 {
		t.Errorf("%d orders at the CA, want 1", n)
	}

	// Ready means served: the handshake verifies against Pebble's root.
	state, err := tlsDial(listenAddr, clientTLS)
	if err != nil {
		t.Fatalf("handshake after readyz said ready: %v", err)
	}
	leaf := state.PeerCertificates[0]
	if !slices.Equal(leaf.DNSNames, []string{domain}) {
		t.Fatalf("served names %v, want [%s]", leaf.DNSNames, domain)
	}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: roots, Intermediates: inter})
	if err != nil {
		t.Fatalf("served chain does not verify against Pebble's root: %v", err)
	}
	if root := chains[0][len(chains[0])-1]; !bytes.Equal(root.Raw, pemBlock(t, pebble.RootsPEM())) {
		t.Fatalf("chain ends at %s, not at Pebble's root", root.Subject)
	}

	// A signed Meta callback over HTTPS, as a BSP sends it to the name.
	tr := &http.Transport{
		TLSClientConfig: clientTLS,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, listenAddr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	cb := metaBody("wamid.acme-"+challenge, "4915112345678")
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("https://%s:%d/hooks/meta", domain, tlsPort), bytes.NewReader(cb))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", sign(testSecret, cb))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("callback over HTTPS: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("callback answered %d: %s", resp.StatusCode, answer)
	}
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("callback not over the verified ACME certificate: %+v", resp.TLS)
	}
	waitFor(t, 5*time.Second, "delivery to the backend", func() bool { return len(be.got()) == 1 })
	if got := be.got()[0].Body; !bytes.Equal(got, cb) {
		t.Fatalf("backend body differs:\n%s\n%s", got, cb)
	}

	// Operations see the certificate.
	_, metrics := adminGet(t, admin+"/metrics")
	expiry, ok := metricValue(metrics, fmt.Sprintf(`tls_certificate_expiry_seconds{listener="public",name=%q}`, domain))
	if !ok {
		t.Fatalf("no tls_certificate_expiry_seconds for %s in /metrics", domain)
	}
	if want := time.Until(leaf.NotAfter).Seconds(); expiry <= 0 || expiry > want+5 || expiry < want-60 {
		t.Errorf("tls_certificate_expiry_seconds = %v, certificate has %v s left", expiry, want)
	}
	if n, ok := metricValue(metrics, `tls_certificate_events_total{kind="obtained",listener="public"}`); !ok || n != 1 {
		t.Errorf("tls_certificate_events_total obtained = %v (present %v), want 1", n, ok)
	}
	_, certsBody := adminGet(t, admin+"/api/v1/certs")
	var certs struct {
		Certificates []relaytls.CertInfo `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(certsBody), &certs); err != nil {
		t.Fatalf("/api/v1/certs: %v: %s", err, certsBody)
	}
	if len(certs.Certificates) != 1 {
		t.Fatalf("/api/v1/certs lists %d certificates: %s", len(certs.Certificates), certsBody)
	}
	ci := certs.Certificates[0]
	if ci.Listener != "public" || ci.Source != relaytls.SourceACME || !slices.Equal(ci.Names, []string{domain}) ||
		!strings.Contains(ci.Issuer, "Pebble") || ci.Issuer != leaf.Issuer.CommonName || ci.Serial != leaf.SerialNumber.Text(16) {
		t.Fatalf("/api/v1/certs entry %+v does not describe the served certificate (issuer %q, serial %s)",
			ci, leaf.Issuer.CommonName, leaf.SerialNumber.Text(16))
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "certs")); err != nil {
		t.Errorf("certificate storage not under data_dir/certs: %v", err)
	}

	if challenge == relaytls.ChallengeHTTP01 {
		// The challenge listener sends everything else to HTTPS.
		noRedirect := &http.Client{
			Timeout:       5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		resp, err := noRedirect.Get(fmt.Sprintf("http://127.0.0.1:%d/hooks/meta?x=1", httpPort))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://127.0.0.1/hooks/meta?x=1" {
			t.Fatalf("plain request on the challenge listener: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// adminGet fetches url and returns the status and body.
func adminGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// tlsDial makes one handshake with addr.
func tlsDial(addr string, conf *tls.Config) (tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

// metricValue finds the sample named series (name and labels exactly as
// the Prometheus text format writes them) in a /metrics page.
func metricValue(page, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}

// pemBlock returns the content of the first PEM block of data.
func pemBlock(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("no PEM block in %q", data)
	}
	return b.Bytes
}
