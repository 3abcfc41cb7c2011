package auth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// newRequest builds a Request for a callback to publicURL (which may carry
// a query: it is split into PublicURL and URL.RawQuery as the relay does).
func newRequest(t testing.TB, publicURL string, header http.Header, body []byte) *Request {
	t.Helper()
	base, rawQuery, _ := strings.Cut(publicURL, "?")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	if header == nil {
		header = http.Header{}
	}
	return &Request{
		Method:     http.MethodPost,
		URL:        &url.URL{Path: u.Path, RawQuery: rawQuery},
		PublicURL:  base,
		Header:     header,
		Body:       body,
		RemoteAddr: "192.0.2.10:40000",
		Host:       u.Host,
	}
}

// hdr builds a header from name/value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// wantPass fails the test when err is not nil.
func wantPass(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("want pass, got %v", err)
	}
}

// wantReason fails the test unless err is a *Failure with the given reason.
func wantReason(t testing.TB, err error, reason Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("want failure %s, got pass", reason)
	}
	f, ok := err.(*Failure)
	if !ok {
		t.Fatalf("want *Failure %s, got %T %v", reason, err, err)
	}
	if f.Reason != reason {
		t.Fatalf("want reason %s, got %v", reason, err)
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
