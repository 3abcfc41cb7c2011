package relay

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// rawRequest sends a request line as written (no client-side cleaning or
// escaping) and returns the status.
func rawRequest(t *testing.T, addr, target, body string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: hooks.test\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", target, len(body), body)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// TestPrefixChannelPlaceholdersByteExact: a prefix channel delivers the rest
// of its path and the query string as received, byte for byte; an exact
// path on the same listener wins; dot segments are refused.
func TestPrefixChannelPlaceholdersByteExact(t *testing.T) {
	plat := newPlatform(t, false)
	tr := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "kore" {
  listener   = "public"
  path       = "/hooks/kore/*"
  auth "none" {}
  forward_to = ["kore"]
}
channel "kore-exact" {
  listener   = "public"
  path       = "/hooks/kore/exact"
  auth "none" {}
  forward_to = ["exact"]
}
backend "kore" {
  url = "%[1]s/kore/chatbot/hooks{path}{query}"
}
backend "exact" {
  url = "%[1]s/exact/in{path}{query}"
}
`, plat.srv.URL))
	addr := strings.TrimPrefix(tr.base, "http://")
	cases := []struct{ target, want string }{
		{"/hooks/kore/st-1234", "/kore/chatbot/hooks/st-1234"},
		{"/hooks/kore/st-1234?", "/kore/chatbot/hooks/st-1234"},
		{"/hooks/kore/st-9f/a%2Fb%20c?x=%2B1&y=a%20b&z&empty=", "/kore/chatbot/hooks/st-9f/a%2Fb%20c?x=%2B1&y=a%20b&z&empty="},
		{"/hooks/kore/a;v=1/~u/%E2%9C%93|x?q=%E2%9C%93+ok&r=a|b", "/kore/chatbot/hooks/a;v=1/~u/%E2%9C%93|x?q=%E2%9C%93+ok&r=a|b"},
		{"/hooks/kore/", "/kore/chatbot/hooks/"},
		{"/hooks/kore/exact?token=1", "/exact/in?token=1"},
		{"/hooks/kore/exact/below", "/kore/chatbot/hooks/exact/below"},
	}
	for i, c := range cases {
		if st := rawRequest(t, addr, c.target, fmt.Sprintf(`{"n":%d}`, i)); st != 200 {
			t.Fatalf("%s: status %d", c.target, st)
		}
	}
	for _, bad := range []string{"/hooks/kore/../admin", "/hooks/kore/st/%2e%2e/x", "/hooks/kore/./x", "/hooks/kore", "/hooks/korex/1"} {
		if st := rawRequest(t, addr, bad, `{}`); st != 404 {
			t.Errorf("%s: status %d, want 404", bad, st)
		}
	}
	waitFor(t, 10*time.Second, "every delivery", func() bool {
		return len(plat.received("kore"))+len(plat.received("exact")) == len(cases)
	})
	got := append(plat.received("kore"), plat.received("exact")...)
	for _, c := range cases {
		if !slices.Contains(got, c.want) {
			t.Errorf("%s: delivered as one of %q, want %q", c.target, got, c.want)
		}
	}
}
