package tls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

func TestLoadClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "client CA")
	pair, certPEM, keyPEM := ca.issue(t, "relay", []string{"relay.internal"}, x509.ExtKeyUsageClientAuth)
	_, _, otherKeyPEM := ca.issue(t, "other", []string{"other"}, x509.ExtKeyUsageClientAuth)
	certFile := writeFile(t, dir, "relay.pem", certPEM)
	keyFile := writeFile(t, dir, "relay.key", keyPEM)
	otherKey := writeFile(t, dir, "other.key", otherKeyPEM)

	p12, err := pkcs12.Modern.Encode(pair.PrivateKey, pair.Leaf, []*x509.Certificate{ca.cert}, storePassword)
	if err != nil {
		t.Fatal(err)
	}
	p12File := writeFile(t, dir, "relay.p12", p12)

	t.Run("pem pair", func(t *testing.T) {
		c, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{CertFile: certFile, KeyFile: keyFile})
		if err != nil {
			t.Fatal(err)
		}
		if c.Leaf == nil || c.Leaf.Subject.CommonName != "relay" {
			t.Fatalf("leaf %v", c.Leaf)
		}
	})
	t.Run("pkcs12", func(t *testing.T) {
		c, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{P12File: p12File, Password: storePassword})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Certificate) != 2 || c.Leaf.Subject.CommonName != "relay" {
			t.Fatalf("want leaf and CA in the chain, got %d certificates", len(c.Certificate))
		}
	})
	t.Run("pkcs12 wrong password", func(t *testing.T) {
		_, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{P12File: p12File, Password: "nope"})
		if !errors.Is(err, relaytls.ErrWrongPassword) || !strings.Contains(err.Error(), p12File) {
			t.Fatalf("want ErrWrongPassword naming the file, got %v", err)
		}
	})
	t.Run("key of another certificate", func(t *testing.T) {
		_, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{CertFile: certFile, KeyFile: otherKey})
		if !errors.Is(err, relaytls.ErrKeyMismatch) {
			t.Fatalf("want ErrKeyMismatch, got %v", err)
		}
	})
	t.Run("incomplete or ambiguous", func(t *testing.T) {
		for _, c := range []relaytls.ClientCertConfig{
			{CertFile: certFile},
			{KeyFile: keyFile},
			{CertFile: certFile, KeyFile: keyFile, P12File: p12File},
			{},
		} {
			if _, err := relaytls.LoadClientCert(c); err == nil {
				t.Errorf("%+v loaded", c)
			}
		}
	})
	t.Run("trust store file is not a client certificate", func(t *testing.T) {
		_, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{P12File: mustAbs(t, "testdata/keytool-trust.jks"), Password: storePassword})
		if err == nil || !strings.Contains(err.Error(), "JKS") {
			t.Fatalf("want an error naming the JKS content, got %v", err)
		}
	})
}

// TestMutualTLS runs a listener requiring client certificates from one CA
// and calls it without a certificate, with one from another CA, and with
// the right one (PEM pair and PKCS#12, through ClientTLS).
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA := newTestCA(t, "server CA")
	clientCA := newTestCA(t, "BSP client CA")
	rogueCA := newTestCA(t, "rogue CA")

	_, srvCertPEM, srvKeyPEM := serverCA.issue(t, "hooks", []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	srv, err := relaytls.NewServer(relaytls.ServerConfig{
		Listener:  "public",
		CertFile:  writeFile(t, dir, "srv.pem", srvCertPEM),
		KeyFile:   writeFile(t, dir, "srv.key", srvKeyPEM),
		ClientCAs: []string{writeFile(t, dir, "bsp-root.pem", clientCA.pem())},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	pinned := []string{"hooks.meta.example"}
	addr := serveTLS(t, srv.TLSConfig(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !relaytls.MatchClientName(r.TLS.PeerCertificates[0], pinned) {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	url := "https://" + addr + "/"

	roots, err := relaytls.LoadTrustStore([]string{writeFile(t, dir, "server-ca.pem", serverCA.pem())}, "", false)
	if err != nil {
		t.Fatal(err)
	}

	good, goodPEM, goodKey := clientCA.issue(t, "hooks.meta.example", []string{"hooks.meta.example"}, x509.ExtKeyUsageClientAuth)
	wrongName, _, _ := clientCA.issue(t, "someone.else", []string{"someone.else"}, x509.ExtKeyUsageClientAuth)
	rogue, _, _ := rogueCA.issue(t, "hooks.meta.example", []string{"hooks.meta.example"}, x509.ExtKeyUsageClientAuth)

	status := func(t *testing.T, cert *tls.Certificate) (int, error) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: relaytls.ClientTLS(roots, cert), DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	if _, err := status(t, nil); err == nil {
		t.Fatal("no client certificate: request succeeded")
	}
	if _, err := status(t, &rogue); err == nil {
		t.Fatal("client certificate from another CA: request succeeded")
	}
	if code, err := status(t, &good); err != nil || code != http.StatusOK {
		t.Fatalf("right client certificate: status %d, err %v", code, err)
	}
	if code, err := status(t, &wrongName); err != nil || code != http.StatusForbidden {
		t.Fatalf("right CA, unpinned name: status %d, err %v; want 403 from the pin", code, err)
	}

	// The same certificate loaded through LoadClientCert, both forms.
	fromPEM, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{
		CertFile: writeFile(t, dir, "c.pem", goodPEM), KeyFile: writeFile(t, dir, "c.key", goodKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	p12, err := pkcs12.Modern.Encode(good.PrivateKey, good.Leaf, nil, storePassword)
	if err != nil {
		t.Fatal(err)
	}
	fromP12, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{P12File: writeFile(t, dir, "c.p12", p12), Password: storePassword})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*tls.Certificate{"pem": &fromPEM, "p12": &fromP12} {
		if code, err := status(t, c); err != nil || code != http.StatusOK {
			t.Fatalf("%s client certificate: status %d, err %v", name, code, err)
		}
	}

	// A raw handshake without a certificate fails at the TLS layer.
	if _, err := handshake(addr, &tls.Config{RootCAs: roots.Pool}); err == nil {
		t.Fatal("handshake without a client certificate succeeded")
	}
}

func TestMatchClientName(t *testing.T) {
	ca := newTestCA(t, "CA")
	pair, _, _ := ca.issue(t, "Infobip Webhooks", []string{"hooks.infobip.example"}, x509.ExtKeyUsageClientAuth)
	c := pair.Leaf
	c.EmailAddresses = []string{"ops@bsp.example"}
	spiffe, err := url.Parse("spiffe://bsp.example/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	c.URIs = []*url.URL{spiffe}

	for _, tc := range []struct {
		names []string
		want  bool
	}{
		{[]string{"infobip webhooks"}, true},
		{[]string{"HOOKS.infobip.example"}, true},
		{[]string{"nope", "ops@bsp.example"}, true},
		{[]string{"other.example"}, false},
		{[]string{""}, false},
		{nil, false},
		{[]string{"infobip.example"}, false},
		{[]string{"spiffe://bsp.example/webhooks"}, true},
		{[]string{"spiffe://bsp.example/other"}, false},
	} {
		if got := relaytls.MatchClientName(c, tc.names); got != tc.want {
			t.Errorf("MatchClientName(%v) = %v, want %v", tc.names, got, tc.want)
		}
	}
	if relaytls.MatchClientName(nil, []string{"x"}) {
		t.Error("nil certificate matched")
	}
}
