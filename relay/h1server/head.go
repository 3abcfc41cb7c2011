package h1server

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxFields is the most header fields a head served by the fast path has;
// more go to net/http.
const maxFields = 100

// head is a request head the fast path serves, parsed from the read buffer.
type head struct {
	size int           // bytes of the head, the blank line included
	req  *http.Request // Close: the client said Connection: close
}

var crlfcrlf = []byte("\r\n\r\n")

// headEnd returns the length of the head at the start of buf (its blank
// line included), searching from from, or -1 when buf holds no whole head.
func headEnd(buf []byte, from int) int {
	i := bytes.Index(buf[from:], crlfcrlf)
	if i < 0 {
		return -1
	}
	return from + i + len(crlfcrlf)
}

// parseHead parses raw, a whole head ending in CRLF CRLF, into the request
// net/http would read from it, a copy of base (nil: a zero Request) for what
// the head does not say. ok is false for any head the fast path does
// not serve (see the package comment): that head is left to net/http, which
// answers it as it always has, so this parser only has to be right about
// the heads it accepts, and conservative about everything else.
func parseHead(raw []byte, base *http.Request) (h head, ok bool) {
	s := string(raw) // one allocation for every string of the request
	eol := strings.Index(s, "\r\n")
	method, rest, ok1 := strings.Cut(s[:eol], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method != http.MethodPost || proto != "HTTP/1.1" || !plainTarget(target) {
		return head{}, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return head{}, false
	}
	lines := s[eol+2 : len(s)-2] // every field line, each ending in CRLF
	n := strings.Count(lines, "\r\n")
	if n > maxFields {
		return head{}, false
	}
	hdr := make(http.Header, n)
	vals := make([]string, n) // backing arrays, one value each
	host, hosts := "", 0
	length := int64(-1)
	closing := false
	for lines != "" {
		var line string
		line, lines, _ = strings.Cut(lines, "\r\n")
		name, value, found := strings.Cut(line, ":")
		// No name, whitespace before the colon or as the first byte
		// (obs-fold), a byte outside tchar: not served here.
		if !found || !httpguts.ValidHeaderFieldName(name) {
			return head{}, false
		}
		value = strings.Trim(value, " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return head{}, false
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			host, hosts = value, hosts+1
		case "Content-Length":
			if length >= 0 {
				return head{}, false
			}
			if length = parseLength(value); length < 0 {
				return head{}, false
			}
		case "Connection":
			c, ok := connectionClose(value)
			if !ok {
				return head{}, false
			}
			closing = closing || c
		case "Transfer-Encoding", "Expect", "Upgrade", "Pragma", "Trailer", "Te":
			return head{}, false
		}
		if old, dup := hdr[key]; dup {
			hdr[key] = append(old, value)
		} else {
			vals[0] = value
			hdr[key] = vals[:1:1]
			vals = vals[1:]
		}
	}
	if hosts != 1 || host == "" || !httpguts.ValidHostHeader(host) || length < 0 {
		return head{}, false
	}
	delete(hdr, "Host")
	r := new(http.Request)
	if base != nil {
		*r = *base // its context, which has no exported field
	}
	r.Method, r.URL, r.RequestURI = method, u, target
	r.Proto, r.ProtoMajor, r.ProtoMinor = proto, 1, 1
	r.Header, r.Host = hdr, host
	r.ContentLength, r.Close = length, closing
	return head{size: len(raw), req: r}, true
}

// plainTarget reports whether target is in origin form ("/path?query")
// with only visible ASCII.
func plainTarget(target string) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: digits only, at most 18 of
// them; -1 otherwise.
func parseLength(v string) int64 {
	if v == "" || len(v) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// connectionClose reads a Connection value: closing is true when it has the
// close token; ok is false for any token other than close and keep-alive
// (an upgrade, a hop-by-hop header list: net/http's business).
func connectionClose(v string) (closing, ok bool) {
	for tok := range strings.SplitSeq(v, ",") {
		switch tok = strings.Trim(tok, " \t"); {
		case strings.EqualFold(tok, "close"):
			closing = true
		case strings.EqualFold(tok, "keep-alive"):
		default:
			return false, false
		}
	}
	return closing, true
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey without an allocation
// for a name already in canonical form (what senders mostly send).
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}
