package relay

import (
	"strings"
	"testing"
)

// FuzzBackendURLKeepsHost: whatever a BSP puts in the path or query of its
// request, the filled-in backend URL keeps the configured scheme and host,
// and the request line carries the rest byte for byte.
func FuzzBackendURLKeepsHost(f *testing.F) {
	for _, s := range [][2]string{
		{"/st-1234", "/hooks/kore/st-1234?x=1"},
		{"//evil.example/x", "/hooks/kore//evil.example/x"},
		{"/@evil.example", "/hooks/kore/@evil.example?a=%2F%2F"},
		{"/a|b%2Fc", "/hooks/kore/a|b%2Fc?q=%E2%9C%93+ok"},
		{"/x#frag", "/hooks/kore/x?#y"},
		{"/\\evil", "/?http://evil/"},
	} {
		f.Add(s[0], s[1])
	}
	const tmpl = "https://aicc.internal:8443/base{path}{query}"
	f.Fuzz(func(t *testing.T, rest, target string) {
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest
		}
		u, err := backendURL(tmpl, target, rest)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.Host != "aicc.internal:8443" {
			t.Fatalf("rest %q target %q: scheme %q host %q", rest, target, u.Scheme, u.Host)
		}
		ruri := u.RequestURI()
		if !strings.HasPrefix(ruri, "/base"+rest) && !strings.HasPrefix(ruri, "/base/") {
			t.Fatalf("request URI %q does not start with /base + the rest %q", ruri, rest)
		}
	})
}
