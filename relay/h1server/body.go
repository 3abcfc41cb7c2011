package h1server

import (
	"bufio"
	"io"
	"net/http"
)

// body is a request body of a known length, read from the connection's
// buffer.
type body struct {
	br     *bufio.Reader
	n      int64 // bytes left
	closed bool
}

func (b *body) reset(br *bufio.Reader, n int64) {
	b.br, b.n, b.closed = br, n, false
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close marks the body closed; what is left unread is dealt with after the
// handler (see conn.finishBody).
func (b *body) Close() error {
	b.closed = true
	return nil
}

// maxDiscard is how much of a body the handler left unread is read past to
// keep the connection (net/http's maxPostHandlerReadBytes); beyond it the
// connection is closed.
const maxDiscard = 256 << 10

// finishBody reads past what the handler left of the body; false when the
// connection cannot carry another request.
func (c *conn) finishBody() bool {
	if c.body.n == 0 {
		return true
	}
	if c.body.n > maxDiscard {
		return false
	}
	n, err := c.br.Discard(int(c.body.n))
	c.body.n -= int64(n)
	return err == nil && c.body.n == 0
}
