package relay

import (
	"net/http"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/relay/h1"
)

// TestDeliveryTransportChoice: plain http without a proxy goes through
// relay/h1 (net/http behind it for what it does not handle); https and
// proxies keep net/http's client.
func TestDeliveryTransportChoice(t *testing.T) {
	for _, c := range []struct {
		url, proxy string
		lean       bool
	}{
		{"http://127.0.0.1:9000/events", "", true},
		{"http://backend.internal/hooks/{path}{query}", "", true},
		{"https://127.0.0.1:9000/events", "", false},
		{"http://127.0.0.1:9000/events", "http://proxy.internal:3128", false},
		{"http://127.0.0.1:9000/events", "env", false},
	} {
		rt, err := newBackendRuntime(&BackendConfig{Name: "b", URL: c.url, Proxy: c.proxy, Timeout: 3 * time.Second, Concurrency: 4}, nil)
		if err != nil {
			t.Fatalf("%s (proxy %q): %v", c.url, c.proxy, err)
		}
		lean, ok := rt.client.Transport.(*h1.Transport)
		if ok != c.lean {
			t.Fatalf("%s (proxy %q): transport %T", c.url, c.proxy, rt.client.Transport)
		}
		if !ok {
			if rt.client.Timeout != 3*time.Second {
				t.Fatalf("%s: net/http client without the backend's timeout", c.url)
			}
			continue
		}
		if _, std := lean.Fallback.(*http.Transport); !std || lean.MaxIdlePerHost != 8 {
			t.Fatalf("%s: fallback %T, MaxIdlePerHost %d (want net/http, 2 × concurrency)", c.url, lean.Fallback, lean.MaxIdlePerHost)
		}
	}
}
