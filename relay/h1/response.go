package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// bodyKind is how a response's body is delimited.
type bodyKind uint8

const (
	noBody     bodyKind = iota // HEAD, 204, 304, Content-Length: 0
	length                     // Content-Length
	chunked                    // Transfer-Encoding: chunked
	untilClose                 // neither: the body ends when the server closes
)

// framing is how to read a response's body and whether its connection can
// carry another exchange after it.
type framing struct {
	kind  bodyKind
	n     int64 // bytes left, with length
	close bool  // the connection ends with this response
	limit int   // bound on chunk trailers, as on the head
}

// readResponse reads a response head from br: 1xx responses are skipped,
// the status line and header fields parsed into an http.Response without
// a Body, and the body's framing decided. An error before any byte is
// wrapped in noBytes.
func readResponse(br *bufio.Reader, method string, limit int) (*http.Response, framing, error) {
	for first := true; ; first = false {
		resp, err := readHead(br, limit, first)
		if err != nil {
			return nil, framing{}, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, framing{}, errors.New("h1: unexpected 101 Switching Protocols")
		case resp.StatusCode < 200:
			continue // 100 Continue, 103 Early Hints: the final answer follows
		}
		f, err := frame(resp, method)
		if err != nil {
			return nil, framing{}, err
		}
		f.limit = limit
		return resp, f, nil
	}
}

// readHead reads one status line and its header fields, at most limit
// bytes of them.
func readHead(br *bufio.Reader, limit int, first bool) (*http.Response, error) {
	var arr [2048]byte
	head := arr[:0]
	lineStart, lines := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		head = append(head, line...)
		if len(head) > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, limit)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(head) == 0 && first {
				return nil, noBytes{err}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("h1: reading response head: %w", err)
		}
		l := head[lineStart:]
		if len(l) == 1 || len(l) == 2 && l[0] == '\r' {
			head = head[:lineStart]
			break
		}
		lines++
		lineStart = len(head)
	}
	return parseHead(string(head), lines-1)
}

// parseHead parses a head (lines ending in \n or \r\n, without the empty
// line) holding n header fields after the status line. The values are
// substrings of block: one allocation for all of them.
func parseHead(block string, n int) (*http.Response, error) {
	line, rest := nextLine(block)
	resp := &http.Response{}
	if len(line) < 12 || !strings.HasPrefix(line, "HTTP/1.") || line[8] != ' ' || (line[7] != '0' && line[7] != '1') ||
		(len(line) > 12 && line[12] != ' ') {
		return nil, fmt.Errorf("h1: malformed status line %q", trunc(line))
	}
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = line[:8], 1, int(line[7]-'0')
	code := line[9:12]
	for i := 0; i < 3; i++ {
		if code[i] < '0' || code[i] > '9' {
			return nil, fmt.Errorf("h1: malformed status code %q", code)
		}
	}
	resp.StatusCode = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if resp.StatusCode < 100 {
		return nil, fmt.Errorf("h1: malformed status code %q", code)
	}
	resp.Status = line[9:]
	vals := make([]string, max(n, 0))
	h := make(http.Header, max(n, 0))
	for i := 0; rest != ""; i++ {
		line, rest = nextLine(rest)
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("h1: folded header line %q", trunc(line))
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(line[:colon]) {
			return nil, fmt.Errorf("h1: malformed header line %q", trunc(line))
		}
		v := strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("h1: invalid header value in %q", trunc(line))
		}
		k := http.CanonicalHeaderKey(line[:colon])
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
	resp.Header = h
	return resp, nil
}

// nextLine splits off the first line of s, its \r\n or \n removed.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		line, rest = s, ""
	} else {
		line, rest = s[:i], s[i+1:]
	}
	return strings.TrimSuffix(line, "\r"), rest
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// frame decides how the body of resp is delimited (RFC 9112 §6.3) and sets
// resp.ContentLength, TransferEncoding and Close.
func frame(resp *http.Response, method string) (framing, error) {
	var f framing
	h := resp.Header
	conn := h["Connection"]
	f.close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		resp.ProtoMinor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	cl, clErr := contentLength(h["Content-Length"])
	switch {
	case method == http.MethodHead:
		f.kind = noBody
		resp.ContentLength = -1
		if clErr == nil && cl >= 0 {
			resp.ContentLength = cl
		}
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified:
		f.kind = noBody
	case h["Transfer-Encoding"] != nil:
		te := h["Transfer-Encoding"]
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return f, fmt.Errorf("h1: unsupported transfer encoding %q", strings.Join(te, ", "))
		}
		delete(h, "Transfer-Encoding")
		resp.TransferEncoding = []string{"chunked"}
		if h["Content-Length"] != nil {
			// Both: chunked wins, and the connection must not be
			// trusted with another exchange (RFC 9112 §6.3).
			delete(h, "Content-Length")
			f.close = true
		}
		f.kind = chunked
		resp.ContentLength = -1
	case clErr != nil:
		return f, clErr
	case cl == 0:
		f.kind = noBody
	case cl > 0:
		f.kind, f.n = length, cl
		resp.ContentLength = cl
	default:
		f.kind, f.close = untilClose, true
		resp.ContentLength = -1
	}
	resp.Close = f.close
	return f, nil
}

// contentLength parses the Content-Length values; -1 when there are none.
// Several values must agree.
func contentLength(vs []string) (int64, error) {
	if len(vs) == 0 {
		return -1, nil
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return 0, fmt.Errorf("h1: conflicting Content-Length values %q", strings.Join(vs, ", "))
		}
	}
	v := vs[0]
	if v == "" || len(v) > 18 || strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("h1: bad Content-Length %q", trunc(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("h1: bad Content-Length %q", trunc(v))
	}
	return n, nil
}

// readChunkSize reads a chunk-size line: hex digits, an optional
// extension, CRLF.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return 0, errors.New("h1: chunk size line too long")
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, fmt.Errorf("h1: bad chunk size %q", line)
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, fmt.Errorf("h1: bad chunk size %q", line)
		}
		n = n<<4 | int64(c)
	}
	return n, nil
}
