package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestContentLengthPlusTransferEncodingClosesConnection sends, on one raw
// TCP connection, a callback with both Content-Length and
// Transfer-Encoding: chunked whose chunked body is followed by a second,
// correctly signed callback (the smuggled request). The first is answered
// with Connection: close and the connection ends; the second is never
// answered nor delivered.
func TestContentLengthPlusTransferEncodingClosesConnection(t *testing.T) {
	be := newRecorder(t)
	r := startRelay(t, metaConfig(be.srv.URL))
	addr := strings.TrimPrefix(r.base, "http://")

	first := metaBody("wamid.front", "4915100000001")
	hidden := metaBody("wamid.smuggled", "4915100000002")
	smuggled := fmt.Sprintf("POST /hooks/meta HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"X-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n%s", sign(testSecret, hidden), len(hidden), hidden)
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(first), first)
	// Content-Length covers the chunked body and the smuggled request, as
	// a front end framing by Content-Length would see it.
	req := fmt.Sprintf("POST /hooks/meta HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"X-Hub-Signature-256: %s\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s%s",
		sign(testSecret, first), len(chunked)+len(smuggled), chunked, smuggled)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Errorf("the answer to a CL+TE request must announce Connection: close (got %v)", resp.Header)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("the connection must be closed, not reset or left open: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("the smuggled request was answered:\n%s", rest)
	}

	// Let the relay deliver whatever it accepted, then look.
	waitFor(t, 5*time.Second, "the front request delivered", func() bool { return len(be.got()) >= 1 })
	time.Sleep(300 * time.Millisecond)
	for _, g := range be.got() {
		if strings.Contains(string(g.Body), "wamid.smuggled") {
			t.Fatalf("the smuggled callback was delivered")
		}
	}
	if n := len(be.got()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}

	// A keep-alive request with Content-Length only keeps its connection.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	body := metaBody("wamid.plain", "4915100000003")
	fmt.Fprintf(c2, "POST /hooks/meta HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n%s", sign(testSecret, body), len(body), body)
	resp2, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 || resp2.Close {
		t.Errorf("plain request: status %d, close %v", resp2.StatusCode, resp2.Close)
	}
}
