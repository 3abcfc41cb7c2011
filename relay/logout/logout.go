// Package logout is where the relay's log lines go on their way to the process's standard error:
// a buffer that gathers them into few writes, so that the line the relay writes for every
// callback and every delivery attempt at level info does not cost a system call each.
//
// Start with New, which wraps the output (edgerelay run wraps its standard error), and Wrap, which
// wraps the log handler writing to it. Lines are written, in the order they were logged:
//   - at once, together with every line before them, when a line at level warn or above is
//     logged (Wrap's handler flushes after it), or a line logged with a context from Now (the
//     admin API's audit lines);
//   - when FlushAt bytes have gathered;
//   - at most Delay after the oldest line not yet written (a timer armed by that line, so an idle
//     relay has no timer running);
//   - when Flush is called (edgerelay run calls it before it exits).
//
// What this gives up: the info and debug lines of the last Delay before a crash (SIGKILL, a
// panic, the machine losing power) may not be written. Events are not affected: the queue, not
// the log, is what makes a callback durable.
package logout

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

const (
	// Delay bounds how long a line waits in the buffer.
	Delay = 50 * time.Millisecond
	// FlushAt is how many bytes gathered make a write at once.
	FlushAt = 32 << 10
)

// Writer gathers lines for w. It is safe for concurrent use; each Write is kept whole.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	delay time.Duration
	timer *time.Timer
	armed bool
	err   error // the last write error, returned by the next Write or Flush
}

// New returns a Writer for w with the default Delay.
func New(w io.Writer) *Writer { return newWriter(w, Delay) }

func newWriter(w io.Writer, delay time.Duration) *Writer {
	b := &Writer{w: w, delay: delay}
	b.timer = time.AfterFunc(time.Hour, func() { b.Flush() })
	b.timer.Stop()
	return b
}

// Write adds p to the buffer; it writes the buffer out once FlushAt bytes have gathered, and
// otherwise makes sure it is written within the delay.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) >= FlushAt {
		b.flushLocked()
	} else if !b.armed {
		b.armed = true
		b.timer.Reset(b.delay)
	}
	return len(p), b.takeErr()
}

// Flush writes out everything gathered so far.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return b.takeErr()
}

// takeErr returns the last write error, once (with b.mu held).
func (b *Writer) takeErr() error {
	err := b.err
	b.err = nil
	return err
}

func (b *Writer) flushLocked() {
	if b.armed {
		b.armed = false
		b.timer.Stop()
	}
	if len(b.buf) == 0 {
		return
	}
	if _, err := b.w.Write(b.buf); err != nil {
		b.err = err
	}
	if cap(b.buf) > 4*FlushAt {
		b.buf = nil // a burst of very long lines: do not keep its buffer
	} else {
		b.buf = b.buf[:0]
	}
}

// Wrap returns h, writing to w, made to flush w after every line at level warn or above, so that
// what goes wrong is written at once, after the lines that led to it. If w is not a *Writer, h
// is returned as is.
func Wrap(h slog.Handler, w io.Writer) slog.Handler {
	b, ok := w.(*Writer)
	if !ok {
		return h
	}
	return flushing{h: h, w: b}
}

type nowKey struct{}

// Now returns ctx marked so that a line logged with it is written at once whatever its level:
// the admin API's audit lines ("admin action"), which an operator or an auditor must find in the
// log as soon as the action is done.
func Now(ctx context.Context) context.Context { return context.WithValue(ctx, nowKey{}, true) }

type flushing struct {
	h slog.Handler
	w *Writer
}

func (f flushing) Enabled(ctx context.Context, l slog.Level) bool { return f.h.Enabled(ctx, l) }

func (f flushing) Handle(ctx context.Context, r slog.Record) error {
	err := f.h.Handle(ctx, r)
	if r.Level >= slog.LevelWarn || ctx.Value(nowKey{}) != nil {
		if ferr := f.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (f flushing) WithAttrs(as []slog.Attr) slog.Handler {
	return flushing{h: f.h.WithAttrs(as), w: f.w}
}

func (f flushing) WithGroup(name string) slog.Handler {
	return flushing{h: f.h.WithGroup(name), w: f.w}
}
