package outbound

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestNormalise(t *testing.T) {
	const prefix = "/out/x/"
	cases := []struct {
		in       string
		decoded  string // "" = refused
		raw      string
		refusedS string
	}{
		{in: "/out/x/a/b", decoded: "/a/b", raw: "/a/b"},
		{in: "/out/x/", decoded: "/", raw: "/"},
		{in: "/out/x/a/", decoded: "/a/", raw: "/a/"},
		{in: "/out/x/a%20b/c", decoded: "/a b/c", raw: "/a%20b/c"},
		{in: "/out/x/a/./b", decoded: "/a/b", raw: "/a/b"},
		{in: "/out/x/a/c/../b", decoded: "/a/b", raw: "/a/b"},
		{in: "/out/x/a/%2e%2e/b", decoded: "/b", raw: "/b"},
		{in: "/out/x/a/b/..", decoded: "/a/", raw: "/a/"},
		{in: "/out/x/a/..", decoded: "/", raw: "/"},
		{in: "/out/x/%41", decoded: "/A", raw: "/A"},
		{in: "/out/x/a@b:c/%7e", decoded: "/a@b:c/~", raw: "/a@b:c/~"},
		{in: "/out/x/caf%C3%A9", decoded: "/café", raw: "/caf%C3%A9"},
		{in: "/out/x/a%3Fb%23", decoded: "/a?b#", raw: "/a%3Fb%23"},
		{in: "/out/x/media/..;/..;/admin/keys", refusedS: "path parameter"},
		{in: "/out/x/a;jsessionid=1", refusedS: "path parameter"},
		{in: "/out/x/a%3b/b", refusedS: "path parameter"},
		{in: "/out/x/media/%252e%252e/%252e%252e/admin", refusedS: "%25"},
		{in: "/out/x/a%25", refusedS: "%25"},
		{in: "/out/x/%c0%ae%c0%ae/admin", refusedS: "UTF-8"},
		{in: "/out/x/%e0%80%ae", refusedS: "UTF-8"},
		{in: "/out/x/%ff", refusedS: "UTF-8"},
		{in: "/out/x/..", refusedS: "escapes"},
		{in: "/out/x/a/../..", refusedS: "escapes"},
		{in: "/out/x/%2E%2E", refusedS: "escapes"},
		{in: "/out/x//a", refusedS: "empty"},
		{in: "/out/x/a//b", refusedS: "empty"},
		{in: "/out/x/a%2fb", refusedS: "separator"},
		{in: "/out/x/a%5Cb", refusedS: "separator"},
		{in: "/out/x/a\\b", refusedS: "backslash"},
		{in: "/out/x/a%00", refusedS: "control"},
		{in: "/out/x/a%7f", refusedS: "control"},
		{in: "/out/x/a%zz", refusedS: "escape"},
		{in: "/out/y/a", refusedS: "not under"},
		{in: "/out/x", refusedS: "not under"},
		{in: "/out/%78/a", refusedS: "not under"},
	}
	for _, tc := range cases {
		cp, err := normalise(tc.in, prefix)
		if tc.refusedS != "" {
			if err == nil || !errors.Is(err, ErrPathRefused) || !strings.Contains(err.Error(), tc.refusedS) {
				t.Errorf("normalise(%q) = %+v, %v; want refusal mentioning %q", tc.in, cp, err, tc.refusedS)
			}
			continue
		}
		if err != nil || cp.decoded != tc.decoded || cp.raw != tc.raw {
			t.Errorf("normalise(%q) = %+v, %v; want %q %q", tc.in, cp, err, tc.decoded, tc.raw)
		}
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pat  string
		yes  []string
		no   []string
		fail bool
	}{
		{pat: "/whatsapp/1/message/*",
			yes: []string{"/whatsapp/1/message/text", "/whatsapp/1/message/template", "/whatsapp/1/message/"},
			no:  []string{"/whatsapp/1/message", "/whatsapp/1/message/a/b", "/whatsapp/1/messages/x", "/WhatsApp/1/message/x"}},
		{pat: "/media/**",
			yes: []string{"/media", "/media/", "/media/a", "/media/a/b/c"},
			no:  []string{"/medias", "/x/media/a", "/"}},
		{pat: "/v*/messages",
			yes: []string{"/v1/messages", "/v21.0/messages", "/v/messages"},
			no:  []string{"/x1/messages", "/v1/x/messages"}},
		{pat: "/*/*.json",
			yes: []string{"/a/b.json", "/a/.json"},
			no:  []string{"/a/b.json.x", "/a/b/c.json"}},
		{pat: "/**", yes: []string{"/", "/a", "/a/b/c"}},
		{pat: "/", yes: []string{"/"}, no: []string{"/a"}},
		{pat: "/a*b*c", yes: []string{"/abc", "/aXbYc", "/abbbc"}, no: []string{"/ab", "/acb"}},
		{pat: "no-slash", fail: true},
		{pat: "/a/**/b", fail: true},
		{pat: "/a/x**", fail: true},
	}
	for _, tc := range cases {
		g, err := compileGlob(tc.pat)
		if tc.fail {
			if err == nil {
				t.Errorf("compileGlob(%q) accepted", tc.pat)
			}
			continue
		}
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tc.pat, err)
		}
		for _, p := range tc.yes {
			if !g.match(p) {
				t.Errorf("%q does not match %q", tc.pat, p)
			}
		}
		for _, p := range tc.no {
			if g.match(p) {
				t.Errorf("%q matches %q", tc.pat, p)
			}
		}
	}
}

// FuzzNormalise checks that the normaliser never panics and that an accepted
// path has no dot segments, no empty inner segments and no separator in a
// segment, and that the URL built from it stays under the base path.
func FuzzNormalise(f *testing.F) {
	for _, s := range []string{
		"/out/x/a/b", "/out/x/../a", "/out/x/%2e%2e/a", "/out/x/a/.%2E/b", "/out/x//a", "/out/x/a%2fb",
		"/out/x/a%5c", "/out/x/a\\b", "/out/x/a/./../..", "/out/x/%", "/out/x/%zz", "/out/x/a%00b",
		"/out/x/whatsapp/1/message/text", "/out/x/media/a/b", "/out/xy/a", "/out/x/a/b/../../..",
	} {
		f.Add(s, "/media/**")
	}
	f.Add("/out/x/v1/m.json", "/v*/*.json")
	f.Fuzz(func(t *testing.T, p, pattern string) {
		cp, err := normalise(p, "/out/x/")
		if g, gerr := compileGlob(pattern); gerr == nil && err == nil {
			_ = g.match(cp.decoded)
		}
		if err != nil {
			return
		}
		if !strings.HasPrefix(cp.decoded, "/") || !strings.HasPrefix(cp.raw, "/") {
			t.Fatalf("%q: result without leading slash: %+v", p, cp)
		}
		segs := strings.Split(cp.decoded[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." {
				t.Fatalf("%q: dot segment in %q", p, cp.decoded)
			}
			if s == "" && i != len(segs)-1 {
				t.Fatalf("%q: empty segment in %q", p, cp.decoded)
			}
			if strings.ContainsAny(s, "\\\x00") {
				t.Fatalf("%q: backslash or NUL in %q", p, cp.decoded)
			}
		}
		for _, s := range strings.Split(cp.raw[1:], "/") {
			dec, err := url.PathUnescape(s)
			if err != nil || dec == "." || dec == ".." || strings.ContainsAny(dec, "/\\") {
				t.Fatalf("%q: raw segment %q decodes to %q (%v)", p, s, dec, err)
			}
		}
		// The URL the proxy builds stays under the base path, and the BSP,
		// decoding and cleaning it, sees the same path.
		u := &url.URL{Scheme: "https", Host: "bsp.example", Path: "/base" + cp.decoded, RawPath: "/base" + cp.raw}
		parsed, err := url.Parse(u.String())
		if err != nil {
			t.Fatalf("%q: built URL %q does not parse: %v", p, u.String(), err)
		}
		if parsed.Host != "bsp.example" || !strings.HasPrefix(parsed.Path, "/base/") {
			t.Fatalf("%q: built URL %q escapes the base", p, u.String())
		}
		if parsed.Path != "/base"+cp.decoded {
			t.Fatalf("%q: BSP would see %q, relay matched %q", p, parsed.Path, cp.decoded)
		}
	})
}
