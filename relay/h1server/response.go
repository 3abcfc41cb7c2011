package h1server

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of the fast path, one per connection,
// reset for every request. As with net/http, the header is fixed when
// WriteHeader is called (or the first Write); the body is kept until the
// handler returns and sent with a Content-Length (net/http would switch to
// chunked past 2 KiB: the same answer, framed differently).
type response struct {
	header http.Header
	status int
	head   []byte // status line and the handler's fields, once written
	keys   []string
	body   []byte

	// what the handler's header said, at WriteHeader
	hasType, hasLength, hasDate, hasEncoding bool
	closeConn                                bool // Connection: close
	length                                   int64
}

// maxKeptBody is the largest body buffer a connection keeps between
// requests.
const maxKeptBody = 64 << 10

func (w *response) reset() {
	if w.header == nil {
		w.header = make(http.Header, 4)
	} else {
		clear(w.header)
	}
	w.status = 0
	w.head = w.head[:0]
	if cap(w.body) > maxKeptBody {
		w.body = nil
	}
	w.body = w.body[:0]
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader fixes the status and the header. Informational (1xx) codes
// are not sent: the fast path's handlers have no use for them.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
	w.head = appendStatusLine(w.head[:0], code)
	w.hasType, w.hasLength, w.hasDate, w.hasEncoding, w.closeConn = false, false, false, false, false
	w.keys = w.keys[:0]
	for k := range w.header {
		w.keys = append(w.keys, k)
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		if !httpguts.ValidHeaderFieldName(k) || suppressed(code, k) {
			continue
		}
		vv := w.header[k]
		switch k {
		case "Content-Type":
			w.hasType = true
		case "Content-Length":
			if len(vv) == 0 {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(vv[0]), 10, 64)
			if err != nil || n < 0 {
				continue // net/http drops an unusable one too
			}
			w.hasLength, w.length = true, n
		case "Date":
			w.hasDate = true
		case "Content-Encoding":
			w.hasEncoding = len(vv) > 0 && vv[0] != ""
		case "Transfer-Encoding":
			continue // the fast path always frames by length
		case "Connection":
			w.closeConn = httpguts.HeaderValuesContainsToken(vv, "close")
		}
		for _, v := range vv {
			w.head = append(w.head, k...)
			w.head = append(w.head, ": "...)
			w.head = appendFieldValue(w.head, v)
			w.head = append(w.head, "\r\n"...)
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if err := w.startBody(); err != nil {
		return 0, err
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *response) WriteString(s string) (int, error) {
	if err := w.startBody(); err != nil {
		return 0, err
	}
	w.body = append(w.body, s...)
	return len(s), nil
}

// startBody fixes the header at 200 if nothing fixed it yet, and says
// whether the status lets a body follow.
func (w *response) startBody() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return http.ErrBodyNotAllowed
	}
	return nil
}

// writeTo writes the answer to bw, with Connection: close when closeAfter;
// it reports whether the connection must close after it (closeAfter, the
// handler asked for it, or the body does not match the length it set).
func (w *response) writeTo(bw *bufio.Writer, closeAfter bool) bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	bw.Write(w.head)
	if !w.hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	withBody := bodyAllowed(w.status)
	if withBody {
		if !w.hasType && !w.hasEncoding && len(w.body) > 0 {
			bw.WriteString("Content-Type: ")
			bw.WriteString(http.DetectContentType(w.body))
			bw.WriteString("\r\n")
		}
		if !w.hasLength {
			bw.WriteString("Content-Length: ")
			var num [20]byte
			bw.Write(strconv.AppendInt(num[:0], int64(len(w.body)), 10))
			bw.WriteString("\r\n")
		} else if w.length != int64(len(w.body)) {
			closeAfter = true // the framing it declared is wrong
		}
	}
	if closeAfter && !w.closeConn {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if withBody {
		body := w.body
		if w.hasLength && int64(len(body)) > w.length {
			body = body[:w.length]
		}
		bw.Write(body)
	}
	return closeAfter || w.closeConn
}

// bodyAllowed is net/http's bodyAllowedForStatus.
func bodyAllowed(code int) bool {
	switch {
	case code >= 100 && code <= 199:
		return false
	case code == http.StatusNoContent, code == http.StatusNotModified:
		return false
	}
	return true
}

// suppressed reports the fields net/http leaves out for a status without
// a body.
func suppressed(code int, key string) bool {
	switch code {
	case http.StatusNotModified:
		return key == "Content-Type" || key == "Content-Length" || key == "Transfer-Encoding"
	case http.StatusNoContent:
		return key == "Content-Length" || key == "Transfer-Encoding"
	}
	return false
}

const statusOK = "HTTP/1.1 200 OK\r\n"

func appendStatusLine(b []byte, code int) []byte {
	if code == http.StatusOK {
		return append(b, statusOK...)
	}
	b = append(b, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, text...)
	} else {
		b = fmt.Appendf(b, "%03d status code %d", code, code)
	}
	return append(b, "\r\n"...)
}

// appendFieldValue appends v with CR and LF turned into spaces, as net/http
// writes a field value.
func appendFieldValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// httpDate is the Date field's value, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &cachedDate{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	sec  int64
	text string
}

var dateCache atomic.Pointer[cachedDate]
