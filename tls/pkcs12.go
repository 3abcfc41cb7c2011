package tls

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"unicode/utf16"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// maxMACIterations bounds the PKCS#12 MAC iteration count this package is
// willing to compute (keytool uses 10000, OpenSSL 2048): a crafted file must
// not cost minutes of CPU.
const maxMACIterations = 1 << 22

var (
	oidDataContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSHA1            = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA224          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// pfxPDU, contentInfo, macData and digestInfo mirror RFC 7292's ASN.1.
type pfxPDU struct {
	Version  int
	AuthSafe contentInfo
	MacData  macData `asn1:"optional"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type macData struct {
	Mac        digestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

// parsePKCS12Certs returns the certificates of a PKCS#12 file: a Java trust
// store (certificates marked trusted), a keystore with a private key (its
// certificate chain), or an OpenSSL `-nokeys` export (certificates without
// the Java mark).
func parsePKCS12Certs(data []byte, password string) ([]*x509.Certificate, error) {
	if err := checkPFXBounds(data); err != nil {
		return nil, err
	}
	certs, err := pkcs12.DecodeTrustStore(data, password)
	if err == nil {
		return certs, nil
	}
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		return nil, ErrWrongPassword
	}
	trustErr := err
	_, leaf, chain, err := pkcs12.DecodeChain(data, password)
	if err == nil {
		return append([]*x509.Certificate{leaf}, chain...), nil
	}
	certs, err = decodeUnmarkedPKCS12(data, password)
	if err != nil {
		if errors.Is(err, ErrWrongPassword) {
			return nil, err
		}
		return nil, fmt.Errorf("not a Java trust store (%v), nor a keystore, nor an OpenSSL certificate export: %w", trustErr, err)
	}
	return certs, nil
}

// checkPFXBounds rejects, before any key derivation, a PFX whose MAC
// iteration count is unreasonable.
func checkPFXBounds(data []byte) error {
	var pfx pfxPDU
	if _, err := asn1.Unmarshal(data, &pfx); err != nil {
		return fmt.Errorf("read PFX: %w", err)
	}
	if pfx.MacData.Iterations > maxMACIterations || pfx.MacData.Iterations < 0 {
		return fmt.Errorf("PFX MAC iteration count %d out of range", pfx.MacData.Iterations)
	}
	return nil
}

// decodeUnmarkedPKCS12 reads the certificates of a PKCS#12 file that holds
// only certificates without Java's trust attribute, as
// `openssl pkcs12 -export -nokeys` writes. go-pkcs12 decrypts such content
// only through ToPEM, which expects the two-part layout of a key and its
// certificates; so after verifying the file's MAC with the password, this
// appends an empty unencrypted part, re-computes the MAC with the same
// derived key, and lets ToPEM decrypt the certificates (whatever cipher
// OpenSSL chose: AES, 3DES or RC2).
func decodeUnmarkedPKCS12(data []byte, password string) ([]*x509.Certificate, error) {
	var pfx pfxPDU
	rest, err := asn1.Unmarshal(data, &pfx)
	if err != nil {
		return nil, fmt.Errorf("read PFX: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after PFX")
	}
	if pfx.Version != 3 || !pfx.AuthSafe.ContentType.Equal(oidDataContentType) {
		return nil, errors.New("unsupported PFX: not a password-integrity v3 PFX")
	}
	var authSafe []byte
	if _, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &authSafe); err != nil {
		return nil, fmt.Errorf("read authenticated safe: %w", err)
	}
	newHash, u, v, ok := macHash(pfx.MacData.Mac.Algorithm.Algorithm)
	if !ok {
		return nil, fmt.Errorf("unsupported PFX MAC algorithm %v", pfx.MacData.Mac.Algorithm.Algorithm)
	}
	iter := pfx.MacData.Iterations
	if iter <= 0 || iter > maxMACIterations {
		return nil, fmt.Errorf("PFX MAC iteration count %d out of range", iter)
	}
	// Some writers encode the empty password as two zero bytes, others as
	// nothing at all; try both, as go-pkcs12 does.
	candidates := [][]byte{bmpZeroTerminated(password)}
	if password == "" {
		candidates = append(candidates, nil)
	}
	var key []byte
	for _, pw := range candidates {
		k := pkcs12KDF(newHash, u, v, pfx.MacData.MacSalt, pw, iter, 3, u)
		m := hmac.New(newHash, k)
		m.Write(authSafe)
		if hmac.Equal(m.Sum(nil), pfx.MacData.Mac.Digest) {
			key = k
			break
		}
	}
	if key == nil {
		return nil, ErrWrongPassword
	}

	var parts []asn1.RawValue
	if rest, err := asn1.Unmarshal(authSafe, &parts); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("read authenticated safe parts: %v", err)
	}
	if len(parts) != 1 {
		return nil, fmt.Errorf("expected one part in the authenticated safe, found %d", len(parts))
	}
	// An empty SafeContents (SEQUENCE {}) as plain data.
	emptyData, err := asn1.Marshal([]byte{0x30, 0x00})
	if err != nil {
		return nil, err
	}
	empty, err := asn1.Marshal(contentInfo{
		ContentType: oidDataContentType,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: emptyData},
	})
	if err != nil {
		return nil, err
	}
	parts = append(parts, asn1.RawValue{FullBytes: empty})
	newSafe, err := asn1.Marshal(parts)
	if err != nil {
		return nil, err
	}
	m := hmac.New(newHash, key)
	m.Write(newSafe)
	safeOctets, err := asn1.Marshal(newSafe)
	if err != nil {
		return nil, err
	}
	pfx.AuthSafe.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: safeOctets}
	pfx.MacData.Mac.Digest = m.Sum(nil)
	rebuilt, err := asn1.Marshal(pfx)
	if err != nil {
		return nil, err
	}
	blocks, err := pkcs12.ToPEM(rebuilt, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, ErrWrongPassword
		}
		return nil, err
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// macHash maps a PKCS#12 MAC digest algorithm to its hash, output size u
// and block size v.
func macHash(oid asn1.ObjectIdentifier) (func() hash.Hash, int, int, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return sha1.New, sha1.Size, sha1.BlockSize, true
	case oid.Equal(oidSHA224):
		return sha256.New224, sha256.Size224, sha256.BlockSize, true
	case oid.Equal(oidSHA256):
		return sha256.New, sha256.Size, sha256.BlockSize, true
	case oid.Equal(oidSHA384):
		return sha512.New384, sha512.Size384, sha512.BlockSize, true
	case oid.Equal(oidSHA512):
		return sha512.New, sha512.Size, sha512.BlockSize, true
	}
	return nil, 0, 0, false
}

// bmpZeroTerminated encodes a password as PKCS#12 wants it: UTF-16
// big-endian with a terminating zero character.
func bmpZeroTerminated(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		out = append(out, byte(c>>8), byte(c))
	}
	return append(out, 0, 0)
}

// pkcs12KDF is the key derivation of RFC 7292 appendix B.2: id 3 derives
// MAC keys. u is the hash output size, v its block size, r the iterations.
func pkcs12KDF(newHash func() hash.Hash, u, v int, salt, password []byte, r int, id byte, size int) []byte {
	fill := func(x []byte) []byte {
		if len(x) == 0 {
			return nil
		}
		n := v * ((len(x) + v - 1) / v)
		out := make([]byte, n)
		for i := range out {
			out[i] = x[i%len(x)]
		}
		return out
	}
	d := bytes.Repeat([]byte{id}, v)
	in := append(fill(salt), fill(password)...)
	c := (size + u - 1) / u
	out := make([]byte, 0, c*u)
	for i := 0; i < c; i++ {
		h := newHash()
		h.Write(d)
		h.Write(in)
		a := h.Sum(nil)
		for j := 1; j < r; j++ {
			h.Reset()
			h.Write(a)
			a = h.Sum(a[:0])
		}
		out = append(out, a...)
		if i == c-1 {
			break
		}
		b := make([]byte, v)
		for k := range b {
			b[k] = a[k%len(a)]
		}
		// I_j = (I_j + B + 1) mod 2^(8v) for every v-byte block of I.
		for j := 0; j+v <= len(in); j += v {
			carry := 1
			for k := v - 1; k >= 0; k-- {
				s := int(in[j+k]) + int(b[k]) + carry
				in[j+k] = byte(s)
				carry = s >> 8
			}
		}
	}
	return out[:size]
}
