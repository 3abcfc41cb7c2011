package tls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
}

func TestSelfSignedPersistedAndCoversNames(t *testing.T) {
	dir := t.TempDir()
	cfg := relaytls.ServerConfig{
		Listener:   "public",
		Address:    "127.0.0.1:8443",
		StorageDir: dir,
		SelfSigned: true,
		Names:      []string{"hooks.dev.test", "127.0.0.1"},
	}
	first, err := relaytls.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Stop)
	infos := first.Certificates()
	if len(infos) != 1 || infos[0].Source != relaytls.SourceSelfSigned || infos[0].Listener != "public" {
		t.Fatalf("Certificates() = %+v", infos)
	}
	if !slices.Equal(infos[0].Names, []string{"hooks.dev.test", "127.0.0.1"}) || !first.Ready() {
		t.Fatalf("names %v, ready %v", infos[0].Names, first.Ready())
	}
	st, err := os.Stat(filepath.Join(dir, "selfsigned", "public.key"))
	if err != nil {
		t.Fatalf("key not persisted under data_dir/selfsigned: %v", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Fatalf("private key readable by others: %v", st.Mode())
	}

	addr := serveTLS(t, first.TLSConfig(), okHandler())
	roots := x509.NewCertPool()
	leaf, err := handshake(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(leaf)
	for _, name := range []string{"hooks.dev.test", "127.0.0.1"} {
		if _, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: name}); err != nil {
			t.Errorf("verify as %s: %v", name, err)
		}
	}
	if _, err := handshake(addr, &tls.Config{RootCAs: roots, ServerName: "other.test"}); err == nil {
		t.Error("certificate verified for a name it should not cover")
	}

	second, err := relaytls.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Stop)
	if got := second.Certificates()[0].Serial; got != infos[0].Serial {
		t.Fatalf("restart on the same data_dir made a new certificate: serial %s, was %s", got, infos[0].Serial)
	}

	// Other names: a new certificate that covers them.
	cfg.Names = []string{"renamed.dev.test"}
	third, err := relaytls.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(third.Stop)
	if got := third.Certificates()[0]; got.Serial == infos[0].Serial || !slices.Equal(got.Names, []string{"renamed.dev.test"}) {
		t.Fatalf("names changed but certificate %+v kept", got)
	}
}

func TestSelfSignedDefaultNames(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"10.0.0.5:8443", []string{"localhost", "10.0.0.5"}},
		{"0.0.0.0:8443", []string{"localhost", "127.0.0.1", "::1"}},
		{":8443", []string{"localhost", "127.0.0.1", "::1"}},
		{"hooks.internal:443", []string{"localhost", "hooks.internal"}},
	} {
		s, err := relaytls.NewServer(relaytls.ServerConfig{Listener: "l", Address: tc.addr, StorageDir: t.TempDir(), SelfSigned: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Certificates()[0].Names; !slices.Equal(got, tc.want) {
			t.Errorf("%s: names %v, want %v", tc.addr, got, tc.want)
		}
		s.Stop()
	}
}

func TestStaticReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "static CA")
	_, cert1, key1 := ca.issue(t, "hooks v1", []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	certFile := writeFile(t, dir, "hooks.pem", cert1)
	keyFile := writeFile(t, dir, "hooks.key", key1)

	var events []string
	s, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener: "public", CertFile: certFile, KeyFile: keyFile,
		OnEvent: func(kind, name string, err error) { events = append(events, kind) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if s.Source() != relaytls.SourceStatic || !s.Ready() {
		t.Fatalf("source %s ready %v", s.Source(), s.Ready())
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start on a static listener: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	addr := serveTLS(t, s.TLSConfig(), okHandler())
	served := func() string {
		t.Helper()
		leaf, err := handshake(addr, &tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatal(err)
		}
		return leaf.Subject.CommonName
	}
	if got := served(); got != "hooks v1" {
		t.Fatalf("serving %q", got)
	}

	_, cert2, key2 := ca.issue(t, "hooks v2", []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	writeFile(t, dir, "hooks.pem", cert2)
	writeFile(t, dir, "hooks.key", key2)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "hooks v2" {
		t.Fatalf("after reload serving %q, want hooks v2", got)
	}
	if got := s.Certificates()[0].Subject; got != "CN=hooks v2" {
		t.Fatalf("Certificates() subject %q", got)
	}

	// A broken certificate file: the reload fails, v2 stays.
	writeFile(t, dir, "hooks.pem", []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	if err := s.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if got := served(); got != "hooks v2" {
		t.Fatalf("after a failed reload serving %q, want hooks v2", got)
	}
	// A key that belongs to another certificate: refused too.
	_, cert3, _ := ca.issue(t, "hooks v3", []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	writeFile(t, dir, "hooks.pem", cert3)
	if err := s.Reload(); !errors.Is(err, relaytls.ErrKeyMismatch) {
		t.Fatalf("want ErrKeyMismatch, got %v", err)
	}
	if got := served(); got != "hooks v2" {
		t.Fatalf("after a mismatched reload serving %q, want hooks v2", got)
	}
	want := []string{relaytls.EventReloaded, relaytls.EventReloadFailed, relaytls.EventReloadFailed}
	if !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
}

func TestServerTLSPolicy(t *testing.T) {
	dir := t.TempDir()
	s, err := relaytls.NewServer(relaytls.ServerConfig{Listener: "l", StorageDir: dir, SelfSigned: true, Names: []string{"127.0.0.1"}, MinVersion: "1.3"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	conf := s.TLSConfig()
	if conf.MinVersion != tls.VersionTLS13 || !slices.Equal(conf.NextProtos, []string{"h2", "http/1.1"}) {
		t.Fatalf("MinVersion %x NextProtos %v", conf.MinVersion, conf.NextProtos)
	}
	addr := serveTLS(t, conf, okHandler())
	if _, err := handshake(addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("TLS 1.2 client accepted by a 1.3-only listener")
	}
	if _, err := handshake(addr, &tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}

	s12, err := relaytls.NewServer(relaytls.ServerConfig{Listener: "l", StorageDir: dir, SelfSigned: true, Names: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s12.Stop)
	addr12 := serveTLS(t, s12.TLSConfig(), okHandler())
	// A legacy CBC suite is refused, an ECDHE AEAD one accepted.
	if _, err := handshake(addr12, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Fatal("CBC suite accepted")
	}
	if _, err := handshake(addr12, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}); err != nil {
		t.Fatalf("GCM suite refused: %v", err)
	}
}

func TestNewServerValidation(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]relaytls.ServerConfig{
		"no source":          {Listener: "l"},
		"two sources":        {Listener: "l", SelfSigned: true, StorageDir: dir, ACME: &relaytls.ACMEConfig{Domains: []string{"a.test"}}},
		"cert without key":   {Listener: "l", CertFile: "/x.pem"},
		"bad min version":    {Listener: "l", SelfSigned: true, StorageDir: dir, MinVersion: "1.1"},
		"self-signed no dir": {Listener: "l", SelfSigned: true},
		"acme no domains":    {Listener: "l", StorageDir: dir, ACME: &relaytls.ACMEConfig{}},
		"acme bad domain":    {Listener: "l", StorageDir: dir, ACME: &relaytls.ACMEConfig{Domains: []string{"https://a.test"}}},
		"acme bad challenge": {Listener: "l", StorageDir: dir, ACME: &relaytls.ACMEConfig{Domains: []string{"a.test"}, Challenges: []string{"dns-01"}}},
		"acme bad ratio":     {Listener: "l", StorageDir: dir, ACME: &relaytls.ACMEConfig{Domains: []string{"a.test"}, RenewalWindowRatio: 1}},
	} {
		if _, err := relaytls.NewServer(c); !errors.Is(err, relaytls.ErrInvalidConfig) {
			t.Errorf("%s: want ErrInvalidConfig, got %v", name, err)
		}
	}
	if _, err := relaytls.NewServer(relaytls.ServerConfig{Listener: "l", CertFile: filepath.Join(dir, "absent.pem"), KeyFile: filepath.Join(dir, "absent.key")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing static files: got %v", err)
	}
	if _, err := relaytls.NewServer(relaytls.ServerConfig{Listener: "l", SelfSigned: true, StorageDir: dir, ClientCAs: []string{filepath.Join(dir, "absent.pem")}}); err == nil {
		t.Error("missing client CA file accepted")
	}
}

func TestServerConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "CA")
	_, certPEM, keyPEM := ca.issue(t, "hooks", []string{"hooks.test"}, x509.ExtKeyUsageServerAuth)
	certFile := writeFile(t, dir, "hooks.pem", certPEM)
	keyFile := writeFile(t, dir, "hooks.key", keyPEM)
	caFile := writeFile(t, dir, "ca.pem", ca.pem())
	notCert := writeFile(t, dir, "notes.txt", []byte("hello"))

	data := filepath.Join(dir, "data")
	good := []relaytls.ServerConfig{
		{Listener: "static", CertFile: certFile, KeyFile: keyFile, ClientCAs: []string{caFile}},
		{Listener: "dev", SelfSigned: true, StorageDir: data, Names: []string{"localhost", "::1"}},
		{Listener: "acme", StorageDir: data, Address: ":8443", ACME: &relaytls.ACMEConfig{
			Domains: []string{"hooks.example.com"}, CARoots: []string{caFile}, HTTPChallengeAddr: ":80"}},
	}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.Listener, err)
		}
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Validate wrote into the data directory: %v", err)
	}
	bad := []relaytls.ServerConfig{
		{Listener: "static", CertFile: notCert, KeyFile: keyFile},
		{Listener: "static", CertFile: certFile, KeyFile: keyFile, ClientCAs: []string{notCert}},
		{Listener: "acme", StorageDir: data, ACME: &relaytls.ACMEConfig{Domains: []string{"a.example"}, CARoots: []string{notCert}}},
		{Listener: "acme", StorageDir: data, Address: "no-port", ACME: &relaytls.ACMEConfig{Domains: []string{"a.example"}}},
		{Listener: "dev", SelfSigned: true, StorageDir: data, Names: []string{"bad name"}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("bad config %d (%s) validated", i, c.Listener)
		}
	}
}
