package tls_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

const storePassword = "changeit"

// writeJKS writes a JKS keystore with the given trusted certificates and,
// when leafKeyDER is set, a private key entry with chain.
func writeJKS(t *testing.T, path string, trusted []*x509.Certificate, leafKeyDER []byte, chain []*x509.Certificate) {
	t.Helper()
	ks := keystore.New()
	for i, c := range trusted {
		err := ks.SetTrustedCertificateEntry("trusted"+string(rune('a'+i)), keystore.TrustedCertificateEntry{
			CreationTime: time.Now(),
			Certificate:  keystore.Certificate{Type: "X509", Content: c.Raw},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if leafKeyDER != nil {
		entry := keystore.PrivateKeyEntry{CreationTime: time.Now(), PrivateKey: leafKeyDER}
		for _, c := range chain {
			entry.CertificateChain = append(entry.CertificateChain, keystore.Certificate{Type: "X509", Content: c.Raw})
		}
		if err := ks.SetPrivateKeyEntry("relay", entry, []byte(storePassword)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := ks.Store(f, []byte(storePassword)); err != nil {
		t.Fatal(err)
	}
}

// opensslNoKeys runs `openssl pkcs12 -export -nokeys` on caPEM, the way an
// operator exports a CA for a trust store; legacy selects OpenSSL 1.x's
// algorithms. It returns "" when openssl is not installed (the checked-in
// fixtures made by the same command still cover the format).
func opensslNoKeys(t *testing.T, dir, caPEMPath string, legacy bool) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Logf("openssl not installed: fresh openssl exports not tested (fixtures still are)")
		return ""
	}
	out := filepath.Join(dir, "openssl.p12")
	args := []string{"pkcs12", "-export", "-nokeys", "-in", caPEMPath, "-out", out, "-passout", "pass:" + storePassword}
	if legacy {
		out = filepath.Join(dir, "openssl-legacy.p12")
		args[6] = out
		args = append(args, "-legacy")
	}
	if msg, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		if legacy && bytes.Contains(msg, []byte("legacy")) {
			t.Logf("openssl without the legacy provider: %s", msg)
			return ""
		}
		t.Fatalf("openssl %v: %v\n%s", args, err, msg)
	}
	return out
}

func TestTrustStoreFormatsReachServer(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "relay test CA")
	other := newTestCA(t, "unrelated CA")
	serverCert, _, _ := ca.issue(t, "backend", []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	url := startHTTPS(t, serverCert)

	fixture := loadFixtureCA(t)
	fixtureServer, _, _ := fixture.issue(t, "backend", []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	fixtureURL := startHTTPS(t, fixtureServer)

	caPEM := writeFile(t, dir, "ca.pem", ca.pem())
	bundle := writeFile(t, dir, "bundle.pem", append(append([]byte("# corporate bundle\n"), other.pem()...), ca.pem()...))
	der := writeFile(t, dir, "ca.der", ca.cert.Raw)
	derNamedPEM := writeFile(t, dir, "really-der.pem", ca.cert.Raw)

	javaP12, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{ca.cert}, storePassword)
	if err != nil {
		t.Fatal(err)
	}
	javaP12Path := writeFile(t, dir, "java.p12", javaP12)

	jksPath := filepath.Join(dir, "trust.jks")
	writeJKS(t, jksPath, []*x509.Certificate{other.cert, ca.cert}, nil, nil)

	// A keystore holding only the relay's own key entry, whose chain ends
	// at the CA: its chain is trusted.
	relayPair, leafPEM, keyPEM := ca.issue(t, "relay", []string{"relay.internal"}, x509.ExtKeyUsageClientAuth)
	leafCert, keyDER := parsePair(t, leafPEM, keyPEM)
	keyEntryJKS := filepath.Join(dir, "keyentry.jks")
	writeJKS(t, keyEntryJKS, nil, keyDER, []*x509.Certificate{leafCert, ca.cert})
	// The same as a PKCS#12 keystore (key, certificate and CA).
	keyP12, err := pkcs12.Modern.Encode(relayPair.PrivateKey, leafCert, []*x509.Certificate{ca.cert}, storePassword)
	if err != nil {
		t.Fatal(err)
	}
	keyEntryP12 := writeFile(t, dir, "keystore.p12", keyP12)

	cases := []struct {
		name   string
		file   string
		url    string
		format relaytls.Format
	}{
		{"pem", caPEM, url, relaytls.FormatPEM},
		{"pem bundle", bundle, url, relaytls.FormatPEM},
		{"der", der, url, relaytls.FormatDER},
		{"der named .pem", derNamedPEM, url, relaytls.FormatDER},
		{"pkcs12 java trusted", javaP12Path, url, relaytls.FormatPKCS12},
		{"jks trusted entries", jksPath, url, relaytls.FormatJKS},
		{"jks private key chain", keyEntryJKS, url, relaytls.FormatJKS},
		{"pkcs12 keystore chain", keyEntryP12, url, relaytls.FormatPKCS12},
		{"fixture pem", "testdata/fixture-ca.pem", fixtureURL, relaytls.FormatPEM},
		{"fixture keytool pkcs12", "testdata/keytool-trust.p12", fixtureURL, relaytls.FormatPKCS12},
		{"fixture keytool jks", "testdata/keytool-trust.jks", fixtureURL, relaytls.FormatJKS},
		{"fixture openssl -nokeys", "testdata/openssl-nokeys.p12", fixtureURL, relaytls.FormatPKCS12},
		{"fixture openssl -nokeys -legacy", "testdata/openssl-nokeys-legacy.p12", fixtureURL, relaytls.FormatPKCS12},
	}
	if p := opensslNoKeys(t, dir, caPEM, false); p != "" {
		cases = append(cases, struct {
			name   string
			file   string
			url    string
			format relaytls.Format
		}{"openssl -nokeys now", p, url, relaytls.FormatPKCS12})
	}
	if p := opensslNoKeys(t, dir, caPEM, true); p != "" {
		cases = append(cases, struct {
			name   string
			file   string
			url    string
			format relaytls.Format
		}{"openssl -nokeys -legacy now", p, url, relaytls.FormatPKCS12})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, err := filepath.Abs(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := relaytls.DetectFormat(data); got != tc.format {
				t.Errorf("DetectFormat = %s, want %s", got, tc.format)
			}
			ts, err := relaytls.LoadTrustStore([]string{path}, storePassword, false)
			if err != nil {
				t.Fatalf("LoadTrustStore: %v", err)
			}
			if len(ts.Certs) == 0 {
				t.Fatal("no certificates loaded")
			}
			if err := get(tc.url, relaytls.ClientTLS(ts, nil)); err != nil {
				t.Fatalf("request through the trust store: %v", err)
			}
		})
	}

	t.Run("system roots only refuse the private CA", func(t *testing.T) {
		ts, err := relaytls.LoadTrustStore(nil, "", true)
		if err != nil {
			t.Fatal(err)
		}
		err = get(url, relaytls.ClientTLS(ts, nil))
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("want an unknown authority error, got %v", err)
		}
		// A nil store means the system roots too.
		if err := get(url, relaytls.ClientTLS(nil, nil)); !errors.As(err, &unknown) {
			t.Fatalf("nil store: want an unknown authority error, got %v", err)
		}
	})

	t.Run("an unrelated store refuses", func(t *testing.T) {
		p := writeFile(t, dir, "other.pem", other.pem())
		ts, err := relaytls.LoadTrustStore([]string{p}, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := get(url, relaytls.ClientTLS(ts, nil)); err == nil {
			t.Fatal("a store without the CA reached the server")
		}
	})

	t.Run("files plus system roots", func(t *testing.T) {
		ts, err := relaytls.LoadTrustStore([]string{caPEM, jksPath}, storePassword, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ts.System || len(ts.Certs) != 3 {
			t.Fatalf("System=%v certs=%d, want true and 3", ts.System, len(ts.Certs))
		}
		if err := get(url, relaytls.ClientTLS(ts, nil)); err != nil {
			t.Fatal(err)
		}
	})
}

func parsePair(t *testing.T, certPEM, keyPEM []byte) (*x509.Certificate, []byte) {
	t.Helper()
	cert, err := x509.ParseCertificate(pemBytes(t, certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return cert, pemBytes(t, keyPEM)
}

func TestTrustStoreErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "relay test CA")
	jksPath := filepath.Join(dir, "trust.jks")
	writeJKS(t, jksPath, []*x509.Certificate{ca.cert}, nil, nil)
	javaP12, err := pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{ca.cert}, storePassword)
	if err != nil {
		t.Fatal(err)
	}
	javaP12Path := writeFile(t, dir, "java.p12", javaP12)
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	t.Run("wrong password", func(t *testing.T) {
		for _, tc := range []struct{ file, format string }{
			{jksPath, "JKS"},
			{javaP12Path, "PKCS#12"},
			{abs("testdata/keytool-trust.jks"), "JKS"},
			{abs("testdata/keytool-trust.p12"), "PKCS#12"},
			{abs("testdata/openssl-nokeys.p12"), "PKCS#12"},
			{abs("testdata/openssl-nokeys-legacy.p12"), "PKCS#12"},
		} {
			_, err := relaytls.LoadTrustStore([]string{tc.file}, "not-the-password", false)
			if !errors.Is(err, relaytls.ErrWrongPassword) {
				t.Errorf("%s: want ErrWrongPassword, got %v", tc.file, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, tc.file) || !strings.Contains(msg, tc.format) {
				t.Errorf("error %q does not name the file and the format %s", msg, tc.format)
			}
		}
	})

	t.Run("nothing trusted", func(t *testing.T) {
		if _, err := relaytls.LoadTrustStore(nil, "", false); !errors.Is(err, relaytls.ErrNothingTrusted) {
			t.Fatalf("want ErrNothingTrusted, got %v", err)
		}
	})

	t.Run("unknown content", func(t *testing.T) {
		p := writeFile(t, dir, "notes.pem", []byte("this is not a certificate\n"))
		_, err := relaytls.LoadTrustStore([]string{p}, "", false)
		if !errors.Is(err, relaytls.ErrUnknownFormat) || !strings.Contains(err.Error(), p) {
			t.Fatalf("want ErrUnknownFormat naming %s, got %v", p, err)
		}
	})

	t.Run("pem without certificates", func(t *testing.T) {
		_, _, keyPEM := ca.issue(t, "x", []string{"x"}, x509.ExtKeyUsageServerAuth)
		p := writeFile(t, dir, "key-only.pem", keyPEM)
		_, err := relaytls.LoadTrustStore([]string{p}, "", false)
		if !errors.Is(err, relaytls.ErrNoCertificates) {
			t.Fatalf("want ErrNoCertificates, got %v", err)
		}
	})

	t.Run("corrupt pem certificate", func(t *testing.T) {
		bad := bytes.Replace(ca.pem(), []byte("MII"), []byte("MIX"), 1)
		p := writeFile(t, dir, "corrupt.pem", bad)
		_, err := relaytls.LoadTrustStore([]string{p}, "", false)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "PEM") {
			t.Fatalf("want an error naming %s and PEM, got %v", p, err)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "absent.pem")
		_, err := relaytls.LoadTrustStore([]string{p}, "", false)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
			t.Fatalf("want a not-exist error naming the file, got %v", err)
		}
	})

	t.Run("jceks refused with advice", func(t *testing.T) {
		p := writeFile(t, dir, "store.jceks", []byte{0xCE, 0xCE, 0xCE, 0xCE, 0, 0, 0, 2, 0, 0, 0, 0})
		_, err := relaytls.LoadTrustStore([]string{p}, storePassword, false)
		if err == nil || !strings.Contains(err.Error(), "JCEKS") {
			t.Fatalf("want a JCEKS error, got %v", err)
		}
	})

	t.Run("truncated jks", func(t *testing.T) {
		data, err := os.ReadFile(jksPath)
		if err != nil {
			t.Fatal(err)
		}
		p := writeFile(t, dir, "truncated.jks", data[:len(data)/2])
		if _, err := relaytls.LoadTrustStore([]string{p}, storePassword, false); err == nil {
			t.Fatal("a truncated JKS loaded")
		}
	})
}

func TestInspectTrustStore(t *testing.T) {
	ts, err := relaytls.LoadTrustStore([]string{mustAbs(t, "testdata/fixture-ca.pem")}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	infos := relaytls.InspectTrustStore(ts)
	if len(infos) != 1 {
		t.Fatalf("got %d infos", len(infos))
	}
	in := infos[0]
	if in.Source != relaytls.SourceTrustStore || in.Issuer != "edgerelay fixture CA" || in.NotAfter.Before(time.Now()) {
		t.Fatalf("unexpected info %+v", in)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
