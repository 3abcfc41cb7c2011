// Package h1server serves the callback hot path of a plain-TCP listener:
// HTTP/1.1 requests read and answered without net/http's per-request
// machinery (a context and a response object per request, and a goroutine
// that reads ahead on the connection after every request body to notice a
// client that goes away).
//
// Start with Server.Serve and Server.Handoff. For each request the server
// finds the head in the connection's read buffer without consuming it
// (head.go) and serves the request itself only when the head is plainly what
// a provider sends: POST, HTTP/1.1, one valid Host, one Content-Length, no
// Transfer-Encoding, Expect, Upgrade or Pragma, every field valid, the whole
// head within the buffer; and Claim accepts it. Any other request goes, with
// its connection and every byte already read, to the net/http server that
// serves Handoff(): 400s, 431s, chunked bodies, 100-continue and everything
// else keep net/http's exact answers, and the connection stays with net/http
// from then on.
//
// Handlers see a regular *http.Request and http.ResponseWriter (response.go).
// A response is buffered until the handler returns and sent with a
// Content-Length; it is written to the socket when no further request is
// already buffered (pipelined requests share one write), by the read that
// awaits the next request (package armed; see conn.awaitRequest).
package h1server

import (
	"bufio"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerelay/edgerelay/relay/armed"
)

// Server is the fast path of one listener. Set the fields before Serve;
// they must not change afterwards.
type Server struct {
	// Handler answers the requests the fast path serves.
	Handler http.Handler
	// Claim reports whether the fast path serves a request whose head is
	// plain (see the package comment); false hands the connection to
	// net/http. Nil claims every plain request.
	Claim func(*http.Request) bool
	// ReadTimeout bounds reading a request, head and body, from its first
	// byte; IdleTimeout bounds the wait for the next request on a kept-alive
	// connection; WriteTimeout bounds the handler and the write of its
	// answer, from the end of the head. Zero means no limit, as in
	// net/http.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ErrorLog receives handler panics (default the log package's logger).
	ErrorLog *log.Logger
	// OnHandoff, when set, is called for every connection handed to
	// net/http (for a metric).
	OnHandoff func()

	once     sync.Once
	handoff  *handoffListener
	shutting atomic.Bool

	mu    sync.Mutex
	ln    net.Listener
	conns map[*conn]struct{}
}

// readBufferSize is the connection's read buffer and so the largest head the
// fast path serves; a larger head (net/http allows 64 KiB) is handed off.
const readBufferSize = 8 << 10

const writeBufferSize = 4 << 10

func (s *Server) init() {
	s.once.Do(func() {
		s.handoff = &handoffListener{conns: make(chan net.Conn), done: make(chan struct{})}
		s.conns = map[*conn]struct{}{}
	})
}

// Handoff is the listener the net/http server for everything else serves:
// it yields the connections the fast path hands over, each replaying the
// bytes already read from it. Its address is the real listener's once
// Serve has started.
func (s *Server) Handoff() net.Listener {
	s.init()
	return s.handoff
}

// Serve accepts connections on ln until Shutdown or Close; it returns
// http.ErrServerClosed then, or the accept error that stopped it.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handoff.addr.Store(&addrBox{ln.Addr()})
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and the like: wait and retry, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections and waits for the
// active ones to finish their request (each answer then says Connection:
// close) or for ctx. It does not touch the handed-off connections: shut
// down the net/http server serving Handoff() too.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.shutting.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close stops accepting and closes every connection the fast path holds.
func (s *Server) Close() error {
	s.init()
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.nc.Close()
	}
	return nil
}

// closeIdle closes the idle connections and returns how many are left.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		nc.Close()
		return nil
	}
	// The handlers' context ends with the connection.
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		cancel: cancel,
		ar:     armed.NewReader(nc),
		bw:     bufio.NewWriterSize(nc, writeBufferSize),
	}
	c.br = bufio.NewReaderSize(c.ar, readBufferSize)
	c.flush = c.flushIdle
	c.base = (&http.Request{RemoteAddr: c.remote}).WithContext(ctx)
	c.state.Store(stateActive)
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// Connection states; Shutdown closes a connection only from stateIdle, and
// a connection leaves stateIdle only by a compare-and-swap, so a request
// that has begun is never cut.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// conn is one connection served by the fast path.
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	cancel context.CancelFunc
	base   *http.Request // carries ctx and RemoteAddr; copied for every request
	ar     *armed.Reader // what br reads: writes the answers it awaits the next requests after
	br     *bufio.Reader
	bw     *bufio.Writer
	flush  func() error // c.flushIdle, bound once
	rest   int          // answers left to write unarmed (see awaitRequest)
	state  atomic.Int32
	body   body
	resp   response
}

func (c *conn) serve() {
	handed := false
	defer func() {
		c.cancel()
		c.s.forget(c)
		if !handed {
			c.nc.Close()
		}
	}()
	for {
		if !c.awaitRequest() {
			return
		}
		c.setReadDeadline(c.s.ReadTimeout)
		h, ok := c.peekHead()
		if !ok || c.s.Claim != nil && !c.s.Claim(h.req) {
			handed = c.handOff()
			return
		}
		c.br.Discard(h.size)
		if d := c.s.WriteTimeout; d > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(d))
		}
		if !c.serveRequest(h.req) {
			return
		}
	}
}

// awaitRequest flushes what is written when no request is buffered, then
// waits for the first byte of the next one; false when the connection is
// to be closed.
//
// The answer is written by the read that awaits the next request (package
// armed), which saves a read that would find nothing. That wait forgets a
// request sent before the answer went out, by a client that sends ahead of
// its answers (HTTP pipelining) into the moment the last one was being
// served: it is bounded by armedWait, after which one read without
// waiting finds such a request, and the next armedRest answers are written
// as usual. (That read cannot tell such a request from one sent a moment
// after the wait ran out, by a client slower than armedWait, hence a rest
// rather than an end.)
func (c *conn) awaitRequest() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	idle := c.s.IdleTimeout
	if idle == 0 {
		idle = c.s.ReadTimeout
	}
	arm := false
	if c.rest > 0 {
		c.rest--
	} else {
		arm = c.bw.Buffered() > 0 && !c.s.shutting.Load() && c.ar.Arm(c.flush)
	}
	if arm {
		if done, ok := c.awaitArmed(idle); done {
			return ok
		}
	} else {
		if c.flushIdle() != nil {
			return false
		}
		c.setReadDeadline(idle)
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	return c.state.CompareAndSwap(stateIdle, stateActive)
}

// awaitArmed is awaitRequest's armed wait, c.ar armed with the answer.
// done reports that it settled the wait (ok as awaitRequest's result);
// otherwise nothing came within armedWait, and the read deadline is set
// for the rest of idle.
func (c *conn) awaitArmed(idle time.Duration) (done, ok bool) {
	wait := armedWait
	if idle > 0 && idle < wait {
		wait = idle
	}
	c.setReadDeadline(wait)
	_, err := c.br.Peek(1)
	if c.ar.WriteErr() != nil {
		return true, false // the answer was not written, or the server is shutting down
	}
	if c.bw.Buffered() > 0 {
		// The wait failed before it began (the connection closed): the
		// answer goes out before the connection ends.
		c.bw.Flush()
		return true, false
	}
	if err == nil {
		return true, c.state.CompareAndSwap(stateIdle, stateActive)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || wait == idle {
		return true, false
	}
	// The armed wait ran out: was a request there all along?
	if idle > 0 {
		idle -= wait
	}
	c.setReadDeadline(idle)
	if c.ar.Once() {
		_, err = c.br.Peek(1)
		if err == nil {
			c.rest = armedRest
			return true, c.state.CompareAndSwap(stateIdle, stateActive)
		}
		if !errors.Is(err, armed.ErrWouldBlock) {
			return true, false
		}
	}
	return false, false
}

// armedWait bounds the armed wait of awaitRequest, and armedRest is how
// many answers are written unarmed after a request was found there when
// it ran out: a client that sends ahead of its answers has one request in
// armedRest+1 wait at most armedWait.
const (
	armedWait = 20 * time.Millisecond
	armedRest = 64
)

// idle marks the connection idle, so that Shutdown may close it; false
// when the server is shutting down and it is closed now.
func (c *conn) idle() bool {
	c.state.Store(stateIdle)
	return !(c.s.shutting.Load() && c.state.CompareAndSwap(stateIdle, stateClosed))
}

// flushIdle writes the buffered answers and marks the connection idle:
// awaitRequest's write, armed or not.
func (c *conn) flushIdle() error {
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if !c.idle() {
		return net.ErrClosed
	}
	return nil
}

func (c *conn) setReadDeadline(d time.Duration) {
	if d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	} else {
		c.nc.SetReadDeadline(time.Time{})
	}
}

// peekHead waits until the buffer holds a whole head and parses it without
// consuming it; false when the head does not fit in the buffer, the
// connection fails first, or the head is not one the fast path serves.
func (c *conn) peekHead() (head, bool) {
	from := 0
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if end := headEnd(buf, from); end > 0 {
			return parseHead(buf[:end], c.base)
		}
		if len(buf) >= readBufferSize {
			return head{}, false
		}
		from = max(0, len(buf)-3)
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return head{}, false
		}
	}
}

// handOff gives the connection, with the unread bytes in its buffer, to the
// net/http server; false when that server is gone (the caller closes the
// connection).
func (c *conn) handOff() bool {
	if c.bw.Buffered() > 0 && c.bw.Flush() != nil {
		return false
	}
	c.nc.SetDeadline(time.Time{})
	pending, _ := c.br.Peek(c.br.Buffered())
	rc := &replayConn{Conn: c.nc, pending: pending}
	if c.s.OnHandoff != nil {
		c.s.OnHandoff()
	}
	return c.s.handoff.deliver(rc)
}

// serveRequest runs the handler on req and writes its answer; false when
// the connection is to be closed.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	clientClose := req.Close
	c.body.reset(c.br, req.ContentLength)
	if req.ContentLength > 0 {
		req.Body = &c.body
	} else {
		req.Body = http.NoBody
	}
	c.resp.reset()
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				c.s.logf("h1server: panic serving %s: %v\n%s", c.remote, err, debug.Stack())
			}
			keep = false
		}
	}()
	c.s.Handler.ServeHTTP(&c.resp, req)
	// A body the handler left unread (a refused one, say) is read past, as
	// net/http does, up to maxDiscard; past that the connection closes.
	unread := !c.finishBody()
	closeAfter := clientClose || unread || c.s.shutting.Load()
	closeAfter = c.resp.writeTo(c.bw, closeAfter) || closeAfter
	if !closeAfter {
		return true
	}
	if c.bw.Flush() == nil && !clientClose {
		// As net/http does: half-close, then give the client time to read
		// the answer before the close can reset the connection over bytes
		// it sent and the relay never read.
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil && (unread || c.br.Buffered() > 0) {
			time.Sleep(rstAvoidanceDelay)
		}
	}
	return false
}

// rstAvoidanceDelay is how long a connection closed with unread input stays
// open after its answer (net/http's value).
const rstAvoidanceDelay = 500 * time.Millisecond

// handoffListener is the net.Listener the net/http server accepts the
// handed-off connections from.
type handoffListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  atomic.Pointer[addrBox]
}

type addrBox struct{ net.Addr }

func (l *handoffListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr {
	if a := l.addr.Load(); a != nil {
		return a.Addr
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
}

// replayConn is a handed-off connection: it reads the bytes the fast path
// had already buffered before reading the socket again.
type replayConn struct {
	net.Conn
	pending []byte
}

// CloseWrite half-closes the connection when the network supports it
// (net/http does before it closes one).
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
