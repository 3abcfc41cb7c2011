package relay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay/quarantine"
)

// metaSignatureValid is an oracle written apart from auth.HMAC: Meta's
// X-Hub-Signature-256 is "sha256=" + hex HMAC-SHA256 of the raw body.
func metaSignatureValid(secret string, h http.Header, body []byte) bool {
	vs := h["X-Hub-Signature-256"]
	if len(vs) == 0 {
		return false
	}
	v := strings.TrimSpace(vs[0])
	if len(v) < 7 || !strings.EqualFold(v[:7], "sha256=") {
		return false
	}
	got, err := hex.DecodeString(v[7:])
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// FuzzQuarantineRelease mutates a kept Meta callback (body, signature,
// header name, method, request URI, arrival time) and releases it through
// the real relay: it is enqueued exactly when it verifies (by an
// independent check of Meta's signature), never otherwise.
func FuzzQuarantineRelease(f *testing.F) {
	const secret = "fuzz-meta-secret"
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	dir := f.TempDir()
	file := filepath.Join(dir, "relay.hcl")
	cfg := quarantineConfig(backend.URL, secret, "tw", "")
	cfg = strings.Replace(cfg, `log { level = "debug" }`, `log { level = "error" }`, 1)
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		f.Fatal(err)
	}
	c, diags := LoadConfig(file)
	if diags.HasErrors() {
		f.Fatal(FormatDiagnostics(diags))
	}
	s, err := New(c, Options{LogOutput: &syncBuffer{}})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Start(); err != nil {
		f.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}()

	body := metaBody("wamid.fuzz.00", "4915100000001")
	f.Add(body, sign(secret, body), "X-Hub-Signature-256", "POST", "/hooks/meta", int64(0))
	f.Add(body, sign(secret, body), "X-Hub-Signature-256", "POST", "/hooks/meta?x=1", int64(-3600))
	f.Add(body, strings.ToUpper(sign(secret, body)), "X-Hub-Signature-256", "POST", "/hooks/meta", int64(0))
	f.Add(body, " "+sign(secret, body)+" ", "X-Hub-Signature-256", "POST", "/", int64(0))
	f.Add(append(body, ' '), sign(secret, body), "X-Hub-Signature-256", "POST", "/hooks/meta", int64(0))
	f.Add(body, sign("other", body), "X-Hub-Signature-256", "POST", "/hooks/meta", int64(0))
	f.Add(body, sign(secret, body), "x-hub-signature-256", "POST", "/hooks/meta", int64(0))
	f.Add(body, sign(secret, body), "X-Hub-Signature-256", "GET", "/hooks/meta", int64(0))
	f.Add(body, sign(secret, body), "X-Hub-Signature-256", "POST", "hooks meta", int64(0))
	f.Add(body, strings.TrimPrefix(sign(secret, body), "sha256="), "X-Hub-Signature-256", "POST", "/hooks/meta", int64(0))
	f.Add([]byte{}, sign(secret, nil), "X-Hub-Signature-256", "POST", "/hooks/meta", int64(0))

	f.Fuzz(func(t *testing.T, body []byte, sig, headerName, method, uri string, offset int64) {
		if _, err := s.qt.Purge("meta"); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Duration(offset%3600) * time.Second)
		rec := &quarantine.Record{
			Channel: "meta", ReceivedAt: at, Reason: "bad_signature", Method: method, RequestURI: uri,
			Host: "127.0.0.1", RemoteAddr: "192.0.2.1:1234",
			Header: http.Header{headerName: {sig}, "Content-Type": {"application/json"}}, Body: body,
		}
		if _, ok := s.qt.Add(rec); !ok {
			return // larger than the quarantine: nothing to release
		}
		_, uriErr := url.ParseRequestURI(uri)
		want := method == "POST" && uriErr == nil && metaSignatureValid(secret, rec.Header, body)
		released, still, err := s.releaseQuarantine(context.Background(), "meta")
		if err != nil {
			t.Fatal(err)
		}
		if released+still != 1 {
			t.Fatalf("released %d, still failing %d: want one of them", released, still)
		}
		if (released == 1) != want {
			t.Fatalf("released = %d, but the callback %s", released, map[bool]string{true: "verifies", false: "does not verify"}[want])
		}
	})
}
