package tls

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pavlo-v-chernykh/keystore-go/v4"
)

// parseJKSCerts returns the trusted certificate entries of a JKS keystore
// and the certificate chains of its private key entries (the keys are not
// decrypted). The password checks the keystore's integrity digest.
func parseJKSCerts(data []byte, password string) ([]*x509.Certificate, error) {
	if err := walkJKS(data); err != nil {
		return nil, fmt.Errorf("malformed keystore: %w", err)
	}
	// Case-exact: Load keeps aliases as written, lookups must too.
	ks := keystore.New(keystore.WithCaseExactAliases())
	if err := ks.Load(bytes.NewReader(data), []byte(password)); err != nil {
		if strings.Contains(err.Error(), "invalid digest") {
			return nil, ErrWrongPassword
		}
		return nil, err
	}
	aliases := ks.Aliases()
	sort.Strings(aliases)
	var certs []*x509.Certificate
	add := func(alias string, c keystore.Certificate) error {
		if c.Type != "" && c.Type != "X509" && c.Type != "X.509" {
			return nil
		}
		parsed, err := x509.ParseCertificate(c.Content)
		if err != nil {
			return fmt.Errorf("entry %q: %w", alias, err)
		}
		certs = append(certs, parsed)
		return nil
	}
	for _, alias := range aliases {
		switch {
		case ks.IsTrustedCertificateEntry(alias):
			e, err := ks.GetTrustedCertificateEntry(alias)
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", alias, err)
			}
			if err := add(alias, e.Certificate); err != nil {
				return nil, err
			}
		case ks.IsPrivateKeyEntry(alias):
			chain, err := ks.GetPrivateKeyEntryCertificateChain(alias)
			if err != nil {
				return nil, fmt.Errorf("entry %q: %w", alias, err)
			}
			for _, c := range chain {
				if err := add(alias, c); err != nil {
					return nil, err
				}
			}
		}
	}
	return certs, nil
}

// walkJKS checks that every length in a JKS file fits in the file before
// the keystore library allocates buffers of those lengths: a crafted file
// must not make it allocate gigabytes.
func walkJKS(data []byte) error {
	r := jksReader{b: data}
	if m := r.u32(); m != 0xFEEDFEED {
		return errors.New("bad magic")
	}
	version := r.u32()
	if version != 1 && version != 2 {
		return fmt.Errorf("unknown version %d", version)
	}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		tag := r.u32()
		r.skip(uint64(r.u16())) // alias
		r.skip(8)               // creation time
		switch tag {
		case 1: // private key entry
			r.skip(uint64(r.u32()))
			certs := r.u32()
			for j := uint32(0); j < certs && r.err == nil; j++ {
				r.cert(version)
			}
		case 2: // trusted certificate entry
			r.cert(version)
		default:
			return fmt.Errorf("unknown entry tag %d", tag)
		}
	}
	r.skip(20) // SHA-1 digest
	return r.err
}

// jksReader reads big-endian fields, recording the first overrun.
type jksReader struct {
	b   []byte
	err error
}

func (r *jksReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("length beyond end of file")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *jksReader) skip(n uint64) { r.take(n) }

func (r *jksReader) u16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *jksReader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *jksReader) cert(version uint32) {
	if version == 2 {
		r.skip(uint64(r.u16())) // certificate type
	}
	r.skip(uint64(r.u32()))
}
