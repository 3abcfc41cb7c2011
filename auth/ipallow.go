package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// IPAllowConfig configures an IPAllow verifier.
type IPAllowConfig struct {
	// CIDRs are the allowed client networks (required).
	CIDRs []netip.Prefix
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For is believed (the listener's trusted_proxies).
	TrustedProxies []netip.Prefix
}

// IPAllow accepts requests whose client address (see ClientAddr) lies in
// one of the configured networks.
type IPAllow struct {
	cidrs   []netip.Prefix
	trusted []netip.Prefix
}

var _ Verifier = (*IPAllow)(nil)

// NewIPAllow checks c and returns the verifier.
func NewIPAllow(c IPAllowConfig) (*IPAllow, error) {
	if len(c.CIDRs) == 0 {
		return nil, errors.New("ip_allow: at least one CIDR is required")
	}
	v := &IPAllow{}
	for _, p := range c.CIDRs {
		if !p.IsValid() {
			return nil, fmt.Errorf("ip_allow: CIDR %q is not valid", p.String())
		}
		v.cidrs = append(v.cidrs, normPrefix(p))
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return nil, fmt.Errorf("ip_allow: trusted proxy %q is not valid", p.String())
		}
		v.trusted = append(v.trusted, normPrefix(p))
	}
	return v, nil
}

// normPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form and masks the host bits.
func normPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if normPrefix(p).Contains(a) {
			return true
		}
	}
	return false
}

// Verify checks the client address against the allowed networks.
func (v *IPAllow) Verify(r *Request) error {
	addr, ok := ClientAddr(r.RemoteAddr, r.Header, v.trusted)
	if !ok {
		return fail(ReasonIPNotAllowed, "ip_allow: client address cannot be determined")
	}
	if !containsAddr(v.cidrs, addr) {
		return fail(ReasonIPNotAllowed, "ip_allow: client %s is outside the allowed networks", addr)
	}
	return nil
}

// parseAddr parses "ip", "ip:port" or "[ip]:port", drops any zone and
// unmaps IPv4-mapped IPv6 addresses.
func parseAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap(), true
}

// ClientAddr returns the client address of a request: the TCP peer, or —
// when the peer is a trusted proxy — the right-most X-Forwarded-For address
// that is not itself a trusted proxy (walking right to left). When every
// forwarded address is trusted, the left-most one is returned; without
// X-Forwarded-For the peer itself. ok is false when the peer or a forwarded
// address that has to be read cannot be parsed.
func ClientAddr(remoteAddr string, header http.Header, trusted []netip.Prefix) (netip.Addr, bool) {
	peer, ok := parseAddr(remoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if len(trusted) == 0 || !containsAddr(trusted, peer) {
		return peer, true
	}
	var hops []string
	for _, v := range header.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				hops = append(hops, hop)
			}
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseAddr(hops[i])
		if !ok {
			return netip.Addr{}, false
		}
		client = a
		if !containsAddr(trusted, a) {
			return a, true
		}
	}
	return client, true
}
