// Package armed saves a system call on every exchange of a keep-alive
// HTTP/1.1 connection: the read that, right after a write, finds nothing
// yet (read returns EAGAIN) and only then waits. Both ends of the relay's
// hot path write and then wait for the peer: the delivery client writes a
// request and awaits the answer (relay/h1), the callback server writes an
// answer and awaits the next request (relay/h1server).
//
// Start at Reader. A Reader is the io.Reader under the connection's
// bufio.Reader. Arm hands it the write that comes before the next read;
// the next Read then runs inside the connection's RawConn.Read: the write
// first, then a wait for readiness, then one read.
//
// Why this is safe: RawConn.Read clears the descriptor's readiness once,
// before its first call of the callback, and not again until it returns.
// The write comes after that, so whatever the peer sends in reply, which
// cannot come before the write, arrives as new readiness and wakes the
// wait. What the peer sent before the write, unprompted, does not: its
// readiness is forgotten, and the wait lasts until the next byte or the
// read deadline. The callers arm only where nothing unprompted is
// expected, and bound the wait where it could be (see their Arm calls).
// A read that waits first without a write in between is never safe for
// that reason.
//
// Without a RawConn (not a socket, or not a Unix system) Arm returns
// false and the caller writes and reads as usual.
package armed

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// Reader reads a net.Conn; see the package comment. It is used by one
// goroutine at a time, as a bufio.Reader is.
type Reader struct {
	nc net.Conn
	rc syscall.RawConn // nil: no raw reads
	fn func(fd uintptr) bool

	write func() error // armed: called by the next Read before it waits
	once  bool         // the next Read reads once, without waiting
	werr  error
	p     []byte
	n     int
	rerr  error

	writes, empty atomic.Int64 // see Counts
}

// Counts returns how many armed writes the Reader made, and how many of
// its raw reads found nothing (woken before the reply: the system call
// arming is there to save). For tests; safe to call from any goroutine.
func (r *Reader) Counts() (writes, empty int64) {
	return r.writes.Load(), r.empty.Load()
}

// NewReader returns a Reader over nc.
func NewReader(nc net.Conn) *Reader {
	r := &Reader{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok && rawReads {
		if rc, err := sc.SyscallConn(); err == nil {
			r.rc = rc
			r.fn = r.step
		}
	}
	return r
}

// Arm makes write the first thing the next Read does, before it waits
// for readiness and reads; false when the Reader cannot (the caller then
// writes itself). write goes through the net.Conn as any write does (its
// lock, deadline and wait for writability). Arm only when the next Read is
// the one that awaits the peer's reply to this write: nothing of an
// earlier message left in the caller's buffer.
func (r *Reader) Arm(write func() error) bool {
	if r.rc == nil {
		return false
	}
	r.write, r.werr = write, nil
	return true
}

// ErrWouldBlock is what a Read set up by Once returns when nothing was
// there to read.
var ErrWouldBlock = errors.New("armed: nothing to read yet")

// Once makes the next Read read once without waiting: it returns what is
// there or ErrWouldBlock. This is how a caller whose armed wait ran out
// learns whether something had come before its write (see the package
// comment): an ordinary read cannot tell it from what came since. False
// when the Reader cannot (no raw reads).
func (r *Reader) Once() bool {
	if r.rc == nil {
		return false
	}
	r.once = true
	return true
}

// WriteErr returns the error of the armed write, once, and disarms a
// write that was never made (the caller gave up before reading).
func (r *Reader) WriteErr() error {
	err := r.werr
	r.write, r.werr = nil, nil
	return err
}

// Read reads as net.Conn.Read does; when armed, it makes the armed write
// first and returns its error if it fails.
func (r *Reader) Read(p []byte) (int, error) {
	if r.write == nil && !r.once {
		return r.nc.Read(p)
	}
	r.p, r.n, r.rerr = p, 0, nil
	err := r.rc.Read(r.fn)
	r.p, r.once = nil, false
	switch {
	case r.werr != nil:
		return 0, r.werr
	case err != nil:
		// The wait failed (deadline, closed): as net.Conn.Read reports it.
		return 0, r.opError(unwrapOp(err))
	case r.rerr != nil:
		return 0, r.rerr
	}
	return r.n, nil
}

// step is RawConn.Read's callback: the armed write first (then wait), and
// on each later call one read. It returns false to wait for readiness.
func (r *Reader) step(fd uintptr) bool {
	if w := r.write; w != nil {
		r.write = nil
		r.writes.Add(1)
		if err := w(); err != nil {
			r.werr = err
			return true
		}
		return false
	}
	n, again, err := rawRead(fd, r.p)
	switch {
	case again && r.once:
		r.rerr = ErrWouldBlock
	case again:
		r.empty.Add(1)
		return false // woken before the reply came: wait again
	case err != nil:
		r.rerr = r.opError(os.NewSyscallError("read", err))
	case n == 0 && len(r.p) > 0:
		r.rerr = io.EOF
	default:
		r.n = n
	}
	return true
}

func (r *Reader) opError(err error) error {
	return &net.OpError{Op: "read", Net: r.nc.LocalAddr().Network(), Source: r.nc.LocalAddr(), Addr: r.nc.RemoteAddr(), Err: err}
}

// unwrapOp takes the error of RawConn.Read out of its "raw-read"
// OpError, so that the error Read returns reads as net.Conn.Read's own.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}
