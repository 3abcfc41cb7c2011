package tls

import (
	"crypto"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// ErrKeyMismatch means a client certificate's private key does not belong
// to its certificate.
var ErrKeyMismatch = errors.New("private key does not match the certificate")

// ClientCertConfig names the certificate the relay presents to a backend or
// upstream that asks for one: either a PEM certificate (chain) and key pair,
// or a PKCS#12 file and its password. Paths are absolute.
type ClientCertConfig struct {
	// CertFile is a PEM file with the certificate, optionally followed by
	// its intermediates; used with KeyFile.
	CertFile string
	// KeyFile is the PEM private key (PKCS#1, PKCS#8 or SEC 1) of CertFile.
	KeyFile string
	// P12File is a PKCS#12 file holding one key and its certificate chain;
	// the alternative to CertFile and KeyFile.
	P12File string
	// Password opens P12File.
	Password string
}

// LoadClientCert loads a client certificate from a PEM pair or a PKCS#12
// file and checks that the key matches the certificate.
func LoadClientCert(c ClientCertConfig) (stdtls.Certificate, error) {
	pemSet := c.CertFile != "" || c.KeyFile != ""
	switch {
	case pemSet && c.P12File != "":
		return stdtls.Certificate{}, errors.New("client certificate: set cert_file and key_file, or p12_file, not both")
	case c.P12File != "":
		return loadP12ClientCert(c.P12File, c.Password)
	case c.CertFile == "" || c.KeyFile == "":
		return stdtls.Certificate{}, errors.New("client certificate: cert_file and key_file are both required (or p12_file)")
	}
	certPEM, err := readBounded(c.CertFile)
	if err != nil {
		return stdtls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	keyPEM, err := readBounded(c.KeyFile)
	if err != nil {
		return stdtls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	cert, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			err = ErrKeyMismatch
		}
		return stdtls.Certificate{}, fmt.Errorf("client certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
	}
	return cert, nil
}

func loadP12ClientCert(path, password string) (stdtls.Certificate, error) {
	data, err := readBounded(path)
	if err != nil {
		return stdtls.Certificate{}, fmt.Errorf("client certificate: %w", err)
	}
	if f := DetectFormat(data); f != FormatPKCS12 {
		return stdtls.Certificate{}, fmt.Errorf("client certificate %s: content is %s, not PKCS#12", path, f)
	}
	if err := checkPFXBounds(data); err != nil {
		return stdtls.Certificate{}, fmt.Errorf("client certificate %s (PKCS#12): %w", path, err)
	}
	key, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			err = ErrWrongPassword
		}
		return stdtls.Certificate{}, fmt.Errorf("client certificate %s (PKCS#12): %w", path, err)
	}
	if !keyMatches(key, leaf) {
		return stdtls.Certificate{}, fmt.Errorf("client certificate %s (PKCS#12): %w", path, ErrKeyMismatch)
	}
	out := stdtls.Certificate{PrivateKey: key, Leaf: leaf, Certificate: [][]byte{leaf.Raw}}
	for _, c := range chain {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out, nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(key any, cert *x509.Certificate) bool {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// ClientTLS builds the *tls.Config of an outbound connection (to a backend
// or an upstream BSP API): the trust store's pool verifies the server (a nil
// store means the system roots), cert, when not nil, is presented whenever
// the server asks for a client certificate, and TLS 1.2 is the minimum.
func ClientTLS(ts *TrustStore, cert *stdtls.Certificate) *stdtls.Config {
	cfg := &stdtls.Config{MinVersion: stdtls.VersionTLS12}
	if ts != nil {
		cfg.RootCAs = ts.Pool
	}
	if cert != nil {
		c := *cert
		// Present the certificate whatever CA names the server lists: a
		// server that lists its roots but not our intermediate would
		// otherwise get no certificate at all from crypto/tls.
		cfg.GetClientCertificate = func(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
			return &c, nil
		}
	}
	return cfg
}
