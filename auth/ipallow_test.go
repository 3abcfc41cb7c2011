package auth

import (
	"net/http"
	"net/netip"
	"testing"
)

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestClientAddr(t *testing.T) {
	trusted := prefixes("10.0.0.0/8", "fd00::/8")
	cases := []struct {
		name, remote string
		xff          []string
		want         string // "" = not ok
	}{
		{"direct peer", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"untrusted peer, XFF ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted proxy, XFF honoured", "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted wins", "10.0.0.2:5000", []string{"1.2.3.4, 198.51.100.1, 10.0.0.9"}, "198.51.100.1"},
		{"several header lines", "10.0.0.2:5000", []string{"1.2.3.4", "198.51.100.1", "10.0.0.9"}, "198.51.100.1"},
		{"all trusted, left-most", "10.0.0.2:5000", []string{"10.1.1.1, 10.0.0.9"}, "10.1.1.1"},
		{"trusted proxy without XFF", "10.0.0.2:5000", nil, "10.0.0.2"},
		{"unparsable hop", "10.0.0.2:5000", []string{"1.2.3.4, nonsense"}, ""},
		{"unparsable hop left of client is not read", "10.0.0.2:5000", []string{"nonsense, 198.51.100.1"}, "198.51.100.1"},
		{"hop with port", "10.0.0.2:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"ipv6 peer", "[2001:db8::5]:443", nil, "2001:db8::5"},
		{"ipv6 via trusted", "[fd00::1]:443", []string{"2001:db8::9"}, "2001:db8::9"},
		{"4in6 peer", "[::ffff:10.0.0.2]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"peer without port", "203.0.113.7", nil, "203.0.113.7"},
		{"unparsable peer", "pipe", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.xff {
				h.Add("X-Forwarded-For", v)
			}
			got, ok := ClientAddr(c.remote, h, trusted)
			if c.want == "" {
				if ok {
					t.Fatalf("ClientAddr = %v, want not ok", got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(c.want) {
				t.Fatalf("ClientAddr = %v %v, want %s", got, ok, c.want)
			}
		})
	}
}

func TestIPAllow(t *testing.T) {
	v := must[*IPAllow](t)(NewIPAllow(IPAllowConfig{
		CIDRs:          prefixes("198.51.100.0/24", "2001:db8::/32"),
		TrustedProxies: prefixes("10.0.0.0/8"),
	}))
	req := func(remote string, xff ...string) *Request {
		r := newRequest(t, "https://r.example/ip", nil, nil)
		r.RemoteAddr = remote
		for _, x := range xff {
			r.Header.Add("X-Forwarded-For", x)
		}
		return r
	}
	wantPass(t, v.Verify(req("198.51.100.9:1234")))
	wantPass(t, v.Verify(req("[2001:db8::1]:1234")))
	wantPass(t, v.Verify(req("[::ffff:198.51.100.9]:1234")))
	wantReason(t, v.Verify(req("203.0.113.7:1234")), ReasonIPNotAllowed)
	// A forged X-Forwarded-For from an untrusted peer is ignored.
	wantReason(t, v.Verify(req("203.0.113.7:1234", "198.51.100.9")), ReasonIPNotAllowed)
	// The trusted proxy's X-Forwarded-For is honoured.
	wantPass(t, v.Verify(req("10.0.0.2:1234", "198.51.100.9")))
	wantReason(t, v.Verify(req("10.0.0.2:1234", "203.0.113.7")), ReasonIPNotAllowed)
	// A client cannot hide behind an allowed address it prepends itself.
	wantReason(t, v.Verify(req("10.0.0.2:1234", "198.51.100.9, 203.0.113.7")), ReasonIPNotAllowed)
	wantReason(t, v.Verify(req("10.0.0.2:1234", "garbage")), ReasonIPNotAllowed)
	wantReason(t, v.Verify(req("")), ReasonIPNotAllowed)

	// An IPv4-mapped prefix matches plain IPv4 clients.
	w := must[*IPAllow](t)(NewIPAllow(IPAllowConfig{CIDRs: prefixes("::ffff:198.51.100.0/120")}))
	wantPass(t, w.Verify(req("198.51.100.9:1")))

	if _, err := NewIPAllow(IPAllowConfig{}); err == nil || err.Error() != "ip_allow: at least one CIDR is required" {
		t.Fatalf("NewIPAllow(empty) = %v", err)
	}
	if _, err := NewIPAllow(IPAllowConfig{CIDRs: []netip.Prefix{{}}}); err == nil {
		t.Fatal("NewIPAllow(invalid prefix): want error")
	}
}
