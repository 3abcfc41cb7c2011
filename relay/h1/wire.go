package h1

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// wire is what a conn's bufio.Reader reads from. Its one trick saves a
// system call per exchange: a request armed with writeFirst is written by
// the first Read, inside the connection's RawConn.Read, and the answer is
// then awaited before it is read. A plain Read right after the write
// would almost always find nothing yet (read returns EAGAIN) and only
// then wait.
//
// Why this is safe: RawConn.Read clears the descriptor's readiness once,
// before its first call of step, and not again until it returns. The
// request is written after that, so the answer, which cannot come before
// the request, always arrives as a new readiness event that wakes the
// wait. (A read that waits first is not safe in general: readiness that
// came before RawConn.Read began would be forgotten, and the wait would
// last until the next byte or the deadline.)
//
// Without a RawConn (not a socket, or not a Unix system) wire reads and
// writes through the net.Conn as usual.
type wire struct {
	nc net.Conn
	rc syscall.RawConn // nil: no raw reads

	// Read through rc (set by Read, used by step).
	req  []byte // the request step writes before it waits; nil once written
	werr error  // the request's write failed: the exchange fails before any byte
	p    []byte
	n    int
	rerr error
	fn   func(fd uintptr) bool // step, bound once

	// Counts, for tests: requests written by step, and raw reads that
	// found nothing (the system call the armed wait is there to save).
	armed, empty int
}

func newWire(nc net.Conn) *wire {
	w := &wire{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok && rawReads {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
			w.fn = w.step
		}
	}
	return w
}

// send writes buf now, or, when arm is set, arms it to be written by the
// next Read. The caller arms only when that Read is the one that waits
// for this request's answer (nothing of an earlier answer left unread)
// and no readiness from before can matter (see conn.writeRequest).
func (w *wire) send(buf []byte, arm bool) error {
	if w.rc == nil || !arm {
		_, err := w.nc.Write(buf)
		return err
	}
	w.req, w.werr = buf, nil
	return nil
}

// writeErr returns the error of an armed request's write, once, and
// disarms a request that was never written (the exchange failed first).
func (w *wire) writeErr() error {
	err := w.werr
	w.req, w.werr = nil, nil
	return err
}

func (w *wire) Read(p []byte) (int, error) {
	if w.req == nil {
		return w.nc.Read(p)
	}
	w.p, w.n, w.rerr = p, 0, nil
	err := w.rc.Read(w.fn)
	w.p = nil
	switch {
	case w.werr != nil:
		return 0, w.werr
	case err != nil:
		// The wait failed (deadline, closed): as net.Conn.Read reports it.
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: w.nc.LocalAddr(), Addr: w.nc.RemoteAddr(), Err: unwrapOp(err)}
	case w.rerr != nil:
		return w.n, w.rerr
	}
	return w.n, nil
}

// step is RawConn.Read's callback: the armed request's write first (then
// wait), and on each later call one read. It returns false to wait for
// readiness.
func (w *wire) step(fd uintptr) bool {
	if w.req != nil {
		req := w.req
		w.req = nil
		// Through the net.Conn: its write lock, deadline and wait for
		// writability apply as to any write.
		w.armed++
		if _, err := w.nc.Write(req); err != nil {
			w.werr = err
			return true
		}
		return false
	}
	n, again, err := rawRead(fd, w.p)
	switch {
	case again:
		w.empty++
		return false // woken before the answer came: wait again
	case err != nil:
		w.rerr = &net.OpError{Op: "read", Net: "tcp", Source: w.nc.LocalAddr(), Addr: w.nc.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	case n == 0 && len(w.p) > 0:
		w.rerr = io.EOF
	default:
		w.n = n
	}
	return true
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
