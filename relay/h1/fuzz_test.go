package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/edgerelay/edgerelay/relay/armed"
)

// FuzzReadResponse feeds arbitrary bytes to the response parser and reads
// the body as framed: it must never panic, never return a body longer
// than its framing allows, and keep the head within its bound.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 3\n\nabcdef",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"), true)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		const limit = 1 << 10
		method := "POST"
		if head {
			method = "HEAD"
		}
		br := bufio.NewReaderSize(bytes.NewReader(data), 64)
		resp, fr, err := readResponse(br, method, limit)
		if err != nil {
			if resp != nil {
				t.Fatal("a response with an error")
			}
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 999 {
			t.Fatalf("final status %d", resp.StatusCode)
		}
		framed := fr.n
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		b := &body{c: &conn{t: &Transport{}, nc: client, ar: armed.NewReader(client), br: br}, f: fr, ctx: context.Background()}
		n, _ := io.Copy(io.Discard, io.LimitReader(b, int64(len(data))+1))
		switch fr.kind {
		case noBody:
			if n != 0 {
				t.Fatalf("%d body bytes with no body", n)
			}
		case length:
			if n > framed || resp.ContentLength != framed {
				t.Fatalf("%d body bytes, Content-Length %d (%d)", n, framed, resp.ContentLength)
			}
		case chunked, untilClose:
			if n > int64(len(data)) {
				t.Fatalf("%d body bytes from %d input bytes", n, len(data))
			}
		}
		b.Close()
	})
}
