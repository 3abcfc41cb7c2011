package outbound

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// referencePath is a second, independent statement of the normaliser's
// rules, written the other way round: decode the whole rest at once, check
// it, resolve the dots with path.Clean under a sentinel segment. It returns
// the decoded rest path and whether it is accepted.
func referencePath(escaped, prefix string) (string, bool) {
	if !strings.HasPrefix(escaped, prefix) {
		return "", false
	}
	rest := escaped[len(prefix):]
	lower := strings.ToLower(rest)
	if strings.ContainsAny(rest, `\;`) || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return "", false
	}
	dec, err := url.PathUnescape(rest)
	if err != nil || !utf8.ValidString(dec) || strings.ContainsAny(dec, `%;\`) {
		return "", false
	}
	for _, r := range dec {
		if r < 0x20 || r == 0x7f {
			return "", false
		}
	}
	if dec == "" {
		return "/", true
	}
	segs := strings.Split(dec, "/")
	for i, s := range segs {
		if s == "" && i != len(segs)-1 {
			return "", false
		}
	}
	const sentinel = "/\x00mount"
	clean := path.Clean(sentinel + "/" + dec)
	if clean != sentinel && !strings.HasPrefix(clean, sentinel+"/") {
		return "", false // climbed above the mount point
	}
	out := strings.TrimPrefix(clean, sentinel)
	if out == "" {
		out = "/"
	}
	last := segs[len(segs)-1]
	if (last == "" || last == "." || last == "..") && out != "/" {
		out += "/"
	}
	return out, true
}

// hostileResolve is how the most lenient BSP-side server could read a
// forwarded path: strip ";" path parameters, percent-decode until nothing
// changes (double decoding), treat "\" as "/", then resolve dot segments.
func hostileResolve(raw string) string {
	p := raw
	for range 8 {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, `\`, "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return path.Clean(strings.Join(segs, "/"))
}

// FuzzNormaliseReference runs the normaliser against referencePath: both
// accept the same paths with the same result, the forwarded (raw) path
// decodes to exactly the matched one, and even a server that decodes
// repeatedly, honours path parameters and backslashes resolves the
// forwarded path to the matched one.
//
// Run it with: go test -run=^$ -fuzz=FuzzNormaliseReference -fuzztime=10m ./relay/outbound
// The seed corpus is in testdata/fuzz/FuzzNormaliseReference.
func FuzzNormaliseReference(f *testing.F) {
	for _, s := range []string{
		"/out/x/a/b", "/out/x/", "/out/x/a/", "/out/x/media/..;/..;/..;/admin/keys",
		"/out/x/media/%252e%252e/%252e%252e/admin/keys", "/out/x/%c0%ae%c0%ae/admin", "/out/x/%e0%80%ae",
		"/out/x/a/%2e%2e/b", "/out/x/a/.%2E/../c", "/out/x/a%3bb", "/out/x/a%2fb", "/out/x/a\\b",
		"/out/x/caf%C3%A9/", "/out/x/%F0%9F%98%80", "/out/x/a/b/..", "/out/x/..", "/out/x//a", "/out/x/a/./",
		"/out/x/%25", "/out/x/%", "/out/x/%zz", "/out/x/a%00", "/out/y/a", "/out/x/a?b", "/out/x/%3F%23",
	} {
		f.Add(s)
	}
	const prefix = "/out/x/"
	f.Fuzz(func(t *testing.T, p string) {
		cp, err := normalise(p, prefix)
		want, ok := referencePath(p, prefix)
		if (err == nil) != ok {
			t.Fatalf("%q: normaliser accepted=%v (%v), reference accepted=%v (%q)", p, err == nil, err, ok, want)
		}
		if err != nil {
			return
		}
		if cp.decoded != want {
			t.Fatalf("%q: normaliser %q, reference %q", p, cp.decoded, want)
		}
		if d, err := url.PathUnescape(cp.raw); err != nil || d != cp.decoded {
			t.Fatalf("%q: forwarded %q decodes to %q (%v), matched %q", p, cp.raw, d, err, cp.decoded)
		}
		if strings.ContainsAny(cp.raw, ";\\") || strings.Contains(cp.raw, "%25") {
			t.Fatalf("%q: forwarded %q carries ; \\ or %%25", p, cp.raw)
		}
		if got, exp := hostileResolve("/base"+cp.raw), path.Clean("/base"+cp.decoded); got != exp {
			t.Fatalf("%q: a lenient server resolves forwarded %q to %q, matched %q", p, cp.raw, got, exp)
		}
	})
}
