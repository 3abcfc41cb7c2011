package tls

import (
	"crypto/x509"
	"strings"
	"time"
)

// Certificate sources, as reported in CertInfo.Source.
const (
	SourceACME       = "acme"
	SourceStatic     = "static"
	SourceSelfSigned = "self_signed"
	SourceTrustStore = "trust_store"
)

// CertInfo describes one certificate for operators and metrics (expiry).
type CertInfo struct {
	// Listener is the listener serving it ("" for trust store entries).
	Listener string `json:"listener,omitempty"`
	// Source is where it comes from: "acme", "static", "self_signed"
	// (served certificates) or "trust_store".
	Source string `json:"source"`
	// Names are the DNS and IP subject alternative names, or the subject
	// common name when there are none.
	Names []string `json:"names"`
	// Subject is the subject distinguished name.
	Subject string `json:"subject"`
	// Issuer is the issuer's common name, or its full distinguished name
	// when it has no common name.
	Issuer string `json:"issuer"`
	// Serial is the serial number in hexadecimal.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Inspect summarises a certificate; Listener and Source are left for the
// caller to fill.
func Inspect(c *x509.Certificate) CertInfo {
	info := CertInfo{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.CommonName,
		Serial:    c.SerialNumber.Text(16),
		NotBefore: c.NotBefore,
		NotAfter:  c.NotAfter,
	}
	if info.Issuer == "" {
		info.Issuer = c.Issuer.String()
	}
	info.Names = append(info.Names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		info.Names = append(info.Names, ip.String())
	}
	if len(info.Names) == 0 && c.Subject.CommonName != "" {
		info.Names = []string{c.Subject.CommonName}
	}
	return info
}

// InspectTrustStore describes the certificates loaded into a trust store,
// so their expiry can be exported like that of served certificates.
func InspectTrustStore(ts *TrustStore) []CertInfo {
	if ts == nil {
		return nil
	}
	out := make([]CertInfo, 0, len(ts.Certs))
	for _, c := range ts.Certs {
		info := Inspect(c)
		info.Source = SourceTrustStore
		out = append(out, info)
	}
	return out
}

// MatchClientName reports whether a client certificate carries one of
// names as its subject common name or as a DNS, URI or email subject
// alternative name: a channel's pin on which BSP may call it. DNS names,
// common names and emails compare case-insensitively, URIs exactly. No
// names, or no certificate, matches nothing.
func MatchClientName(cert *x509.Certificate, names []string) bool {
	if cert == nil {
		return false
	}
	for _, n := range names {
		if n == "" {
			continue
		}
		if strings.EqualFold(cert.Subject.CommonName, n) {
			return true
		}
		for _, d := range cert.DNSNames {
			if strings.EqualFold(d, n) {
				return true
			}
		}
		for _, e := range cert.EmailAddresses {
			if strings.EqualFold(e, n) {
				return true
			}
		}
		for _, u := range cert.URIs {
			if u.String() == n {
				return true
			}
		}
	}
	return false
}
