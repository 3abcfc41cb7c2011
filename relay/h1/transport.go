// Package h1 is a lean HTTP/1.1 client for the relay's deliveries to
// plain-http backends. It implements http.RoundTripper: one synchronous
// exchange per call on a pooled keep-alive connection, with no goroutine
// per connection, the request written with one write and the response
// parsed by hand.
//
// Start at Transport.RoundTrip. The request is encoded by writeRequest
// (request.go) and written by conn.writeRequest, mostly from inside the
// wait for its answer (package armed); the response head is read by
// readResponse and its body framed by the readers in body.go. Requests it
// does not handle (other schemes, bodies of unknown length, CONNECT,
// protocol upgrades) go to Transport.Fallback, normally a net/http
// Transport.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/edgerelay/edgerelay/relay/armed"
	"golang.org/x/net/http/httpguts"
)

// ErrUnsupported is returned for a request this transport does not handle
// when it has no Fallback.
var ErrUnsupported = errors.New("h1: request not supported by this transport")

// ErrHeaderTooLarge is returned when a response's status line and headers
// exceed MaxResponseHeaderBytes.
var ErrHeaderTooLarge = errors.New("h1: response header too large")

// Transport is an HTTP/1.1 client transport for http:// URLs without a
// proxy. The zero value is usable; it must not be copied after first use.
type Transport struct {
	// Fallback carries the requests this transport does not handle: other
	// schemes than http, bodies of unknown length (ContentLength < 0, or
	// 0 with a body), Transfer-Encoding or trailers on the request,
	// CONNECT and Upgrade. nil: they fail with ErrUnsupported.
	Fallback http.RoundTripper
	// DialTimeout bounds a TCP connect. Default 5 s.
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive period of the connections. Default
	// 30 s; negative turns keep-alive probes off.
	KeepAlive time.Duration
	// IdleTimeout closes a pooled connection left idle that long. Default
	// 90 s.
	IdleTimeout time.Duration
	// MaxIdlePerHost is how many idle connections are kept per host:port;
	// more are closed when their exchange ends. Default 2.
	MaxIdlePerHost int
	// MaxResponseHeaderBytes bounds a response's status line and header
	// fields (each 1xx response counted on its own). Default 64 KiB.
	MaxResponseHeaderBytes int

	mu   sync.Mutex
	idle map[string][]*conn // by host:port, most recently used last
}

const (
	defaultDialTimeout = 5 * time.Second
	defaultKeepAlive   = 30 * time.Second
	defaultIdleTimeout = 90 * time.Second
	defaultHeaderBytes = 64 << 10
	readBufferSize     = 4 << 10
)

func (t *Transport) headerLimit() int {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return defaultHeaderBytes
}

// conn is one TCP connection to a backend. It belongs either to the pool
// or to exactly one exchange (and then to its response body).
type conn struct {
	t     *Transport
	key   string
	nc    net.Conn
	ar    *armed.Reader // what br reads: writes the requests it awaits the answers of
	br    *bufio.Reader
	req   []byte       // the request ar writes (see writeRequest)
	write func() error // c.writeReq, bound once
	timer *time.Timer  // idle timeout, armed while pooled
	used  bool         // carried an exchange before: its peer may have closed it while idle
	since time.Time    // when it was last put in the pool
}

// armedWithin is how long a connection may have been idle in the pool
// and still have its next request written as its answer is awaited (see
// package armed). A peer that ended the connection while it was idle said
// so with readiness that the armed wait forgets: after a longer idle time
// the request is written and read as usual, and a read finds the end at
// once. (A peer that closes outright is noticed either way: the request
// draws a reset, which wakes the wait.)
const armedWithin = time.Second

// RoundTrip sends req and reads the response head. The response body must
// be closed; the connection goes back to the pool only if the body was
// read to its end. A request that fails before any byte of a response on
// a connection that had been idle in the pool is sent once more on a new
// connection (see roundTrip); nothing else is retried.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !supported(req) {
		if t.Fallback != nil {
			return t.Fallback.RoundTrip(req)
		}
		closeBody(req)
		return nil, ErrUnsupported
	}
	e, err := encodeRequest(req)
	closeBody(req)
	if err != nil {
		return nil, err
	}
	resp, err := t.roundTrip(req, e.buf)
	e.release()
	return resp, err
}

// supported tells whether req is one this transport sends itself.
func supported(req *http.Request) bool {
	u := req.URL
	if u == nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
		return false
	}
	if req.Method == http.MethodConnect || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	if req.ContentLength < 0 || req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody {
		return false // length unknown: net/http would send it chunked
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	return true
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// roundTrip writes the encoded request buf and reads the response head.
//
// A connection taken from the pool may have been closed by the backend
// while it sat idle (its keep-alive timeout ran out, it restarted); that
// shows as a failed write, or an EOF or reset before the first byte of the
// response. Only then is the request sent again, once, on a new
// connection. The backend may in rare cases have received the first copy
// (it closed right after reading it): deliveries are at-least-once and
// backends de-duplicate by X-Relay-Event-Id, so a duplicate is allowed
// where a lost event is not.
func (t *Transport) roundTrip(req *http.Request, buf []byte) (*http.Response, error) {
	ctx := req.Context()
	key := hostPort(req.URL)
	for retried := false; ; retried = true {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var c *conn
		if !retried {
			c = t.get(key)
		}
		if c == nil {
			var err error
			if c, err = t.dial(ctx, key); err != nil {
				return nil, err
			}
		}
		resp, err := c.exchange(ctx, req, buf)
		if err == nil {
			return resp, nil
		}
		if retried || !c.used || !idleClose(err) || ctx.Err() != nil {
			return nil, contextErr(ctx, err)
		}
	}
}

// idleClose tells whether err is what a connection closed by its peer
// while idle looks like before any response byte.
func idleClose(err error) bool {
	var nb noBytes
	if !errors.As(err, &nb) {
		return false
	}
	return errors.Is(nb.err, io.EOF) || errors.Is(nb.err, io.ErrUnexpectedEOF) ||
		errors.Is(nb.err, syscall.ECONNRESET) || errors.Is(nb.err, syscall.EPIPE) ||
		errors.Is(nb.err, syscall.ECONNABORTED)
}

// noBytes marks an error that came before any byte of the response.
type noBytes struct{ err error }

func (e noBytes) Error() string { return e.err.Error() }
func (e noBytes) Unwrap() error { return e.err }

// contextErr reports the context's error when a read or write failed
// because the context ended: its deadline or cancellation was set on the
// connection, and the socket's deadline may fire a moment before the
// context's own timer.
func contextErr(ctx context.Context, err error) error {
	if ctx == nil {
		return err // Send: no context, a deadline only
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("h1: %w", cerr)
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("h1: %w", context.DeadlineExceeded)
	}
	return err
}

// exchange writes buf on c and reads the response head. On error c is
// closed.
func (c *conn) exchange(ctx context.Context, req *http.Request, buf []byte) (*http.Response, error) {
	// The context bounds the whole exchange, body included: its deadline
	// becomes the connection's, its cancellation a deadline in the past.
	dl, _ := ctx.Deadline()
	if err := c.nc.SetDeadline(dl); err != nil {
		c.close()
		return nil, err
	}
	var stop func() bool
	if ctx.Done() != nil {
		nc := c.nc
		stop = context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		if stop != nil {
			stop()
		}
		c.close()
		return nil, err
	}
	if err := c.writeRequest(buf); err != nil {
		return fail(err)
	}
	resp, f, err := readResponse(c.br, req.Method, c.t.headerLimit())
	if err != nil {
		return fail(c.readErr(err))
	}
	resp.Request = req
	if req.Close || httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close") {
		f.close = true // asked for: the backend ends the connection after this
	}
	body := &body{c: c, f: f, stop: stop, ctx: ctx}
	if f.kind == noBody {
		// Nothing to read: the connection is free now.
		body.done = true
		body.Close()
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

var aLongTimeAgo = time.Unix(1, 0)

// writeRequest writes buf, or arms c.ar to write it as the answer is
// awaited: when nothing of an earlier answer is left unread and the
// connection was not idle long (see armedWithin).
func (c *conn) writeRequest(buf []byte) error {
	if c.br.Buffered() == 0 && (!c.used || time.Since(c.since) < armedWithin) {
		c.req = buf
		if c.ar.Arm(c.write) {
			return nil
		}
		c.req = nil
	}
	if _, err := c.nc.Write(buf); err != nil {
		return noBytes{fmt.Errorf("h1: writing request: %w", err)}
	}
	return nil
}

func (c *conn) writeReq() error {
	buf := c.req
	c.req = nil
	_, err := c.nc.Write(buf)
	return err
}

// readErr is the error of an exchange whose answer could not be read:
// the armed request's own write error when that failed.
func (c *conn) readErr(err error) error {
	c.req = nil
	if werr := c.ar.WriteErr(); werr != nil {
		return noBytes{fmt.Errorf("h1: writing request: %w", werr)}
	}
	return err
}

func (c *conn) close() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.nc.Close()
}

// dial opens a new connection to key.
func (t *Transport) dial(ctx context.Context, key string) (*conn, error) {
	d := net.Dialer{Timeout: t.DialTimeout, KeepAlive: t.KeepAlive}
	if d.Timeout <= 0 {
		d.Timeout = defaultDialTimeout
	}
	if d.KeepAlive == 0 {
		d.KeepAlive = defaultKeepAlive
	}
	nc, err := d.DialContext(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	return newConn(t, key, nc), nil
}

func newConn(t *Transport, key string, nc net.Conn) *conn {
	c := &conn{t: t, key: key, nc: nc, ar: armed.NewReader(nc)}
	c.br = bufio.NewReaderSize(c.ar, readBufferSize)
	c.write = c.writeReq
	return c
}

// get takes the most recently used idle connection to key, if any.
func (t *Transport) get(key string) *conn {
	t.mu.Lock()
	l := t.idle[key]
	n := len(l)
	if n == 0 {
		t.mu.Unlock()
		return nil
	}
	c := l[n-1]
	l[n-1] = nil
	t.idle[key] = l[:n-1]
	t.mu.Unlock()
	// If the idle timer fired meanwhile, expire finds c gone from the
	// pool and leaves it alone.
	c.timer.Stop()
	return c
}

// put returns c to the pool, or closes it when the pool of its host is
// full.
func (t *Transport) put(c *conn) {
	c.used, c.since = true, time.Now()
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 2
	}
	idle := t.IdleTimeout
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	t.mu.Lock()
	l := t.idle[c.key]
	if len(l) >= max {
		t.mu.Unlock()
		c.close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[string][]*conn)
	}
	t.idle[c.key] = append(l, c)
	if c.timer == nil {
		c.timer = time.AfterFunc(idle, func() { t.expire(c) })
	} else {
		c.timer.Reset(idle)
	}
	t.mu.Unlock()
}

// expire closes c if it is still idle in the pool.
func (t *Transport) expire(c *conn) {
	t.mu.Lock()
	l := t.idle[c.key]
	for i, x := range l {
		if x == c {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			t.idle[c.key] = l[:len(l)-1]
			t.mu.Unlock()
			c.nc.Close()
			return
		}
	}
	t.mu.Unlock()
}

// CloseIdleConnections closes the pooled connections (and the Fallback's,
// if it has such a method). Connections in use stay open and are pooled
// when their exchange ends.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, l := range idle {
		for _, c := range l {
			c.close()
		}
	}
	if f, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}
