package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	// selfSignedValidity is the lifetime of a self-signed certificate.
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedRenewBefore: a persisted certificate closer than this to
	// its expiry is replaced at start.
	selfSignedRenewBefore = 30 * 24 * time.Hour
)

// defaultSelfSignedNames are "localhost" and the listen host, or the
// loopback addresses when the listener binds every interface.
func defaultSelfSignedNames(addr string) []string {
	names := []string{"localhost"}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		names = append(names, "127.0.0.1", "::1")
	case host != "localhost":
		names = append(names, host)
	}
	return names
}

// loadOrCreateSelfSigned returns the certificate persisted in dir for the
// listener when it still covers names and is not about to expire, else
// makes, persists and returns a new one.
func loadOrCreateSelfSigned(dir, listener string, names []string, log *slog.Logger) (*stdtls.Certificate, error) {
	base := fileSafe(listener)
	certPath := filepath.Join(dir, base+".crt")
	keyPath := filepath.Join(dir, base+".key")

	cert, err := loadKeyPair(certPath, keyPath)
	switch {
	case err == nil:
		if reason := selfSignedStale(cert.Leaf, names); reason != "" {
			log.Info("replacing self-signed certificate", "reason", reason, "path", certPath)
		} else {
			return cert, nil
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		log.Warn("unreadable self-signed certificate; making a new one", "path", certPath, "error", err)
	}

	certPEM, keyPEM, err := makeSelfSigned(names)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	log.Info("made self-signed certificate", "names", names, "path", certPath)
	return loadKeyPair(certPath, keyPath)
}

// selfSignedStale says why a persisted certificate must be replaced, or "".
func selfSignedStale(leaf *x509.Certificate, names []string) string {
	if time.Now().Add(selfSignedRenewBefore).After(leaf.NotAfter) {
		return "expires soon"
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return fmt.Sprintf("does not cover %q", n)
		}
	}
	return ""
}

// makeSelfSigned makes an ECDSA P-256 certificate for names.
func makeSelfSigned(names []string) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("no names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"edgerelay self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// fileSafe turns a listener name into a file name.
func fileSafe(name string) string {
	if name == "" {
		return "default"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}

// writeFileAtomic writes data to a temporary file in the same directory,
// syncs it and renames it over path, so a crash leaves the old or the new.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
