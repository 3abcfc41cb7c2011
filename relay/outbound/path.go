package outbound

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// ErrPathRefused is wrapped by every error of the path normaliser: the
// request path is malformed, escapes the mount point or hides a separator.
var ErrPathRefused = errors.New("path refused")

// cleanPath is a normalised request path below an upstream's mount point.
type cleanPath struct {
	// decoded is the rest path, percent-decoded, with a leading "/"; globs
	// match against it.
	decoded string
	// raw is the same path re-encoded from the checked, decoded segments
	// (url.PathEscape per segment), with a leading "/": what is forwarded.
	// The caller's own spelling never reaches the BSP, so a server that
	// decodes twice or honours path parameters sees the path that was
	// matched.
	raw string
}

// normalise turns the escaped request path (URL.EscapedPath) of a request
// mounted at prefix into the rest path below the prefix.
//
// prefix must start and end with "/". The rules, in order:
//
//   - the escaped path must start with prefix literally (an encoded spelling
//     of the prefix is refused);
//   - backslashes, encoded slashes and encoded backslashes (%2f, %5c, any
//     case) are refused anywhere, and so are control characters, literal or
//     encoded (%00-%1f, %7f), and malformed percent-encoding;
//   - empty segments ("//") are refused, except for one trailing "/";
//   - ";" is refused anywhere, literal or encoded: servers such as Tomcat
//     and Spring treat "..;" as ".." with a path parameter;
//   - a decoded segment must not contain "%" (that is, %25 is refused: a
//     server that decodes twice would see %2e%2e as ".."), and must be
//     valid UTF-8 (overlong forms such as %c0%ae for "." are refused);
//   - "." segments are dropped and ".." segments remove the previous one,
//     after percent-decoding (so %2e%2e counts as ".."); a ".." that would
//     climb above the mount point is refused.
//
// The result never contains "." or ".." segments nor empty segments other
// than a trailing one, and its raw form is rebuilt from the decoded
// segments.
func normalise(escaped, prefix string) (cleanPath, error) {
	if !strings.HasPrefix(escaped, prefix) {
		return cleanPath{}, fmt.Errorf("%w: not under %q", ErrPathRefused, prefix)
	}
	rest := escaped[len(prefix):]
	if strings.ContainsRune(rest, '\\') {
		return cleanPath{}, fmt.Errorf("%w: backslash", ErrPathRefused)
	}
	if strings.ContainsRune(rest, ';') {
		return cleanPath{}, fmt.Errorf("%w: path parameter (;)", ErrPathRefused)
	}
	lower := strings.ToLower(rest)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return cleanPath{}, fmt.Errorf("%w: encoded separator", ErrPathRefused)
	}
	var segs []string    // raw spelling
	var decoded []string // decoded spelling
	trailing := false
	parts := strings.Split(rest, "/")
	for i, raw := range parts {
		if raw == "" {
			if i == len(parts)-1 && i > 0 {
				trailing = true
				continue
			}
			if i == 0 && len(parts) == 1 {
				continue // exactly the mount point
			}
			return cleanPath{}, fmt.Errorf("%w: empty segment", ErrPathRefused)
		}
		dec, err := url.PathUnescape(raw)
		if err != nil {
			return cleanPath{}, fmt.Errorf("%w: bad escape", ErrPathRefused)
		}
		for j := 0; j < len(dec); j++ {
			switch c := dec[j]; {
			case c < 0x20 || c == 0x7f || c == '/' || c == '\\':
				return cleanPath{}, fmt.Errorf("%w: control character or separator in segment", ErrPathRefused)
			case c == ';':
				return cleanPath{}, fmt.Errorf("%w: path parameter (;)", ErrPathRefused)
			case c == '%':
				return cleanPath{}, fmt.Errorf("%w: encoded percent sign (%%25)", ErrPathRefused)
			}
		}
		if !utf8.ValidString(dec) {
			return cleanPath{}, fmt.Errorf("%w: invalid or overlong UTF-8", ErrPathRefused)
		}
		switch dec {
		case ".":
			trailing = i == len(parts)-1
			continue
		case "..":
			if len(segs) == 0 {
				return cleanPath{}, fmt.Errorf("%w: escapes the mount point", ErrPathRefused)
			}
			segs = segs[:len(segs)-1]
			decoded = decoded[:len(decoded)-1]
			trailing = i == len(parts)-1
			continue
		}
		segs = append(segs, url.PathEscape(dec))
		decoded = append(decoded, dec)
		trailing = false
	}
	cp := cleanPath{
		decoded: "/" + strings.Join(decoded, "/"),
		raw:     "/" + strings.Join(segs, "/"),
	}
	if trailing && len(segs) > 0 {
		cp.decoded += "/"
		cp.raw += "/"
	}
	return cp, nil
}

// glob is a compiled allow_paths pattern.
//
// Syntax: a pattern starts with "/" and is split into segments at "/". In a
// segment, "*" matches any run of characters (possibly empty) other than "/";
// every other character matches itself (case-sensitive; no "?" or classes).
// A last segment that is exactly "**" matches the rest of the path: zero or
// more further segments, so "/media/**" matches "/media", "/media/" and
// "/media/a/b". "**" anywhere else is an error. Patterns match the decoded,
// normalised path below the mount point, never the query string.
type glob struct {
	src  string
	segs []string // "**" only as the last
	rest bool     // last segment was "**"
}

func compileGlob(p string) (glob, error) {
	if !strings.HasPrefix(p, "/") {
		return glob{}, fmt.Errorf("allow_paths %q: must start with \"/\"", p)
	}
	segs := strings.Split(p[1:], "/")
	g := glob{src: p}
	for i, s := range segs {
		if strings.Contains(s, "**") {
			if s != "**" || i != len(segs)-1 {
				return glob{}, fmt.Errorf("allow_paths %q: \"**\" is only allowed as the whole last segment", p)
			}
			g.rest = true
			segs = segs[:i]
			break
		}
	}
	g.segs = segs
	return g, nil
}

// match reports whether the decoded path p (leading "/") matches the glob.
func (g glob) match(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	parts := strings.Split(p[1:], "/")
	if g.rest {
		if len(parts) < len(g.segs) {
			return false
		}
		// "/media/**" also matches "/media": the pattern's segments are
		// checked, whatever follows is accepted.
		for i, s := range g.segs {
			if !matchSegment(s, parts[i]) {
				return false
			}
		}
		return true
	}
	if len(parts) != len(g.segs) {
		return false
	}
	for i, s := range g.segs {
		if !matchSegment(s, parts[i]) {
			return false
		}
	}
	return true
}

// matchSegment matches one segment against a pattern where "*" stands for
// any run of characters. It is linear-time backtracking on the last star.
func matchSegment(pat, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for sx < len(s) {
		switch {
		case px < len(pat) && pat[px] == '*':
			starP, starS = px, sx
			px++
		case px < len(pat) && pat[px] == s[sx]:
			px++
			sx++
		case starP >= 0:
			px = starP + 1
			starS++
			sx = starS
		default:
			return false
		}
	}
	for px < len(pat) && pat[px] == '*' {
		px++
	}
	return px == len(pat)
}
