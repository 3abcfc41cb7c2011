package h1server

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/http"
	"reflect"
	"testing"
	"time"
)

var headSeeds = []string{
	"POST /cb HTTP/1.1\r\nHost: relay.example\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-Hub-Signature-256: sha256=00ff\r\n\r\n",
	"POST /cb?x=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
	"POST /a%2Fb HTTP/1.1\r\nHost: h:8080\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 7\r\nUser-Agent: facebookexternalua\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 1\r\nConnection: keep-alive\r\nAuthorization: Basic dTpw\r\n\r\n",
}

// checkHead is the parser's contract: whatever head it accepts, net/http
// reads as the same request.
func checkHead(t *testing.T, raw []byte) {
	end := headEnd(raw, 0)
	if end < 0 {
		return
	}
	h, ok := parseHead(raw[:end], nil)
	if !ok {
		return
	}
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw[:end])))
	if err != nil {
		t.Fatalf("fast path accepts a head net/http refuses (%v): %q", err, raw[:end])
	}
	got := h.req
	if h.size != end {
		t.Fatalf("size %d, want %d", h.size, end)
	}
	if got.Method != want.Method || got.RequestURI != want.RequestURI || got.URL.String() != want.URL.String() ||
		got.URL.Path != want.URL.Path || got.URL.RawQuery != want.URL.RawQuery || got.Host != want.Host ||
		got.ContentLength != want.ContentLength || got.Close != want.Close || got.Proto != want.Proto ||
		len(want.TransferEncoding) > 0 || !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("head %q\nfast path: %s %s %q %v cl=%d close=%v\nnet/http:  %s %s %q %v cl=%d close=%v te=%v",
			raw[:end], got.Method, got.RequestURI, got.Host, got.Header, got.ContentLength, got.Close,
			want.Method, want.RequestURI, want.Host, want.Header, want.ContentLength, want.Close, want.TransferEncoding)
	}
}

func FuzzParseHead(f *testing.F) {
	for _, s := range headSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkHead(t, raw) })
}

// TestParseHeadMutations runs the fuzz property over seeded random
// mutations of real heads for a bounded time, so every test run covers it.
func TestParseHeadMutations(t *testing.T) {
	for _, s := range headSeeds {
		if _, ok := parseHead([]byte(s), nil); !ok {
			t.Fatalf("seed refused: %q", s)
		}
		checkHead(t, []byte(s))
	}
	interesting := []byte(" \t\r\n:,\x00\x01\x7f\x80\xff/?#%+-_AZaz09")
	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(2 * time.Second)
	accepted, tried := 0, 0
	for time.Now().Before(deadline) {
		b := []byte(headSeeds[rng.IntN(len(headSeeds))])
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(b))
			switch rng.IntN(4) {
			case 0: // replace
				b[i] = interesting[rng.IntN(len(interesting))]
			case 1: // insert
				b = append(b[:i], append([]byte{interesting[rng.IntN(len(interesting))]}, b[i:]...)...)
			case 2: // delete
				b = append(b[:i], b[i+1:]...)
			case 3: // duplicate a line
				if j := bytes.Index(b[i:], []byte("\r\n")); j >= 0 && i+j+2 < len(b) {
					k := bytes.LastIndex(b[:i], []byte("\r\n"))
					if k >= 0 {
						line := append([]byte(nil), b[k+2:i+j+2]...)
						b = append(b[:i+j+2], append(line, b[i+j+2:]...)...)
					}
				}
			}
		}
		tried++
		if end := headEnd(b, 0); end > 0 {
			if _, ok := parseHead(b[:end], nil); ok {
				accepted++
			}
		}
		checkHead(t, b)
	}
	if accepted == 0 || accepted == tried {
		t.Fatalf("%d of %d mutations accepted: the mutations do not exercise both sides", accepted, tried)
	}
	t.Logf("%d mutated heads, %d accepted by the fast path and read alike by net/http", tried, accepted)
}

// BenchmarkParseHead is the cost of reading a typical provider head.
func BenchmarkParseHead(b *testing.B) {
	raw := []byte(headSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseHead(raw, nil); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkReadRequest is net/http's reading of the same head, for scale.
func BenchmarkReadRequest(b *testing.B) {
	raw := []byte(headSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			b.Fatal(err)
		}
	}
}
