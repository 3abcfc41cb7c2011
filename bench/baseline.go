package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"time"
)

// serveBaseline is the minimal server the relay is compared with: the same
// listener settings, the same body read and the same HMAC check as the
// relay's Meta channel, an empty 200, and nothing stored. It serves until
// the process is killed.
func serveBaseline(addr, secret string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	key := []byte(secret)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != channelPath {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var buf bytes.Buffer
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength))
		}
		if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 3<<20)); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		got, err := hex.DecodeString(sig)
		if !ok || err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		m := hmac.New(sha256.New, key)
		m.Write(buf.Bytes())
		if !hmac.Equal(m.Sum(nil), got) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 15 * time.Second, ReadTimeout: 15 * time.Second, MaxHeaderBytes: 64 << 10}
	return srv.Serve(ln)
}
