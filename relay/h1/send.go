package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Send is the relay's own way to deliver: the request already in wire
// form (no http.Request, no http.Client, no context per attempt), the
// answer read to its end and reduced to what a delivery needs (Reply).
// It shares the Transport's pool of connections with RoundTrip.

// Dest is where a Request goes: the address dialed (the pool's key), the
// Host field and the request-target, as DestOf derives them from a URL.
type Dest struct {
	Addr   string
	Host   string
	Target string
}

// DestOf derives the Dest of an http:// URL as net/http's Transport would
// send a request to it: the Host field punycoded and without an IPv6
// zone (left empty when invalid, as net/http does), the request-target in
// origin form.
func DestOf(u *url.URL) (Dest, error) {
	if u.Scheme != "http" || u.Host == "" || u.User != nil {
		return Dest{}, fmt.Errorf("h1: %s: only http:// URLs with a host and no user info", u.Redacted())
	}
	host, err := httpguts.PunycodeHostPort(u.Host)
	if err != nil {
		return Dest{}, err
	}
	if !httpguts.ValidHostHeader(host) {
		host = ""
	}
	target := u.RequestURI()
	if strings.IndexFunc(target, isCTL) >= 0 {
		return Dest{}, errors.New("h1: control character in request URL")
	}
	return Dest{Addr: hostPort(u), Host: removeZone(host), Target: target}, nil
}

// Field is one header field of a Request.
type Field struct{ Name, Value string }

// Request is one delivery: Method to Dest with Fields and Body. The
// fields are written in their order after Host, User-Agent (the first
// such field's value, Go's default without one) and Content-Length; values are trimmed of
// spaces and tabs, and invalid names or values refuse the request, as in
// RoundTrip. Fields named Host, Content-Length, Transfer-Encoding or
// Trailer are left out, as RoundTrip leaves them out of a request's
// Header.
type Request struct {
	Method   string
	Dest     Dest
	Fields   []Field
	Body     []byte
	Deadline time.Time // bounds the exchange, the answer's body included; zero: none
}

// Reply is what Send keeps of an answer.
type Reply struct {
	Status     int
	RetryAfter string // the Retry-After field, "" without one
	// Snippet is the start of the body, at most as long as the buffer
	// given to Send; the rest is read and discarded (up to discardLimit).
	Snippet []byte
}

// discardLimit is how much of an answer's body Send reads past the
// snippet so the connection can carry the next request; a longer body
// closes the connection instead.
const discardLimit = 1 << 20

// Send writes r on a pooled keep-alive connection (or a new one), reads
// the final answer and its body, and returns the status, Retry-After and
// the body's first len(snippet) bytes (read into snippet). The
// connection goes back to the pool when the body was read to its end
// within discardLimit. As in RoundTrip, a request that fails before any
// byte of an answer on a connection that had been idle in the pool is
// sent once more on a new connection; nothing else is retried.
func (t *Transport) Send(r *Request, snippet []byte) (Reply, error) {
	e := encoders.Get().(*encoder)
	defer e.release()
	b, connClose, err := e.encodeFields(r)
	e.buf = b
	if err != nil {
		return Reply{}, err
	}
	for retried := false; ; retried = true {
		if expired(r.Deadline) {
			return Reply{}, fmt.Errorf("h1: %w", context.DeadlineExceeded)
		}
		var c *conn
		if !retried {
			c = t.get(r.Dest.Addr)
		}
		if c == nil {
			if c, err = t.dialBy(r.Dest.Addr, r.Deadline); err != nil {
				return Reply{}, err
			}
		}
		rep, err := c.send(r, b, connClose, snippet)
		if err == nil {
			return rep, nil
		}
		if retried || !c.used || !idleClose(err) || expired(r.Deadline) {
			return Reply{}, deadlineErr(r.Deadline, err)
		}
	}
}

func expired(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

// deadlineErr reports a read or write that failed on the deadline as the
// deadline's error.
func deadlineErr(dl time.Time, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && expired(dl) {
		return fmt.Errorf("h1: %w", context.DeadlineExceeded)
	}
	return err
}

// dialBy dials addr, bounded by the deadline when it has one.
func (t *Transport) dialBy(addr string, dl time.Time) (*conn, error) {
	ctx := context.Background()
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	return t.dial(ctx, addr)
}

// send writes buf on c and reads the answer with its body. On error c is
// closed; on success it is pooled or closed as its framing says.
func (c *conn) send(r *Request, buf []byte, connClose bool, snippet []byte) (Reply, error) {
	if err := c.nc.SetDeadline(r.Deadline); err != nil {
		c.close()
		return Reply{}, err
	}
	if err := c.writeRequest(buf); err != nil {
		c.close()
		return Reply{}, err
	}
	resp, f, err := readResponse(c.br, r.Method, c.t.headerLimit())
	if err != nil {
		c.close()
		return Reply{}, c.readErr(err)
	}
	if connClose {
		f.close = true // asked for: the backend ends the connection after this
	}
	rep := Reply{Status: resp.StatusCode}
	if v := resp.Header["Retry-After"]; len(v) > 0 {
		rep.RetryAfter = v[0]
	}
	bd := body{c: c, f: f}
	n, err := io.ReadFull(&bd, snippet)
	rep.Snippet = snippet[:n]
	if err == nil && !bd.done {
		// The rest is read so the connection can carry the next request;
		// a body longer than discardLimit leaves it unfinished, and Close
		// then closes the connection.
		io.CopyN(io.Discard, &bd, discardLimit)
	}
	// The answer came: its status stands even if its body did not end
	// well (the connection is then closed, not pooled).
	bd.Close()
	return rep, nil
}

// encodeFields renders r into e's buffer (see Request) and tells whether
// a Connection field asks for the connection to end after the answer.
func (e *encoder) encodeFields(r *Request) (b []byte, connClose bool, err error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	if !httpguts.ValidHeaderFieldName(method) {
		return nil, false, fmt.Errorf("h1: invalid method %q", method)
	}
	// User-Agent: the first field of that name (none when its value is
	// empty), else Go's default, as RoundTrip takes it from a Header.
	ua := defaultUserAgent
	for _, f := range r.Fields {
		if f.Name == "User-Agent" {
			ua = f.Value
			break
		}
	}
	if b, err = appendHead(e.buf[:0], method, r.Dest.Target, r.Dest.Host, ua, false, int64(len(r.Body))); err != nil {
		return nil, false, err
	}
	for _, f := range r.Fields {
		if strings.EqualFold(f.Name, "Connection") && httpguts.HeaderValuesContainsToken([]string{f.Value}, "close") {
			connClose = true
		}
		if b, err = appendField(b, f.Name, f.Value); err != nil {
			return nil, false, err
		}
	}
	b = append(b, "\r\n"...)
	return append(b, r.Body...), connClose, nil
}
