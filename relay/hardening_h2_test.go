package relay

import (
	"bytes"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestHTTP2RapidResetGetsGoAway opens a real TLS connection negotiating h2
// and sends up to 100,000 HEADERS+RST_STREAM pairs (bounded by 20 s) with
// golang.org/x/net/http2's Framer: the relay answers GOAWAY and closes the
// connection long before, and writes a bounded number of log lines.
func TestHTTP2RapidResetGetsGoAway(t *testing.T) {
	be := newRecorder(t)
	cfg := strings.Replace(metaConfig(be.srv.URL), `max_body = "4KiB"`, `max_body = "4KiB"
  tls { self_signed = true }`, 1)
	r := startRelay(t, cfg)
	addr := r.s.ListenerAddr("public")
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", addr}, {":path", "/hooks/meta"}, {"content-type", "application/json"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := hb.Bytes()

	goaway := make(chan *http2.GoAwayFrame, 1)
	go func() {
		rf := http2.NewFramer(nil, c)
		for {
			f, err := rf.ReadFrame()
			if err != nil {
				close(goaway)
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				goaway <- ga
				return
			}
		}
	}()
	start := time.Now()
	sent := 0
	var got *http2.GoAwayFrame
	func() {
		for id := uint32(1); sent < 100_000 && time.Since(start) < 20*time.Second; id += 2 {
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
				return
			}
			if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				return
			}
			sent++
			select {
			case got = <-goaway:
				return
			default:
			}
		}
	}()
	if got == nil {
		select {
		case got = <-goaway:
		case <-time.After(5 * time.Second):
		}
	}
	if got == nil {
		t.Fatalf("no GOAWAY after %d HEADERS+RST_STREAM pairs in %s", sent, time.Since(start))
	}
	t.Logf("GOAWAY %v after %d pairs in %s", got.ErrCode, sent, time.Since(start).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond) // let the penalised handlers finish
	lines := strings.Count(r.logs.String(), "\n")
	warn := strings.Count(r.logs.String(), `"level":"WARN"`)
	t.Logf("%d log lines, %d WARN", lines, warn)
	if warn > 200 {
		t.Errorf("%d WARN lines for one abusive connection: not bounded", warn)
	}
	if len(be.got()) != 0 {
		t.Errorf("reset streams were delivered")
	}
}
