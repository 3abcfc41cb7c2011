package relay

import (
	"net"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// AdminEndpoint is where a configuration's admin API listens, as a client
// of it (the CLI) needs to know.
type AdminEndpoint struct {
	// Address is the admin address (default 127.0.0.1:9090).
	Address string
	// TLS is true when the admin listener serves HTTPS; CertFile is its
	// certificate file (absolute), which a client may trust as a root.
	TLS      bool
	CertFile string
}

// PeekAdmin reads only the admin block of a configuration file: a client
// of the admin API needs its address, not the secrets of the channels
// (whose env() variables are set only where the relay runs).
func PeekAdmin(path string) (AdminEndpoint, hcl.Diagnostics) {
	ep := AdminEndpoint{Address: "127.0.0.1:9090"}
	src, err := os.ReadFile(path)
	if err != nil {
		return ep, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "cannot read configuration file", Detail: err.Error(),
			Subject: &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}}}
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		return ep, diags
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	dir := filepath.Dir(abs)
	var file struct {
		Admin *struct {
			Address      *string   `hcl:"address,optional"`
			AddressRange hcl.Range `hcl:"address,attr_range"`
			TLS          *struct {
				CertFile *string  `hcl:"cert_file,optional"`
				Rest     hcl.Body `hcl:",remain"`
			} `hcl:"tls,block"`
			Rest hcl.Body `hcl:",remain"`
		} `hcl:"admin,block"`
		Rest hcl.Body `hcl:",remain"`
	}
	diags = append(diags, gohcl.DecodeBody(f.Body, evalContext(dir), &file)...)
	if diags.HasErrors() {
		return ep, diags
	}
	if a := file.Admin; a != nil {
		if a.Address != nil {
			ep.Address = *a.Address
			if _, _, err := net.SplitHostPort(ep.Address); err != nil {
				r := a.AddressRange
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "invalid address",
					Detail: "admin address " + ep.Address + ": " + err.Error(), Subject: &r})
			}
		}
		if a.TLS != nil {
			ep.TLS = true
			if a.TLS.CertFile != nil {
				ep.CertFile = resolvePath(dir, *a.TLS.CertFile)
			}
		}
	}
	return ep, diags
}
