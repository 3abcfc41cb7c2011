package outbound

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPathAndMethodTricksAreRefused sends request lines that try to leave
// the allow-list or reach another host, over raw TCP so that nothing cleans
// them on the way, to the proxy behind the Router and to the proxy alone.
func TestPathAndMethodTricksAreRefused(t *testing.T) {
	ca := newTestCA(t)
	bsp := &counting{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})}
	bspSrv := ca.startTLS(t, bsp)
	decoy := &counting{}
	decoySrv := httptest.NewServer(decoy)
	t.Cleanup(decoySrv.Close)
	decoyHost := strings.TrimPrefix(decoySrv.URL, "http://")
	bspHost := strings.TrimPrefix(bspSrv.URL, "https://")

	spec := Spec{
		Name:       "infobip",
		Path:       "/out/infobip/",
		BaseURL:    bspSrv.URL + "/api",
		AllowPaths: []string{"/whatsapp/1/message/*", "/media/**"},
		TLS:        ca.clientTLS(t),
		Inject:     []Injector{HeaderInject{Name: "Authorization", Value: "App secret"}},
	}
	p, _ := newProxy(t, spec)
	direct := startRelay(t, p)
	routed := startRelay(t, NewRouter(p))
	// Hosts lists the names callers use for the relay.
	hostSpec := spec
	hostSpec.Name = "infobip-hosts"
	hostP, _ := newProxy(t, hostSpec)
	hostSrv := startRelay(t, hostP)
	if err := hostP.Update(func() Spec {
		s := hostSpec
		s.Hosts = []string{strings.TrimPrefix(hostSrv.URL, "http://"), "relay.internal"}
		return s
	}()); err != nil {
		t.Fatal(err)
	}

	ok := "/out/infobip/whatsapp/1/message/text"
	cases := []struct {
		name, method, target, host string
		onlyHosts                  bool // needs Spec.Hosts
	}{
		{"dotdot", "GET", "/out/infobip/../admin", "", false},
		{"dotdot deep", "GET", "/out/infobip/whatsapp/1/message/../../../../etc/passwd", "", false},
		{"dotdot to sibling", "GET", "/out/infobip/whatsapp/1/message/../../2/x", "", false},
		{"encoded dotdot", "GET", "/out/infobip/%2e%2e/x", "", false},
		{"encoded dotdot mixed case", "GET", "/out/infobip/%2E%2e/%2e%2E/x", "", false},
		{"half encoded dotdot", "GET", "/out/infobip/.%2e/whatsapp/1/message/text", "", false},
		{"double slash", "GET", "/out/infobip//whatsapp/1/message/text", "", false},
		{"double slash inside", "GET", "/out/infobip/whatsapp//1/message/text", "", false},
		{"encoded slash", "GET", "/out/infobip/whatsapp/1/message/..%2f..%2fadmin", "", false},
		{"encoded slash upper", "GET", "/out/infobip/whatsapp%2F1/message/text", "", false},
		{"encoded backslash", "GET", "/out/infobip/whatsapp/1/message/%5c..%5cadmin", "", false},
		{"backslash", "GET", "/out/infobip/whatsapp/1/message\\..\\..\\admin", "", false},
		{"nul byte", "GET", "/out/infobip/whatsapp/1/message/te%00xt", "", false},
		{"crlf", "GET", "/out/infobip/whatsapp/1/message/te%0d%0aX:%20y", "", false},
		{"absolute URL to decoy", "GET", "http://" + decoyHost + ok, "", false},
		{"absolute URL to BSP", "GET", "https://" + bspHost + "/api/whatsapp/1/message/text", "", false},
		{"absolute URL to the relay itself", "GET", "http://relay.internal" + ok, "", false},
		{"CONNECT decoy", "CONNECT", decoyHost, "", false},
		{"CONNECT BSP", "CONNECT", bspHost, "", false},
		{"TRACE", "TRACE", ok, "", false},
		{"DELETE not allowed", "DELETE", ok, "", false},
		{"PUT not allowed", "PUT", ok, "", false},
		{"PATCH not allowed", "PATCH", ok, "", false},
		{"outside allow_paths", "GET", "/out/infobip/whatsapp/1/contacts", "", false},
		{"star stays in its segment", "GET", "/out/infobip/whatsapp/1/message/a/b", "", false},
		{"case matters", "GET", "/out/infobip/WhatsApp/1/message/text", "", false},
		{"prefix confusion", "GET", "/out/infobipX/whatsapp/1/message/text", "", false},
		{"prefix without slash", "GET", "/out/infobip", "", false},
		{"encoded prefix", "GET", "/out/%69nfobip/whatsapp/1/message/text", "", false},
		{"outside the mount", "GET", "/admin/whatsapp/1/message/text", "", false},
		{"host header elsewhere", "GET", ok, decoyHost, true},
		{"host header is the BSP", "GET", ok, bspHost, true},
	}
	servers := []struct {
		name string
		srv  *httptest.Server
	}{{"router", routed}, {"proxy", direct}, {"hosts", hostSrv}}
	for _, sv := range servers {
		for _, tc := range cases {
			if tc.onlyHosts && sv.name != "hosts" {
				continue
			}
			t.Run(sv.name+"/"+tc.name, func(t *testing.T) {
				host := tc.host
				if host == "" {
					host = strings.TrimPrefix(sv.srv.URL, "http://")
				}
				raw := tc.method + " " + tc.target + " HTTP/1.1\r\nHost: " + host +
					"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
				res := rawRequest(t, strings.TrimPrefix(sv.srv.URL, "http://"), raw)
				decodeError(t, res, http.StatusForbidden)
			})
		}
	}
	if n := bsp.n.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the BSP", n)
	}
	if n := decoy.n.Load(); n != 0 {
		t.Fatalf("%d refused requests reached another address", n)
	}

	// The same relays do forward what is allowed, including a harmless
	// dot segment that stays inside the mount point.
	for _, sv := range servers {
		for _, target := range []string{ok, "/out/infobip/whatsapp/1/message/x/../text",
			"/out/infobip/media/a/b/c.jpg", "/out/infobip/media"} {
			raw := "POST " + target + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(sv.srv.URL, "http://") +
				"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
			res := rawRequest(t, strings.TrimPrefix(sv.srv.URL, "http://"), raw)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: status %d", sv.name, target, res.StatusCode)
			}
		}
	}
	if n := bsp.n.Load(); n != 12 {
		t.Fatalf("the BSP saw %d allowed requests, want 12", n)
	}
	if decoy.n.Load() != 0 {
		t.Fatal("a request reached another address")
	}
}

func TestRouterDispatch(t *testing.T) {
	ca := newTestCA(t)
	mk := func(tag string) *httptest.Server {
		return ca.startTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(tag + " " + r.URL.Path))
		}))
	}
	a, b := mk("a"), mk("b")
	pa, _ := newProxy(t, Spec{Name: "a", Path: "/out/a", BaseURL: a.URL, AllowPaths: []string{"/**"}, TLS: ca.clientTLS(t)})
	pb, _ := newProxy(t, Spec{Name: "b", Path: "/out/a/b/", BaseURL: b.URL, AllowPaths: []string{"/**"}, TLS: ca.clientTLS(t)})
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	rt := NewRouter(pa, pb)
	rt.Fallback = fallback
	srv := startRelay(t, rt)
	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/out/a/x"); code != 200 || body != "a /x" {
		t.Fatalf("/out/a/x: %d %q", code, body)
	}
	if code, body := get("/out/a/b/y"); code != 200 || body != "b /y" {
		t.Fatalf("longest prefix: %d %q", code, body)
	}
	if code, _ := get("/hooks/meta"); code != http.StatusTeapot {
		t.Fatalf("fallback: %d", code)
	}
	rt.Set(pa)
	if code, body := get("/out/a/b/y"); code != 200 || body != "a /b/y" {
		t.Fatalf("after Set: %d %q", code, body)
	}
	rt2 := startRelay(t, NewRouter(pb))
	res, err := http.Get(rt2.URL + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	if eb := decodeError(t, res, http.StatusForbidden); eb.Code != CodeNoUpstream {
		t.Fatalf("code %q", eb.Code)
	}
}
