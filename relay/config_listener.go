package relay

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	relaytls "github.com/edgerelay/edgerelay/tls"
	"github.com/hashicorp/hcl/v2"
)

// Listeners, their TLS and the trust stores shared with backends and upstreams.

func (v *validator) listener(lb *listenerBlock, dataDir string) *ListenerConfig {
	v.owner = "listener " + lb.Name
	defer func() { v.owner = "" }()
	l := &ListenerConfig{Name: lb.Name, Address: lb.Address}
	if host, port, err := net.SplitHostPort(lb.Address); err != nil {
		v.errorf(lb.AddressRange, "invalid address", "listener %q address %q: %v (write host:port, e.g. \"0.0.0.0:8443\")", lb.Name, lb.Address, err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.errorf(lb.AddressRange, "invalid address", "listener %q address %q: bad port", lb.Name, lb.Address)
	} else {
		_ = host
	}
	l.MaxBody = v.size(lb.MaxBody, lb.MaxBodyRange, "max_body", 3<<20)
	if l.MaxBody <= 0 {
		v.errorf(lb.MaxBodyRange, "invalid size", "max_body must be more than 0")
	}
	l.ReadTimeout = v.duration(lb.ReadTimeout, lb.ReadTimeoutRange, "read_timeout", 15*time.Second)
	l.WriteTimeout = v.duration(lb.WriteTimeout, lb.WriteTimeoutRange, "write_timeout", 30*time.Second)
	l.IdleTimeout = v.duration(lb.IdleTimeout, lb.IdleTimeoutRange, "idle_timeout", 120*time.Second)
	for _, c := range lb.TrustedProxies {
		p, err := parsePrefix(c)
		if err != nil {
			v.errorf(lb.TrustedProxiesRange, "invalid CIDR", "trusted_proxies: %q: %v", c, err)
			continue
		}
		l.TrustedProxies = append(l.TrustedProxies, p)
	}
	l.MaxConnections = v.positive(lb.MaxConns, lb.MaxConnsRange, "max_connections", 10000, true)
	perIP := 512
	if len(l.TrustedProxies) > 0 {
		perIP = 0
	}
	l.MaxConnectionsPerIP = v.positive(lb.MaxConnsPerIP, lb.MaxConnsPerIPRange, "max_connections_per_ip", perIP, true)
	if t := lb.TLS; t != nil {
		l.TLS = v.listenerTLS(lb, t, dataDir)
	}
	return l
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (v *validator) listenerTLS(lb *listenerBlock, t *tlsBlock, dataDir string) *ListenerTLS {
	sc := relaytls.ServerConfig{
		Listener:   lb.Name,
		Address:    lb.Address,
		StorageDir: dataDir,
		MinVersion: str(t.MinVersion, "1.2"),
		Names:      t.Names,
	}
	if sc.MinVersion != "1.2" && sc.MinVersion != "1.3" {
		v.errorf(t.MinVersionRange, "invalid TLS version", "min_version = %q: use \"1.2\" or \"1.3\"", sc.MinVersion)
	}
	sources := 0
	ok := true
	if t.ACME != nil {
		sources++
		a := t.ACME
		if len(a.Domains) == 0 {
			v.errorf(a.DomainsRange, "missing domains", "acme needs at least one domain")
			ok = false
		}
		ac := &relaytls.ACMEConfig{
			Domains:    a.Domains,
			Email:      str(a.Email, ""),
			CA:         str(a.CA, "https://acme-v02.api.letsencrypt.org/directory"),
			Challenges: a.Challenges,
		}
		if u, err := url.Parse(ac.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			v.errorf(a.CARange, "invalid ACME directory", "ca = %q must be an https URL", ac.CA)
			ok = false
		}
		for _, c := range a.Challenges {
			if c != "tls-alpn-01" && c != "http-01" {
				v.errorf(a.ChallengesRange, "unknown challenge", "challenges: %q (use \"tls-alpn-01\" and/or \"http-01\")", c)
				ok = false
			}
		}
		for _, r := range a.CARoots {
			p := resolvePath(v.dir, r)
			ac.CARoots = append(ac.CARoots, p)
			if _, err := relaytls.LoadTrustStore([]string{p}, "", false); err != nil {
				v.errorf(a.CARootsRange, "invalid CA root", "ca_roots: %v", err)
				ok = false
			}
		}
		// Several instances share certificates (and solve each challenge
		// once) by pointing storage at one directory; certmagic's file
		// storage locks inside it.
		if a.Storage != nil {
			sc.StorageDir = resolvePath(v.dir, *a.Storage)
		}
		// The ACME client must know the relay answers HTTP-01 on its own
		// plain listener, or it would try to bind port 80 itself.
		ac.HTTPChallengeAddr = str(t.HTTPChallengeAddress, "")
		sc.ACME = ac
	}
	if t.CertFile != nil || t.KeyFile != nil {
		sources++
		if t.CertFile == nil || t.KeyFile == nil {
			v.errorf(t.DefRange, "incomplete certificate", "cert_file and key_file go together")
			ok = false
		} else {
			sc.CertFile = resolvePath(v.dir, *t.CertFile)
			sc.KeyFile = resolvePath(v.dir, *t.KeyFile)
			if c, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{CertFile: sc.CertFile, KeyFile: sc.KeyFile}); err != nil {
				v.errorf(t.CertFileRange, "invalid certificate", "%v", err)
				ok = false
			} else {
				v.certNote(c.Leaf, c.Certificate, sc.CertFile, t.CertFileRange)
			}
			v.keyFileNote(sc.KeyFile, t.KeyFileRange)
		}
	}
	if boolv(t.SelfSigned, false) {
		sources++
		sc.SelfSigned = true
	}
	if sources != 1 {
		v.errorf(t.DefRange, "ambiguous TLS", "a tls block needs exactly one of: acme { }, cert_file + key_file, self_signed = true")
		ok = false
	}
	if len(t.ClientCA) > 0 {
		for _, f := range t.ClientCA {
			sc.ClientCAs = append(sc.ClientCAs, resolvePath(v.dir, f))
		}
		sc.ClientCAPassword = str(t.ClientCAPassword, "")
		if ts, err := relaytls.LoadTrustStore(sc.ClientCAs, sc.ClientCAPassword, false); err != nil {
			v.errorf(t.ClientCARange, "invalid client CA", "%v", err)
			ok = false
		} else {
			v.trustNotes(ts, t.ClientCARange, "client_ca")
		}
	}
	if ok {
		vc := sc
		if _, port, _ := net.SplitHostPort(vc.Address); port == "0" {
			vc.Address = "" // bound later; the real port is known then
		}
		if err := vc.Validate(); err != nil {
			v.errorf(t.DefRange, "invalid tls block", "%v", err)
		}
	}
	return &ListenerTLS{Server: sc, HTTPChallengeAddress: str(t.HTTPChallengeAddress, "")}
}

// certNote records a certificate's expiry for validate's report, and
// reports an expired one as an error and one expiring within 30 days as
// a warning, at the attribute that names it.
func (v *validator) certNote(leaf *x509.Certificate, chain [][]byte, file string, rng hcl.Range) {
	if leaf == nil && len(chain) > 0 {
		leaf, _ = x509.ParseCertificate(chain[0])
	}
	if leaf == nil {
		return
	}
	v.expiryCheck(leaf, file, rng)
}

func (v *validator) trustNotes(ts *relaytls.TrustStore, rng hcl.Range, what string) {
	if ts == nil {
		return
	}
	for _, c := range ts.Certs {
		v.expiryCheck(c, what, rng)
		v.trustCert(c)
	}
}

// trustCert records a trust-store or client certificate of the block being
// validated (v.owner), for edgerelay_trust_certificate_expiry_seconds.
func (v *validator) trustCert(c *x509.Certificate) {
	if v.owner == "" || c == nil {
		return
	}
	subject := c.Subject.CommonName
	if subject == "" && len(c.DNSNames) > 0 {
		subject = c.DNSNames[0]
	}
	if subject == "" {
		subject = c.Subject.String()
	}
	for i, tc := range v.trustCerts {
		if tc.Owner == v.owner && tc.Subject == subject {
			if c.NotAfter.Before(tc.NotAfter) {
				v.trustCerts[i].NotAfter = c.NotAfter
			}
			return
		}
	}
	v.trustCerts = append(v.trustCerts, TrustCert{Owner: v.owner, Subject: subject, NotAfter: c.NotAfter})
}

func (v *validator) expiryCheck(c *x509.Certificate, where string, rng hcl.Range) {
	left := time.Until(c.NotAfter)
	name := c.Subject.CommonName
	if name == "" && len(c.DNSNames) > 0 {
		name = c.DNSNames[0]
	}
	v.certs = append(v.certs, fmt.Sprintf("%s: %q expires %s (%d days)", filepath.Base(where), name, c.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)))
	switch {
	case left <= 0:
		v.errorf(rng, "certificate expired", "%s: %q expired on %s", where, name, c.NotAfter.UTC().Format(time.DateOnly))
	case left < 30*24*time.Hour:
		r := rng
		v.diags = append(v.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "certificate expires soon",
			Detail: fmt.Sprintf("%s: %q expires on %s (%d days)", where, name, c.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)), Subject: &r})
	}
}

func (v *validator) trust(files []string, rng hcl.Range, password *string, system *bool, cc *clientCertBlock) TrustConfig {
	tc := TrustConfig{Password: str(password, ""), System: boolv(system, false)}
	for _, f := range files {
		tc.Files = append(tc.Files, resolvePath(v.dir, f))
	}
	if len(tc.Files) > 0 || tc.System {
		ts, err := relaytls.LoadTrustStore(tc.Files, tc.Password, tc.System)
		if err != nil {
			v.errorf(rng, "invalid trust store", "%v", err)
		} else if len(tc.Files) > 0 {
			v.trustNotes(&relaytls.TrustStore{Certs: ts.Certs}, rng, "trust_store")
		}
		tc.Store = ts
	}
	if cc != nil {
		c := &relaytls.ClientCertConfig{
			CertFile: resolvePath(v.dir, str(cc.CertFile, "")),
			KeyFile:  resolvePath(v.dir, str(cc.KeyFile, "")),
			P12File:  resolvePath(v.dir, str(cc.P12File, "")),
			Password: str(cc.Password, ""),
		}
		v.keyFileNote(c.KeyFile, cc.DefRange)
		v.keyFileNote(c.P12File, cc.DefRange)
		if cert, err := relaytls.LoadClientCert(*c); err != nil {
			v.errorf(cc.DefRange, "invalid client certificate", "%v", err)
		} else {
			v.certNote(cert.Leaf, cert.Certificate, "client_cert", cc.DefRange)
			leaf := cert.Leaf
			if leaf == nil && len(cert.Certificate) > 0 {
				leaf, _ = x509.ParseCertificate(cert.Certificate[0])
			}
			v.trustCert(leaf)
		}
		tc.ClientCert = c
	}
	return tc
}

// keyFileNote warns (it does not refuse) about a private key file that
// users other than its owner can read.
func (v *validator) keyFileNote(file string, rng hcl.Range) {
	if msg := relaytls.KeyFileExposure(file); msg != "" {
		r := rng
		v.diags = append(v.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "private key readable by other users",
			Detail: fmt.Sprintf("%s: %s", file, msg), Subject: &r})
	}
}
