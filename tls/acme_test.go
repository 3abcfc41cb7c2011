package tls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/pebbletest"
	relaytls "github.com/edgerelay/edgerelay/tls"
)

// lockedBuffer is a bytes.Buffer safe for certmagic's goroutines.
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
	acmeDomain := pebbletest.FreshDomain()
	dir := t.TempDir()
	tlsLn, tlsPort := listenLoopback(t)
	pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: tlsPort})
	caRoots := pebble.TrustedRootFile(t, t.TempDir())

	clientCA := newTestCA(t, "BSP client CA")
	events := &eventLog{}
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: dir,
		ACME: &relaytls.ACMEConfig{
			Domains:    []string{acmeDomain},
			Email:      "ops@edgerelay.test",
			CA:         pebble.DirectoryURL(),
			CARoots:    []string{caRoots},
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
		RootCAs:      pebble.IssuerPool(),
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
	if _, err := handshake(tlsLn.Addr().String(), &tls.Config{RootCAs: pebble.IssuerPool(), ServerName: acmeDomain}); err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
}

// TestACMEHTTP01 obtains a certificate through HTTP-01 answered by
// HTTPChallengeHandler on the relay's own plain listener.
func TestACMEHTTP01(t *testing.T) {
	acmeDomain := pebbletest.FreshDomain()
	dir := t.TempDir()
	tlsLn, tlsPort := listenLoopback(t)
	httpLn, httpPort := listenLoopback(t)
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	caRoots := pebble.TrustedRootFile(t, t.TempDir())

	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: dir,
		ACME: &relaytls.ACMEConfig{
			Domains:           []string{acmeDomain},
			CA:                pebble.DirectoryURL(),
			CARoots:           []string{caRoots},
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

	if _, err := handshake(tlsLn.Addr().String(), &tls.Config{RootCAs: pebble.IssuerPool(), ServerName: acmeDomain}); err != nil {
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
	acmeDomain := pebbletest.FreshDomain()
	tlsLn, tlsPort := listenLoopback(t)
	pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: tlsPort})
	caRoots := pebble.TrustedRootFile(t, t.TempDir())
	if err := pebble.BlockDomain(acmeDomain); err != nil {
		t.Fatal(err)
	}
	events := &eventLog{}
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: t.TempDir(),
		ACME: &relaytls.ACMEConfig{
			Domains:    []string{acmeDomain},
			CA:         pebble.DirectoryURL(),
			CARoots:    []string{caRoots},
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
	acmeDomain := pebbletest.FreshDomain()
	dir := t.TempDir()
	tlsLn, tlsPort := listenLoopback(t)
	pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: tlsPort, Validity: 30})
	caRoots := pebble.TrustedRootFile(t, t.TempDir())

	events := &eventLog{}
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:   "public",
		Address:    tlsLn.Addr().String(),
		StorageDir: dir,
		ACME: &relaytls.ACMEConfig{
			Domains:    []string{acmeDomain},
			CA:         pebble.DirectoryURL(),
			CARoots:    []string{caRoots},
			Challenges: []string{relaytls.ChallengeTLSALPN01},
			// Renew once 10% of the 30 s lifetime is used; check twice a second.
			RenewalWindowRatio: 0.9,
			RenewCheckInterval: 500 * time.Millisecond,
			// The window ratio is what this test is about. With ARI on,
			// Pebble chose an earlier time and then answered the renewal
			// order that named the replaced certificate with a 500 ("could
			// not find an order for the given certificate"), and certmagic's
			// next try came after the 30 s lifetime.
			DisableARI: true,
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
		leaf, err := handshake(tlsLn.Addr().String(), &tls.Config{RootCAs: pebble.IssuerPool(), ServerName: acmeDomain})
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
	acmeDomain := pebbletest.FreshDomain()
	dir := t.TempDir()
	lnA, portA := listenLoopback(t)
	lnB, _ := listenLoopback(t)
	// Pebble validates on A's port; B's instance may be the one that
	// places the order: A answers from the shared storage.
	pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: portA})
	caRoots := pebble.TrustedRootFile(t, t.TempDir())

	var servers []*relaytls.Server
	for i, ln := range []net.Listener{lnA, lnB} {
		s, err := relaytls.NewServer(relaytls.ServerConfig{
			Listener:   "public",
			Address:    ln.Addr().String(),
			StorageDir: dir,
			ACME: &relaytls.ACMEConfig{
				Domains:    []string{acmeDomain},
				CA:         pebble.DirectoryURL(),
				CARoots:    []string{caRoots},
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
	if n := pebble.Orders(); n != 1 {
		t.Fatalf("%d orders placed at the CA, want exactly 1", n)
	}
	a, b := servers[0].Certificates()[0].Serial, servers[1].Certificates()[0].Serial
	if a != b {
		t.Fatalf("instances serve different certificates: %s and %s", a, b)
	}
	for _, ln := range []net.Listener{lnA, lnB} {
		if _, err := handshake(ln.Addr().String(), &tls.Config{RootCAs: pebble.IssuerPool(), ServerName: acmeDomain}); err != nil {
			t.Fatalf("handshake with %s: %v", ln.Addr(), err)
		}
	}
}
