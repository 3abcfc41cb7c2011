package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchServer is a minimal HTTP/1.1 server on 127.0.0.1 that allocates
// almost nothing, so that allocs/op and most of ns/op are the client's.
func benchServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Wed, 02 Dec 2026 11:00:00 GMT\r\nContent-Length: 2\r\n\r\nok")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 16<<10)
				for {
					n := -1
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if len(line) > 16 && string(line[:16]) == "Content-Length: " {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
						}
					}
					if n > 0 {
						br.Discard(n)
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/events"
}

func benchTransports() []struct {
	name string
	rt   func() http.RoundTripper
} {
	return []struct {
		name string
		rt   func() http.RoundTripper
	}{
		{"net_http", func() http.RoundTripper {
			// As the relay configured its delivery transport.
			return &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        64,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
				ForceAttemptHTTP2:   true,
				DisableCompression:  true,
			}
		}},
		{"h1", func() http.RoundTripper { return &Transport{MaxIdlePerHost: 64} }},
	}
}

// deliver sends one request shaped like a relay delivery and drains the
// answer as the relay does.
func deliver(b *testing.B, c *http.Client, url string, body []byte, hdr http.Header) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.ContentLength = int64(len(body))
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != 200 || string(snippet) != "ok" {
		b.Fatalf("status %d body %q", resp.StatusCode, snippet)
	}
}

// BenchmarkDelivery compares net/http's Transport and this one on the
// same local server, with 1 KB events and the relay's headers; run both
// in one invocation and compare (go test -bench Delivery -count 5).
func BenchmarkDelivery(b *testing.B) {
	body := []byte(strings.Repeat("e", 1024))
	hdr := http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
		"Webhook-Signature":   {"v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
		"X-Relay-Event-Id":    {"01J8ZQ4Y3V6N7Q2W"},
		"X-Relay-Channel":     {"stripe"},
		"X-Relay-Provider":    {"stripe"},
		"X-Relay-Attempt":     {"1"},
		"X-Relay-Received-At": {"2026-12-02T10:58:08.123456789Z"},
	}
	var fields []Field // the same fields for Send, in net/http's order
	for _, k := range slices.Sorted(maps.Keys(hdr)) {
		fields = append(fields, Field{k, hdr[k][0]})
	}
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode+"/h1_send", func(b *testing.B) {
			u, _ := url.Parse(benchServer(b))
			dest, err := DestOf(u)
			if err != nil {
				b.Fatal(err)
			}
			tr := &Transport{MaxIdlePerHost: 64}
			defer tr.CloseIdleConnections()
			send := func(snippet []byte) {
				rep, err := tr.Send(&Request{Method: http.MethodPost, Dest: dest, Fields: fields, Body: body, Deadline: time.Now().Add(10 * time.Second)}, snippet)
				if err != nil || rep.Status != 200 || string(rep.Snippet) != "ok" {
					b.Fatalf("status %d body %q: %v", rep.Status, rep.Snippet, err)
				}
			}
			var snip [256]byte
			send(snip[:])
			b.ReportAllocs()
			b.ResetTimer()
			if mode == "serial" {
				for i := 0; i < b.N; i++ {
					send(snip[:])
				}
				return
			}
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				var snip [256]byte
				for pb.Next() {
					send(snip[:])
				}
			})
		})
		for _, tt := range benchTransports() {
			b.Run(mode+"/"+tt.name, func(b *testing.B) {
				url := benchServer(b)
				rt := tt.rt()
				c := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				defer c.CloseIdleConnections()
				deliver(b, c, url, body, hdr)
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for i := 0; i < b.N; i++ {
						deliver(b, c, url, body, hdr)
					}
					return
				}
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						deliver(b, c, url, body, hdr)
					}
				})
			})
		}
	}
}
