// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, inside
// the test process, for tests that obtain real certificates over ACME.
//
// Start wires Pebble's certificate authority, validation authority and web
// front end behind an httptest TLS server, with a small DNS server that
// resolves every name to 127.0.0.1, so that the validation authority
// connects to the test's own listeners for HTTP-01 and TLS-ALPN-01. Each
// order is validated for real: no authorization reuse, no validation
// sleeps, no bad-nonce chaos.
//
// Only tests import this package.
package pebbletest

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Zone is the DNS suffix of the names FreshDomain makes. The test DNS
// server resolves every name to 127.0.0.1, these included.
const Zone = "edgerelay.test"

// Options configures a CA.
type Options struct {
	// HTTPPort is the port of 127.0.0.1 where the validation authority
	// fetches HTTP-01 answers. 0 leaves HTTP-01 validation pointing at
	// a port nobody serves.
	HTTPPort int
	// TLSPort is the port of 127.0.0.1 where the validation authority
	// makes its TLS-ALPN-01 handshakes. 0 leaves TLS-ALPN-01 validation
	// pointing at a port nobody serves.
	TLSPort int
	// Validity is the lifetime of issued certificates in seconds; 0 is
	// Pebble's default.
	Validity uint64
	// OnOrder, when set, is called for each new-order request before
	// Pebble handles it, in that request's goroutine: blocking in it holds
	// the order back (a test can look at a client before it has a
	// certificate).
	OnOrder func()
}

// CA is a running in-process Pebble.
type CA struct {
	dirURL   string
	endpoint *x509.Certificate // the ACME endpoint's HTTPS certificate
	rootPEM  []byte            // the issuance root, from /roots/0
	issuers  *x509.CertPool
	orders   atomic.Int64
	db       *db.MemoryStore
	log      *lockedBuffer
}

// Start runs Pebble until the end of the test. Its validation authority
// checks HTTP-01 on 127.0.0.1:o.HTTPPort and TLS-ALPN-01 on
// 127.0.0.1:o.TLSPort. Start sets Pebble's environment with t.Setenv, so
// the test must not be parallel. Pebble's log is printed if the test
// fails.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	// What `PEBBLE_VA_NOSLEEP=1 pebble` does, plus no bad-nonce chaos and
	// no authorization reuse, so each order is validated for real.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	httpPort, tlsPort := o.HTTPPort, o.TLSPort
	if httpPort == 0 {
		httpPort = closedPort(t)
	}
	if tlsPort == 0 {
		tlsPort = closedPort(t)
	}

	c := &CA{log: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", c.log.String())
		}
	})
	logger := log.New(c.log, "pebble ", log.Lmicroseconds)
	store := db.NewMemoryStore()
	c.db = store
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "test", ValidityPeriod: o.Validity},
	})
	validator := va.New(logger, httpPort, tlsPort, false, startDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	api := front.Handler()
	acmeSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			c.orders.Add(1)
			if o.OnOrder != nil {
				o.OnOrder()
			}
		}
		api.ServeHTTP(w, r)
	}))
	acmeSrv.Config.ErrorLog = logger
	acmeSrv.StartTLS()
	t.Cleanup(acmeSrv.Close)
	mgmt := httptest.NewTLSServer(front.ManagementHandler())
	t.Cleanup(mgmt.Close)

	c.dirURL = acmeSrv.URL + wfe.DirectoryPath
	c.endpoint = acmeSrv.Certificate()

	resp, err := mgmt.Client().Get(mgmt.URL + wfe.RootCertPath + "0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	defer resp.Body.Close()
	c.rootPEM, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	c.issuers = x509.NewCertPool()
	if resp.StatusCode != http.StatusOK || !c.issuers.AppendCertsFromPEM(c.rootPEM) {
		t.Fatalf("pebble root: status %d: %q", resp.StatusCode, c.rootPEM)
	}
	return c
}

// DirectoryURL is the ACME directory (an https URL on 127.0.0.1).
func (c *CA) DirectoryURL() string { return c.dirURL }

// EndpointPEM is the ACME endpoint's HTTPS certificate, which an ACME
// client must trust (certmagic's TrustedRoots, the relay's ca_roots).
func (c *CA) EndpointPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.endpoint.Raw})
}

// TrustedRootFile writes EndpointPEM to dir/pebble-endpoint.pem and
// returns the file's path.
func (c *CA) TrustedRootFile(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "pebble-endpoint.pem")
	if err := os.WriteFile(p, c.EndpointPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// RootsPEM is the root that issued certificates chain to, as PEM.
func (c *CA) RootsPEM() []byte { return bytes.Clone(c.rootPEM) }

// IssuerPool holds the root that issued certificates chain to: the
// RootCAs of a client that verifies a served certificate.
func (c *CA) IssuerPool() *x509.CertPool { return c.issuers.Clone() }

// Orders counts the new-order requests received so far.
func (c *CA) Orders() int64 { return c.orders.Load() }

// BlockDomain makes the CA refuse orders for name.
func (c *CA) BlockDomain(name string) error {
	if err := c.db.AddBlockedDomain(name); err != nil {
		return fmt.Errorf("pebble: block %s: %w", name, err)
	}
	return nil
}

// Log returns what Pebble logged so far.
func (c *CA) Log() string { return c.log.String() }

// FreshDomain returns a new random name under Zone. Use one per test:
// certmagic keeps pending challenges in a process-wide map keyed by
// name, so a challenge abandoned by a stopped client must not answer for
// the next test.
func FreshDomain() string {
	return "hooks-" + strings.ToLower(rand.Text()[:12]) + "." + Zone
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago, for a
// listener that must be configured by port before it binds (an ACME
// challenge port the CA has to know in advance).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort returns a port of 127.0.0.1 held, and never served, until
// the end of the test.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// startDNS answers every A query with 127.0.0.1 (and AAAA with nothing),
// over TCP as Pebble's custom resolver asks.
func startDNS(t testing.TB) string {
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

// lockedBuffer is a bytes.Buffer safe for Pebble's goroutines.
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
