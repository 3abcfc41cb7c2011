package tls

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Errors callers may branch on. They are wrapped with the file and format
// concerned; test with errors.Is.
var (
	// ErrNothingTrusted means a trust store was asked for with no files and
	// without the system roots.
	ErrNothingTrusted = errors.New("trust store trusts nothing: no files and system roots off")
	// ErrWrongPassword means a PKCS#12 or JKS file could not be opened with
	// the password given (or its integrity check failed).
	ErrWrongPassword = errors.New("wrong password or corrupted keystore")
	// ErrUnknownFormat means a file's content is none of PEM, DER, PKCS#12
	// or JKS.
	ErrUnknownFormat = errors.New("unrecognised certificate format")
	// ErrNoCertificates means a file in a known format held no certificate.
	ErrNoCertificates = errors.New("no certificates found")
)

// Format names a trust store file format, as detected from its content.
type Format string

// The formats LoadTrustStore understands.
const (
	FormatPEM     Format = "PEM"
	FormatDER     Format = "DER"
	FormatPKCS12  Format = "PKCS#12"
	FormatJKS     Format = "JKS"
	FormatJCEKS   Format = "JCEKS"
	FormatUnknown Format = "unknown"
)

// maxStoreSize bounds the size of a trust store or certificate file; real
// ones are kilobytes, a few hundred kilobytes for a full CA bundle.
const maxStoreSize = 32 << 20

// TrustStore is a set of trusted certificates: the pool that verifies peers
// and the certificates it was built from.
type TrustStore struct {
	// Pool verifies peer certificates: the loaded certificates, plus the
	// system roots when asked for.
	Pool *x509.CertPool
	// Certs are the certificates loaded from the files, in file order
	// (without the system roots), for validation and expiry reporting.
	Certs []*x509.Certificate
	// System reports whether the system roots are part of Pool.
	System bool
}

// LoadTrustStore reads the given files (absolute paths) into one trust store.
// Each file's format is detected from its content, whatever its extension:
// a PEM bundle, a single DER certificate, a PKCS#12 trust store (made by
// keytool, with certificates marked trusted for Java, or by
// `openssl pkcs12 -export -nokeys`, without that mark) or a JKS keystore
// (trusted certificate entries and the chains of private key entries).
// password opens the PKCS#12 and JKS files among them. system adds the
// system roots. No files and system false is ErrNothingTrusted. Errors
// name the file and the format tried.
func LoadTrustStore(files []string, password string, system bool) (*TrustStore, error) {
	if len(files) == 0 && !system {
		return nil, ErrNothingTrusted
	}
	ts := &TrustStore{System: system}
	if system {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("load system roots: %w", err)
		}
		ts.Pool = pool
	} else {
		ts.Pool = x509.NewCertPool()
	}
	for _, f := range files {
		certs, err := loadCertFile(f, password)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			ts.Pool.AddCert(c)
		}
		ts.Certs = append(ts.Certs, certs...)
	}
	return ts, nil
}

// loadCertFile reads one trust store file and returns its certificates.
func loadCertFile(path, password string) ([]*x509.Certificate, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	format, certs, err := ParseCertificates(data, password)
	if err != nil {
		return nil, fmt.Errorf("trust store %s (%s): %w", path, format, err)
	}
	return certs, nil
}

// readBounded reads a file of at most maxStoreSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Size() > maxStoreSize {
		return nil, fmt.Errorf("read %s: file of %d bytes is larger than the %d bytes allowed", path, st.Size(), maxStoreSize)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return buf.Bytes(), nil
}

// DetectFormat tells a trust store file's format from its first bytes and
// structure, never from a file name.
func DetectFormat(data []byte) Format {
	switch {
	case len(data) >= 4 && data[0] == 0xFE && data[1] == 0xED && data[2] == 0xFE && data[3] == 0xED:
		return FormatJKS
	case len(data) >= 4 && data[0] == 0xCE && data[1] == 0xCE && data[2] == 0xCE && data[3] == 0xCE:
		return FormatJCEKS
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return FormatPEM
	}
	// A DER certificate and a PKCS#12 PFX are both a SEQUENCE; the first
	// element tells them apart: the PFX starts with its version INTEGER (3),
	// a certificate with its tbsCertificate SEQUENCE.
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(data, &outer); err != nil || outer.Class != asn1.ClassUniversal || outer.Tag != asn1.TagSequence || !outer.IsCompound {
		return FormatUnknown
	}
	var first asn1.RawValue
	if _, err := asn1.Unmarshal(outer.Bytes, &first); err != nil || first.Class != asn1.ClassUniversal {
		return FormatUnknown
	}
	switch {
	case first.Tag == asn1.TagInteger:
		return FormatPKCS12
	case first.Tag == asn1.TagSequence:
		return FormatDER
	}
	return FormatUnknown
}

// ParseCertificates detects the format of data and returns the certificates
// it holds; password opens PKCS#12 and JKS content. It never panics on
// malformed input.
func ParseCertificates(data []byte, password string) (Format, []*x509.Certificate, error) {
	format := DetectFormat(data)
	var (
		certs []*x509.Certificate
		err   error
	)
	switch format {
	case FormatPEM:
		certs, err = parsePEMCerts(data)
	case FormatDER:
		var c *x509.Certificate
		c, err = x509.ParseCertificate(data)
		if err == nil {
			certs = []*x509.Certificate{c}
		}
	case FormatPKCS12:
		certs, err = parsePKCS12Certs(data, password)
	case FormatJKS:
		certs, err = parseJKSCerts(data, password)
	case FormatJCEKS:
		err = errors.New("JCEKS keystores are not supported; convert with keytool -importkeystore -deststoretype pkcs12")
	default:
		err = fmt.Errorf("%w: expected PEM, DER, PKCS#12 or JKS", ErrUnknownFormat)
	}
	if err == nil && len(certs) == 0 {
		err = ErrNoCertificates
	}
	if errors.Is(err, ErrWrongPassword) && password == "" {
		err = fmt.Errorf("%w (no password given)", err)
	}
	if err != nil {
		return format, nil, err
	}
	return format, certs, nil
}

// parsePEMCerts reads every CERTIFICATE (and OpenSSL TRUSTED CERTIFICATE)
// block of a PEM bundle; other blocks, such as keys, are skipped.
func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		der := block.Bytes
		switch block.Type {
		case "CERTIFICATE":
		case "TRUSTED CERTIFICATE":
			// OpenSSL's trusted form appends its trust settings after the
			// certificate; keep only the certificate itself.
			var raw asn1.RawValue
			if _, err := asn1.Unmarshal(der, &raw); err != nil {
				return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
			}
			der = raw.FullBytes
		default:
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}
