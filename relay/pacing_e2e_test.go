package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func scrape(t *testing.T, tr *testRelay) string {
	t.Helper()
	res, err := http.Get("http://" + tr.s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(b)
}

// TestBackendRatePacesWithoutFailures: a backend's rate spreads attempts
// out; the excess waits in the queue, nothing fails, nothing is dropped.
func TestBackendRatePacesWithoutFailures(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
	}))
	t.Cleanup(be.Close)
	tr := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "bsp" {
  listener   = "public"
  path       = "/hooks/bsp"
  auth "none" {}
  forward_to = ["paced"]
}
backend "paced" {
  url         = %q
  rate        = "40/s"
  concurrency = 16
  breaker {
    failures = 1
  }
}
`, be.URL))
	const n = 30
	for i := range n {
		if res := post(t, tr.base+"/hooks/bsp", []byte(fmt.Sprintf(`{"n":%d}`, i)), ""); res.StatusCode != 200 {
			t.Fatal(res.StatusCode)
		}
	}
	waitFor(t, 10*time.Second, "all paced deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(at) == n
	})
	mu.Lock()
	times := append([]time.Time(nil), at...)
	mu.Unlock()
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	if span := times[n-1].Sub(times[0]); span < 600*time.Millisecond {
		t.Errorf("%d deliveries at 40/s took %s, want >= 600ms (29 intervals of 25ms)", n, span)
	}
	// Arrival times at the backend can bunch on a loaded machine; the
	// span above is the hard bound, this only catches no pacing at all.
	for i := range times {
		j := i
		for j < len(times) && times[j].Sub(times[i]) < 250*time.Millisecond {
			j++
		}
		if j-i > 20 {
			t.Fatalf("%d deliveries within 250ms at 40/s", j-i)
		}
	}
	m := scrape(t, tr)
	if strings.Contains(m, `edgerelay_delivery_attempts_total{backend="paced",result="failed"}`) ||
		strings.Contains(m, `edgerelay_dead_letters_total{backend="paced"`) {
		t.Errorf("pacing produced failures or dead letters")
	}
	if !strings.Contains(m, `edgerelay_delivery_attempts_total{backend="paced",result="delivered"} 30`) ||
		!strings.Contains(m, `edgerelay_backend_breaker_state{backend="paced"} 0`) {
		t.Errorf("metrics: %s", grepLines(m, "paced"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUpstreamRateAnswers429: callers above an upstream's rate get 429 with
// Retry-After, and the BSP never sees them.
func TestUpstreamRateAnswers429(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	bsp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(bsp.Close)
	tr := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
upstream "bsp" {
  listener    = "public"
  path        = "/out/bsp/"
  base_url    = %q
  allow_paths = ["/**"]
  rate        = "1/m"
}
`, bsp.URL))
	ok, limited := 0, 0
	for range 6 {
		res, err := http.Get(tr.base + "/out/bsp/v1/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		switch res.StatusCode {
		case 200:
			ok++
		case 429:
			limited++
			if ra, _ := strconv.Atoi(res.Header.Get("Retry-After")); ra < 30 || ra > 60 {
				t.Errorf("429 without Retry-After: %q", res.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if ok != 1 || limited != 5 || hits != 1 {
		t.Errorf("ok %d, limited %d, BSP hits %d", ok, limited, hits)
	}
}

// TestCredentialEndDates: expired inbound header values are refused, an
// expired injected bearer token is not sent (the attempt fails, retryable,
// naming it), and credentials and certificates that end soon show in the
// metrics while running.
func TestCredentialEndDates(t *testing.T) {
	dir := t.TempDir()
	plat := newPlatform(t, false)
	tlsPlat := newPlatform(t, true)
	os.WriteFile(filepath.Join(dir, "platform-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsPlat.srv.Certificate().Raw}), 0o600)
	writeClientCert(t, dir, "relay-client")
	soon := time.Now().UTC().AddDate(0, 0, 5).Format(time.DateOnly)
	tr := startRelayIn(t, dir, fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "hdr-expired" {
  listener = "public"
  path     = "/hooks/expired"
  auth "header" {
    name    = "X-Token"
    values  = ["karix-token-1"]
    expires = "2020-01-01"
  }
  forward_to = ["soon"]
}
channel "hdr-soon" {
  listener = "public"
  path     = "/hooks/soon"
  auth "header" {
    name    = "X-Token"
    values  = ["karix-token-2"]
    expires = %[2]q
  }
  forward_to = ["soon", "stale"]
}
backend "soon" {
  url = "%[1]s/soon/in"
  inject "header" {
    name    = "X-Api-Key"
    value   = "k"
    expires = %[2]q
  }
}
backend "stale" {
  url = "%[1]s/stale/in"
  retry {
    initial = "50ms"
    max     = "100ms"
  }
  inject "bearer" {
    token   = "stale-token"
    expires = "2021-06-30"
  }
}
backend "tls" {
  url         = "%[3]s/tls/in"
  trust_store = ["platform-ca.pem"]
  client_cert {
    cert_file = "client.pem"
    key_file  = "client.key"
  }
}
`, plat.srv.URL, soon, tlsPlat.srv.URL))
	send := func(path, tok string) int {
		req, _ := http.NewRequest(http.MethodPost, tr.base+path, strings.NewReader(`{"x":1}`))
		req.Header.Set("X-Token", tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := send("/hooks/expired", "karix-token-1"); st != 401 {
		t.Errorf("expired header value: %d, want 401", st)
	}
	if st := send("/hooks/soon", "karix-token-2"); st != 200 {
		t.Fatalf("header value expiring in 5 days: %d", st)
	}
	waitFor(t, 5*time.Second, "delivery with the header expiring soon", func() bool { return len(plat.received("soon")) == 1 })
	waitFor(t, 5*time.Second, "failed attempts of the expired bearer token", func() bool {
		return strings.Contains(scrape(t, tr), `edgerelay_delivery_attempts_total{backend="stale",result="failed"}`)
	})
	if got := plat.received("stale"); len(got) != 0 {
		t.Errorf("an expired bearer token was sent: %v", got)
	}
	logs := tr.logs.String()
	if !strings.Contains(logs, `expired_credential`) {
		t.Errorf("no expired_credential reason in the logs")
	}
	if !strings.Contains(logs, `inject \"bearer\" expired at 2021-06-30`) || !strings.Contains(logs, "will retry") {
		t.Errorf("the failed attempt does not name the expired credential: %s", grepLines(logs, "stale"))
	}
	if strings.Contains(logs, "stale-token") {
		t.Errorf("the token appears in the logs")
	}
	m := scrape(t, tr)
	for _, want := range []string{
		`edgerelay_auth_failures_total{channel="hdr-expired",reason="expired_credential"} 1`,
		`edgerelay_credential_expiry_seconds{credential="header X-Token",owner="channel hdr-soon"}`,
		`edgerelay_credential_expiry_seconds{credential="inject \"header\" X-Api-Key",owner="backend soon"}`,
		`edgerelay_credential_expiry_seconds{credential="inject \"bearer\"",owner="backend stale"}`,
		`edgerelay_trust_certificate_expiry_seconds{owner="backend tls",subject="example.com"}`,
		`edgerelay_trust_certificate_expiry_seconds{owner="backend tls",subject="relay-client"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `edgerelay_dead_letters_total{backend="stale"`) {
		t.Errorf("an expired credential made a dead letter; it must stay retryable")
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "credential expires soon") && strings.Contains(l, "hdr-soon") {
			return
		}
	}
	t.Errorf("no warning ahead for the header value expiring in 5 days")
}

func writeClientCert(t *testing.T, dir, cn string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	os.WriteFile(filepath.Join(dir, "client.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "client.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
}

// TestUpstreamExpiredBearerNotSent: an upstream's expired bearer token is
// not sent; the caller gets 502 credential_expired and the BSP sees nothing.
func TestUpstreamExpiredBearerNotSent(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	bsp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	t.Cleanup(bsp.Close)
	tr := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
upstream "bsp" {
  listener    = "public"
  path        = "/out/bsp/"
  base_url    = %q
  allow_paths = ["/**"]
  inject "bearer" {
    token   = "EAAG-expired-token"
    expires = "2022-02-02"
  }
}
`, bsp.URL))
	res, err := http.Get(tr.base + "/out/bsp/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 502 || !strings.Contains(string(b), "credential_expired") {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the BSP was called %d times", hits)
	}
	if strings.Contains(tr.logs.String(), "EAAG-expired-token") {
		t.Error("the token appears in the logs")
	}
	if !strings.Contains(scrape(t, tr), `edgerelay_credential_expiry_seconds{credential="inject \"bearer\"",owner="upstream bsp"}`) {
		t.Error("no expiry metric for the upstream's token")
	}
}
