package tls_test

import (
	"encoding/binary"
	"encoding/pem"
	"os"
	"testing"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

// FuzzParseCertificates feeds the trust store content detector and parsers
// with garbage and mutations of real files: it must never panic, and a
// success must return certificates.
func FuzzParseCertificates(f *testing.F) {
	for _, p := range []string{
		"testdata/fixture-ca.pem",
		"testdata/keytool-trust.jks",
		"testdata/keytool-trust.p12",
		"testdata/openssl-nokeys.p12",
		"testdata/openssl-nokeys-legacy.p12",
	} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "changeit")
		f.Add(data[:len(data)/2], "changeit")
		f.Add(data, "")
	}
	ca, err := os.ReadFile("testdata/fixture-ca.pem")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pemBytesF(f, ca), "")
	// A JKS header announcing an entry of 4 GiB.
	huge := []byte{0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'X'}
	huge = binary.BigEndian.AppendUint32(huge, 0xFFFFFFFF)
	f.Add(huge, "changeit")
	// A private key entry announcing 2^32-1 chain certificates.
	manyCerts := []byte{0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	manyCerts = binary.BigEndian.AppendUint32(manyCerts, 0xFFFFFFFF)
	f.Add(manyCerts, "changeit")
	f.Add([]byte{0xCE, 0xCE, 0xCE, 0xCE}, "")
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x03}, "")              // a PFX that is only a version
	f.Add([]byte{0x30, 0x80, 0x30, 0x80, 0, 0, 0, 0}, "")        // BER indefinite lengths
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n\n-----END"), "") // truncated PEM
	f.Add([]byte("-----BEGIN TRUSTED CERTIFICATE-----\nMAA=\n-----END TRUSTED CERTIFICATE-----\n"), "")
	f.Add([]byte{}, "")

	f.Fuzz(func(t *testing.T, data []byte, password string) {
		format, certs, err := relaytls.ParseCertificates(data, password)
		if err == nil && len(certs) == 0 {
			t.Fatalf("format %s: no error and no certificates", format)
		}
		if got := relaytls.DetectFormat(data); got != format {
			t.Fatalf("ParseCertificates reported %s, DetectFormat %s", format, got)
		}
	})
}

// pemBytesF returns the DER of the first PEM block, as a .cer file holds it.
func pemBytesF(f *testing.F, data []byte) []byte {
	f.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		f.Fatal("no PEM block in fixture")
	}
	return b.Bytes
}
