package tls_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

// newACMEDomain returns a fresh name under edgerelay.test, which the
// test's DNS server resolves to 127.0.0.1 for Pebble's validation
// authority. Fresh per test run because certmagic keeps pending challenges
// in a process-wide map keyed by name: a challenge abandoned by a stopped
// Server must not answer for the next test.
func newACMEDomain(t *testing.T) string {
	t.Helper()
	return "hooks-" + strings.ToLower(rand.Text()[:12]) + ".edgerelay.test"
}

// pebbleCA is an in-process Pebble ACME server.
type pebbleCA struct {
	dirURL    string
	caRoots   string         // PEM file trusting the ACME endpoint's HTTPS
	issuing   *x509.CertPool // Pebble's root, from /roots/0
	newOrders atomic.Int64   // POSTs to the new-order endpoint
	db        *db.MemoryStore
	log       *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDNS answers every A query with 127.0.0.1 (and AAAA with nothing),
// over TCP as Pebble's custom resolver asks.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{Listener: ln, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// startPebble runs Pebble's CA, VA and WFE behind httptest TLS servers. The
// VA validates HTTP-01 on httpPort and TLS-ALPN-01 on tlsPort of
// 127.0.0.1; validity is the certificate lifetime in seconds (0: default).
func startPebble(t *testing.T, httpPort, tlsPort int, validity uint64) *pebbleCA {
	t.Helper()
	// What `PEBBLE_VA_NOSLEEP=1 pebble` does, plus no bad-nonce chaos and
	// no authorization reuse, so each order is validated for real.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")

	p := &pebbleCA{log: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.log.String())
		}
	})
	logger := log.New(p.log, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	p.db = store
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: validity},
	})
	validator := va.New(logger, httpPort, tlsPort, false, startDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	api := front.Handler()
	acmeSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.newOrders.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(acmeSrv.Close)
	mgmt := httptest.NewTLSServer(front.ManagementHandler())
	t.Cleanup(mgmt.Close)

	p.dirURL = acmeSrv.URL + wfe.DirectoryPath
	p.caRoots = writeFile(t, t.TempDir(), "pebble-endpoint.pem",
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: acmeSrv.Certificate().Raw}))

	resp, err := mgmt.Client().Get(mgmt.URL + wfe.RootCertPath + "0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rootPEM, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p.issuing = x509.NewCertPool()
	if !p.issuing.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %q", rootPEM)
	}
	return p
}

func listenLoopback(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// serveOn serves h over TLS with conf on an existing listener.
func serveOn(t *testing.T, ln net.Listener, conf *tls.Config, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, TLSConfig: conf, ReadHeaderTimeout: 5 * time.Second, ErrorLog: quietLog()}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
}

func servePlain(t *testing.T, ln net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: quietLog()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventLog records OnEvent calls from certmagic's goroutines.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (e *eventLog) on(kind, name string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, kind+" "+name)
}

func (e *eventLog) has(kind string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.events, func(s string) bool { return strings.HasPrefix(s, kind+" ") })
}

func (e *eventLog) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.events, ", ")
}

// testLogger collects the package's logs (certmagic's included) and
// prints them if the test fails. It never calls t.Log from certmagic's
// goroutines, which may outlive the test.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay tls log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestACMETLSALPN obtains a certificate from Pebble through TLS-ALPN-01
// answered by the listener itself, while the listener requires client
// certificates (the validation connection has none), then verifies the
// served chain against Pebble's root in a real handshake.
func TestACMETLSALPN(t *testing.T) {
	acmeDomain := newACMEDomain(t)
	dir := t.TempDir()
	tlsLn, tlsPort := listenLoopback(t)
	_, closedPort := listenLoopback(t) // HTTP-01 is off: nothing is served there
	pebble := startPebble(t, closedPort, tlsPort, 0)

	clientCA := newTestCA(t, "BSP client CA")
	events := &eventLog{}
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: dir,
		ACME: &relaytls.ACMEConfig{
			Domains:    []string{acmeDomain},
			Email:      "ops@edgerelay.test",
			CA:         pebble.dirURL,
			CARoots:    []string{pebble.caRoots},
			Challenges: []string{relaytls.ChallengeTLSALPN01},
		},
		ClientCAs: []string{writeFile(t, dir, "bsp.pem", clientCA.pem())},
		Logger:    testLogger(t),
		OnEvent:   events.on,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	conf := s.TLSConfig()
	if !slices.Contains(conf.NextProtos, "acme-tls/1") {
		t.Fatalf("NextProtos %v lacks acme-tls/1", conf.NextProtos)
	}
	serveOn(t, tlsLn, conf, okHandler())
	if s.Ready() {
		t.Fatal("ready before any certificate")
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the certificate", s.Ready)
	if !events.has(relaytls.EventObtained) {
		t.Errorf("events %s lack %s", events, relaytls.EventObtained)
	}

	client, _, _ := clientCA.issue(t, "meta", []string{"meta.example"}, x509.ExtKeyUsageClientAuth)
	leaf, err := handshake(tlsLn.Addr().String(), &tls.Config{
		RootCAs:      pebble.issuing,
		ServerName:   acmeDomain,
		Certificates: []tls.Certificate{client},
	})
	if err != nil {
		t.Fatalf("handshake verifying against Pebble's root: %v", err)
	}
	if !slices.Equal(leaf.DNSNames, []string{acmeDomain}) {
		t.Fatalf("served names %v", leaf.DNSNames)
	}
	infos := s.Certificates()
	if len(infos) != 1 || infos[0].Source != relaytls.SourceACME || infos[0].Serial != leaf.SerialNumber.Text(16) ||
		!strings.Contains(infos[0].Issuer, "Pebble") {
		t.Fatalf("Certificates() = %+v", infos)
	}
	// mTLS still holds for ordinary clients.
	if _, err := handshake(tlsLn.Addr().String(), &tls.Config{RootCAs: pebble.issuing, ServerName: acmeDomain}); err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
}

// TestACMEHTTP01 obtains a certificate through HTTP-01 answered by
// HTTPChallengeHandler on the relay's own plain listener.
func TestACMEHTTP01(t *testing.T) {
	acmeDomain := newACMEDomain(t)
	dir := t.TempDir()
	tlsLn, tlsPort := listenLoopback(t)
	httpLn, httpPort := listenLoopback(t)
	pebble := startPebble(t, httpPort, tlsPort, 0)

	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: dir,
		ACME: &relaytls.ACMEConfig{
			Domains:           []string{acmeDomain},
			CA:                pebble.dirURL,
			CARoots:           []string{pebble.caRoots},
			Challenges:        []string{relaytls.ChallengeHTTP01},
			HTTPChallengeAddr: httpLn.Addr().String(),
		},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	serveOn(t, tlsLn, s.TLSConfig(), okHandler())
	servePlain(t, httpLn, s.HTTPChallengeHandler(okHandler()))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the certificate", s.Ready)

	if _, err := handshake(tlsLn.Addr().String(), &tls.Config{RootCAs: pebble.issuing, ServerName: acmeDomain}); err != nil {
		t.Fatalf("handshake verifying against Pebble's root: %v", err)
	}
	// Other requests pass through the challenge handler.
	resp, err := http.Get("http://" + httpLn.Addr().String() + "/hooks/meta")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("non-challenge request got %q", body)
	}
	s.Stop()
	s.Stop() // idempotent
	if err := s.Start(t.Context()); !errors.Is(err, relaytls.ErrStopped) {
		t.Fatalf("Start after Stop: %v", err)
	}
}

// TestACMEObtainFailure has the CA refuse the name: the failure reaches
// OnEvent and the listener does not become ready.
func TestACMEObtainFailure(t *testing.T) {
	acmeDomain := newACMEDomain(t)
	tlsLn, tlsPort := listenLoopback(t)
	_, closedPort := listenLoopback(t)
	pebble := startPebble(t, closedPort, tlsPort, 0)
	if err := pebble.db.AddBlockedDomain(acmeDomain); err != nil {
		t.Fatal(err)
	}
	events := &eventLog{}
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: t.TempDir(),
		ACME: &relaytls.ACMEConfig{
			Domains:    []string{acmeDomain},
			CA:         pebble.dirURL,
			CARoots:    []string{pebble.caRoots},
			Challenges: []string{relaytls.ChallengeTLSALPN01},
		},
		Logger:  testLogger(t),
		OnEvent: events.on,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	serveOn(t, tlsLn, s.TLSConfig(), okHandler())
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the obtain failure event", func() bool { return events.has(relaytls.EventObtainFailed) })
	if s.Ready() || len(s.Certificates()) != 0 {
		t.Fatalf("ready %v with certificates %+v after a refused order", s.Ready(), s.Certificates())
	}
	if !strings.Contains(events.String(), acmeDomain) {
		t.Fatalf("events %s do not name %s", events, acmeDomain)
	}
}

// TestACMERenewal serves short-lived certificates and waits, without any
// restart, for the served serial to change.
func TestACMERenewal(t *testing.T) {
	acmeDomain := newACMEDomain(t)
	dir := t.TempDir()
	tlsLn, tlsPort := listenLoopback(t)
	_, closedPort := listenLoopback(t)
	pebble := startPebble(t, closedPort, tlsPort, 30)

	events := &eventLog{}
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: dir,
		ACME: &relaytls.ACMEConfig{
			Domains:    []string{acmeDomain},
			CA:         pebble.dirURL,
			CARoots:    []string{pebble.caRoots},
			Challenges: []string{relaytls.ChallengeTLSALPN01},
			// Renew once 10% of the 30 s lifetime is used; check twice a second.
			RenewalWindowRatio: 0.9,
			RenewCheckInterval: 500 * time.Millisecond,
		},
		Logger:  testLogger(t),
		OnEvent: events.on,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	serveOn(t, tlsLn, s.TLSConfig(), okHandler())
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first certificate", s.Ready)

	served := func() string {
		leaf, err := handshake(tlsLn.Addr().String(), &tls.Config{RootCAs: pebble.issuing, ServerName: acmeDomain})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return leaf.SerialNumber.Text(16)
	}
	first := served()
	info := s.Certificates()[0]
	if lifetime := info.NotAfter.Sub(info.NotBefore); lifetime > time.Minute {
		t.Fatalf("certificate lifetime %s: Pebble's validity setting not applied", lifetime)
	}
	waitFor(t, 30*time.Second, "a renewed certificate to be served", func() bool { return served() != first })
	// certmagic's default window (a third of the lifetime left) would renew
	// 20 s in; the configured ratio renews after 3 s.
	if in := time.Since(info.NotBefore); in > 15*time.Second {
		t.Errorf("renewed %s into a 30 s lifetime: RenewalWindowRatio not applied", in.Round(time.Second))
	}
	waitFor(t, 5*time.Second, "the renewed event", func() bool { return events.has(relaytls.EventRenewed) })
	if got := s.Certificates()[0].Serial; got == first {
		t.Fatalf("Certificates() still reports serial %s", got)
	}
}

// TestACMESharedStorage runs two Servers on one data directory: between
// them they place exactly one order, and both serve the certificate.
func TestACMESharedStorage(t *testing.T) {
	acmeDomain := newACMEDomain(t)
	dir := t.TempDir()
	lnA, portA := listenLoopback(t)
	lnB, _ := listenLoopback(t)
	_, closedPort := listenLoopback(t)
	// Pebble validates on A's port; B's instance may be the one that
	// places the order: A answers from the shared storage.
	pebble := startPebble(t, closedPort, portA, 0)

	var servers []*relaytls.Server
	for i, ln := range []net.Listener{lnA, lnB} {
		s, err := relaytls.NewServer(relaytls.ServerConfig{
			Listener:   "public",
			Address:    ln.Addr().String(),
			StorageDir: dir,
			ACME: &relaytls.ACMEConfig{
				Domains:    []string{acmeDomain},
				CA:         pebble.dirURL,
				CARoots:    []string{pebble.caRoots},
				Challenges: []string{relaytls.ChallengeTLSALPN01},
			},
			Logger: testLogger(t).With("instance", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		serveOn(t, ln, s.TLSConfig(), okHandler())
		servers = append(servers, s)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, s := range servers {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 40*time.Second, "both instances to have the certificate", func() bool {
		return servers[0].Ready() && servers[1].Ready()
	})
	if n := pebble.newOrders.Load(); n != 1 {
		t.Fatalf("%d orders placed at the CA, want exactly 1", n)
	}
	a, b := servers[0].Certificates()[0].Serial, servers[1].Certificates()[0].Serial
	if a != b {
		t.Fatalf("instances serve different certificates: %s and %s", a, b)
	}
	for _, ln := range []net.Listener{lnA, lnB} {
		if _, err := handshake(ln.Addr().String(), &tls.Config{RootCAs: pebble.issuing, ServerName: acmeDomain}); err != nil {
			t.Fatalf("handshake with %s: %v", ln.Addr(), err)
		}
	}
}
