package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
)

// body is a response body read from its connection as framed. Read and
// Close must not run at the same time (cancel the request's context to
// interrupt a Read).
type body struct {
	c    *conn
	f    framing
	stop func() bool // unhooks the context from the connection; nil without one
	ctx  context.Context

	left   int64 // chunked: bytes left in the current chunk
	done   bool  // the framed end was reached
	err    error // sticky read error
	closed bool
}

var errClosedBody = errors.New("h1: read on closed response body")

func (b *body) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, errClosedBody
	case b.err != nil:
		return 0, b.err
	case b.done:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	br := b.c.br
	switch b.f.kind {
	case noBody:
		b.done = true
		return 0, io.EOF
	case length:
		if int64(len(p)) > b.f.n {
			p = p[:b.f.n]
		}
		n, err := br.Read(p)
		b.f.n -= int64(n)
		if b.f.n == 0 {
			b.done = true
			return n, nil
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	case chunked:
		return b.readChunked(br, p)
	default: // untilClose
		n, err := br.Read(p)
		if err == io.EOF {
			b.done = true
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	}
}

func (b *body) readChunked(br *bufio.Reader, p []byte) (int, error) {
	if b.left == 0 {
		size, err := readChunkSize(br)
		if err != nil {
			return 0, b.fail(err)
		}
		if size == 0 {
			if err := b.readTrailer(br); err != nil {
				return 0, b.fail(err)
			}
			b.done = true
			return 0, io.EOF
		}
		b.left = size
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := br.Read(p)
	b.left -= int64(n)
	if err != nil {
		return n, b.fail(err)
	}
	if b.left == 0 {
		if err := b.chunkEnd(br); err != nil {
			return n, b.fail(err)
		}
	}
	return n, nil
}

// chunkEnd reads the CRLF after a chunk's data and, when the last chunk
// is already buffered, the end of the body too, so that a reader that
// stops after the last data byte still leaves the connection reusable.
func (b *body) chunkEnd(br *bufio.Reader) error {
	crlf, err := br.Peek(2)
	if err != nil {
		return err
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return errors.New("h1: malformed chunked encoding: no CRLF after chunk data")
	}
	br.Discard(2)
	if end, err := br.Peek(min(br.Buffered(), 5)); err == nil && string(end) == "0\r\n\r\n" {
		br.Discard(5)
		b.done = true
	}
	return nil
}

// readTrailer reads and drops the trailer fields after the last chunk,
// up to the empty line; bounded like a head.
func (b *body) readTrailer(br *bufio.Reader) error {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if total > b.f.limit {
			return fmt.Errorf("%w: trailer over %d bytes", ErrHeaderTooLarge, b.f.limit)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return err
		}
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			return nil
		}
	}
}

// fail records err as the body's sticky error: a premature EOF as
// io.ErrUnexpectedEOF, a failure caused by the request's context as that
// context's error.
func (b *body) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	b.err = contextErr(b.ctx, err)
	return b.err
}

// Close ends the exchange. The connection goes back to the pool only if
// the body was read to its framed end without error, nothing follows it,
// the response did not end the connection and the context never fired on
// it; otherwise it is closed.
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	unhooked := b.stop == nil || b.stop()
	// Bytes past the framed end (a server that sent more than it said)
	// would be read as the next answer: such a connection is closed.
	if b.done && b.err == nil && !b.f.close && unhooked && b.c.br.Buffered() == 0 {
		b.c.t.put(b.c)
	} else {
		b.c.close()
	}
	return nil
}
