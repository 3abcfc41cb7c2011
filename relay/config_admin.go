package relay

import (
	"crypto/subtle"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

// AdminConfig is the admin listener (health, metrics, the JSON API and
// the console) and who may use it.
type AdminConfig struct {
	// Address defaults to 127.0.0.1:9090.
	Address string
	// Tokens are the bearer tokens; none = no authentication (loopback
	// or client certificates only, see validation).
	Tokens []AdminToken
	// Hosts are the extra names the Host header may carry (besides the
	// admin address and loopback names).
	Hosts []string
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool
	// TLS is nil for plain HTTP.
	TLS *relaytls.ServerConfig
}

// Admin roles.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// AdminToken is one named bearer token.
type AdminToken struct {
	Name  string
	Value string
	// Role is RoleViewer or RoleOperator.
	Role string
}

// Lookup finds the token whose value is presented, comparing every
// configured value in constant time (the loop does not stop early, so the
// answer time does not tell which token matched or how much of one).
func (a *AdminConfig) Lookup(presented string) (AdminToken, bool) {
	var found AdminToken
	ok := 0
	for _, t := range a.Tokens {
		if subtle.ConstantTimeCompare([]byte(presented), []byte(t.Value)) == 1 {
			found = t
			ok = 1
		}
	}
	return found, ok == 1
}

// isLoopbackHost reports whether a host (name or address, no port) is a
// loopback one.
func isLoopbackHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.IsLoopback()
}

func (v *validator) admin(a *adminBlock, file string) AdminConfig {
	ac := AdminConfig{Address: "127.0.0.1:9090"}
	if a == nil {
		return ac
	}
	addrOK := true
	if a.Address != nil {
		ac.Address = *a.Address
		if _, port, err := net.SplitHostPort(*a.Address); err != nil {
			v.errorf(a.AddressRange, "invalid address", "admin address %q: %v (write host:port, e.g. \"127.0.0.1:9090\")", *a.Address, err)
			addrOK = false
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			v.errorf(a.AddressRange, "invalid address", "admin address %q: bad port", *a.Address)
			addrOK = false
		}
	}
	names := map[string]bool{}
	values := map[string]string{}
	for _, tb := range a.Tokens {
		t := AdminToken{Name: tb.Name, Value: str(tb.Value, ""), Role: str(tb.Role, "")}
		if names[t.Name] {
			v.errorf(tb.NameRange, "duplicate token", "admin token %q is defined twice", t.Name)
			continue
		}
		names[t.Name] = true
		switch {
		case tb.Value == nil:
			v.errorf(tb.DefRange, "missing value", "admin token %q needs value (e.g. value = env(\"ADMIN_TOKEN\"))", t.Name)
		case len(t.Value) < 16:
			v.errorf(tb.ValueRange, "token too short", "admin token %q: the value has %d characters; use at least 16 (e.g. openssl rand -hex 24)", t.Name, len(t.Value))
		case values[t.Value] != "":
			v.errorf(tb.ValueRange, "duplicate token value", "admin token %q has the same value as token %q", t.Name, values[t.Value])
		}
		values[t.Value] = t.Name
		switch {
		case tb.Role == nil:
			v.errorf(tb.DefRange, "missing role", "admin token %q needs role = \"viewer\" or \"operator\"", t.Name)
		case t.Role != RoleViewer && t.Role != RoleOperator:
			v.errorf(tb.RoleRange, "invalid role", "admin token %q: role = %q; use \"viewer\" or \"operator\"", t.Name, t.Role)
		}
		ac.Tokens = append(ac.Tokens, t)
	}
	for _, h := range a.Hosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			v.errorf(a.HostsRange, "invalid host", "hosts: %q is not a host name", h)
			continue
		}
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh // a port is ignored: names are compared without it
		}
		ac.Hosts = append(ac.Hosts, strings.ToLower(h))
	}
	ac.MetricsPublic = boolv(a.MetricsPublic, false)
	clientCA := false
	if t := a.TLS; t != nil {
		sc := relaytls.ServerConfig{Listener: "admin", Address: ac.Address, MinVersion: str(t.MinVersion, "1.2")}
		if sc.MinVersion != "1.2" && sc.MinVersion != "1.3" {
			v.errorf(t.MinVersionRange, "invalid TLS version", "min_version = %q: use \"1.2\" or \"1.3\"", sc.MinVersion)
		}
		if t.CertFile == nil || t.KeyFile == nil {
			v.errorf(t.DefRange, "incomplete certificate", "the admin tls block needs cert_file and key_file")
		} else {
			sc.CertFile = resolvePath(v.dir, *t.CertFile)
			sc.KeyFile = resolvePath(v.dir, *t.KeyFile)
			if c, err := relaytls.LoadClientCert(relaytls.ClientCertConfig{CertFile: sc.CertFile, KeyFile: sc.KeyFile}); err != nil {
				v.errorf(t.CertFileRange, "invalid certificate", "%v", err)
			} else {
				v.certNote(c.Leaf, c.Certificate, sc.CertFile, t.CertFileRange)
			}
		}
		for _, f := range t.ClientCA {
			sc.ClientCAs = append(sc.ClientCAs, resolvePath(v.dir, f))
		}
		if len(sc.ClientCAs) > 0 {
			sc.ClientCAPassword = str(t.ClientCAPassword, "")
			if ts, err := relaytls.LoadTrustStore(sc.ClientCAs, sc.ClientCAPassword, false); err != nil {
				v.errorf(t.ClientCARange, "invalid client CA", "%v", err)
			} else {
				v.trustNotes(ts, t.ClientCARange, "client_ca")
				clientCA = true
			}
		}
		ac.TLS = &sc
	}
	if host, _, err := net.SplitHostPort(ac.Address); addrOK && err == nil && !isLoopbackHost(host) && len(ac.Tokens) == 0 && !clientCA {
		rng := a.AddressRange
		if a.Address == nil {
			rng = a.DefRange
		}
		if rng.Filename == "" {
			rng = hcl.Range{Filename: file, Start: hcl.InitialPos, End: hcl.InitialPos}
		}
		v.errorf(rng, "unprotected admin address", "admin address %q is not a loopback address: anyone who reaches it could read, replay and purge events. Add a token block (token \"ops\" { value = env(\"ADMIN_TOKEN\"), role = \"operator\" }) or tls { client_ca = [...] }, or bind to 127.0.0.1", ac.Address)
	}
	return ac
}
