package h1

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// defaultUserAgent is what net/http sends when the request has none, kept
// so a backend sees the same request from either transport.
const defaultUserAgent = "Go-http-client/1.1"

// maxPooledBuffer is the largest request buffer kept for reuse.
const maxPooledBuffer = 64 << 10

type encoder struct {
	buf  []byte
	keys []string
}

var encoders = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 4<<10)} }}

// release gives e back for reuse.
func (e *encoder) release() {
	if cap(e.buf) > maxPooledBuffer {
		e.buf = nil
	}
	e.buf = e.buf[:0]
	clear(e.keys)
	e.keys = e.keys[:0]
	encoders.Put(e)
}

// encodeRequest renders req as net/http's Transport would on the wire —
// request line, Host, User-Agent, Content-Length, then the other header
// fields sorted by name, values trimmed — followed by the body, into one
// buffer to be written at once: e.buf, until e.release. It refuses what net/http refuses (invalid
// method, header names or values, control bytes in the target).
func encodeRequest(req *http.Request) (*encoder, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !httpguts.ValidHeaderFieldName(method) {
		return nil, fmt.Errorf("h1: invalid method %q", method)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	host, err := httpguts.PunycodeHostPort(host)
	if err != nil {
		return nil, err
	}
	if !httpguts.ValidHostHeader(host) {
		host = "" // as net/http does: an invalid Host is sent empty, never altered
	}
	host = removeZone(host)
	ruri := req.URL.RequestURI()
	if strings.IndexFunc(ruri, isCTL) >= 0 {
		return nil, errors.New("h1: control character in request URL")
	}

	e := encoders.Get().(*encoder)
	b, err := e.encode(req, method, host, ruri)
	e.buf = b
	if err != nil {
		e.release()
		return nil, err
	}
	return e, nil
}

func (e *encoder) encode(req *http.Request, method, host, ruri string) ([]byte, error) {
	ua := defaultUserAgent
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	connClose := req.Close && !httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("h1: invalid header field name %q", k) // even without values, as net/http
		}
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	b, err := appendHead(e.buf[:0], method, ruri, host, ua, connClose, req.ContentLength)
	if err != nil {
		return nil, err
	}
	for _, k := range e.keys {
		for _, v := range req.Header[k] {
			if b, err = appendField(b, k, v); err != nil {
				return nil, err
			}
		}
	}
	b = append(b, "\r\n"...)
	if n := req.ContentLength; n > 0 {
		b = slices.Grow(b, int(n)+1)
		start := len(b)
		b = b[:start+int(n)]
		if _, err := io.ReadFull(req.Body, b[start:]); err != nil {
			return nil, fmt.Errorf("h1: request body shorter than its ContentLength %d: %w", n, err)
		}
		// One more byte must not be there.
		if m, _ := io.ReadFull(req.Body, b[len(b):len(b)+1]); m > 0 {
			return nil, fmt.Errorf("h1: request body longer than its ContentLength %d", n)
		}
	}
	return b, nil
}

// appendHead appends the start of a request's head to b as net/http's
// Transport writes it: the request line, Host, User-Agent (ua, trimmed;
// no line when empty), Connection: close when asked, and Content-Length
// (when n > 0 or the method carries a body). The fields follow
// (appendField), then the blank line.
func appendHead(b []byte, method, target, host, ua string, connClose bool, n int64) ([]byte, error) {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	if ua = strings.TrimSpace(ua); ua != "" {
		if !httpguts.ValidHeaderFieldValue(ua) {
			return nil, errors.New("h1: invalid User-Agent header value")
		}
		b = append(b, "User-Agent: "...)
		b = append(b, ua...)
		b = append(b, "\r\n"...)
	}
	if connClose {
		b = append(b, "Connection: close\r\n"...)
	}
	if n > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, n, 10)
		b = append(b, "\r\n"...)
	}
	return b, nil
}

// appendField appends one header field, its value trimmed; Host,
// User-Agent, Content-Length, Transfer-Encoding and Trailer are left out
// (appendHead writes them, or nobody does), and an invalid name or value
// refuses the request.
func appendField(b []byte, k, v string) ([]byte, error) {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return b, nil
	}
	if !httpguts.ValidHeaderFieldName(k) {
		return nil, fmt.Errorf("h1: invalid header field name %q", k)
	}
	v = strings.Trim(v, " \t")
	if !httpguts.ValidHeaderFieldValue(v) {
		return nil, fmt.Errorf("h1: invalid header field value for %q", k)
	}
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...), nil
}

func isCTL(r rune) bool { return r < ' ' || r == 0x7f }

// removeZone drops an IPv6 zone from a Host value (RFC 6874).
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

// hostPort is the address to dial for u, port 80 when it has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
