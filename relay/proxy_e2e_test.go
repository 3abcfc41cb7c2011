package relay

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyCarriesEveryDeliveryAndUpstreamCall runs one relay whose
// backends and upstreams (and their oauth2 token calls and IAM logins) name
// hosts only the forward proxy can reach, and one relay without proxy: the
// proxy must see every call of the first and none of the second.
func TestProxyCarriesEveryDeliveryAndUpstreamCall(t *testing.T) {
	dir := t.TempDir()
	fp := newForwardProxy(t, "relay:"+secProxyPwd)
	plat := newPlatform(t, false)
	tlsPlat := newPlatform(t, true)
	oauth := newFakeOAuth2(t, "relay-client", secOAuth)
	iam := newFakeIAM(t, "relay-iam", secIAM, "acme-domain", "ap-southeast-1")
	os.WriteFile(filepath.Join(dir, "platform-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsPlat.srv.Certificate().Raw}), 0o600)

	plat.handle("oauth", func(r *http.Request, _ []byte) error { return oauth.check(r) })
	plat.handle("iam", func(r *http.Request, _ []byte) error { return iam.check(r) })
	tlsPlat.handle("tls", func(r *http.Request, _ []byte) error {
		if r.TLS == nil {
			return fmt.Errorf("not over TLS")
		}
		if strings.HasPrefix(r.URL.Path, "/tls/v21.0/") {
			return oauth.check(r) // the upstream's calls carry its oauth2 token
		}
		return nil
	})
	port := func(u string) string { return u[strings.LastIndex(u, ":")+1:] }

	cfg := fmt.Sprintf(`
data_dir = "./data"
log { level = "debug" }
listener "public" { address = "127.0.0.1:0" }
listener "internal" { address = "127.0.0.2:0" }
admin { address = "127.0.0.1:0" }
channel "bsp" {
  listener   = "public"
  path       = "/hooks/bsp"
  auth "none" {}
  forward_to = ["plain", "tls", "oauth", "iam"]
}
backend "plain" {
  url   = "http://aicc.test:%[1]s/plain/in"
  proxy = %[2]q
}
backend "tls" {
  url         = "https://example.com:%[3]s/tls/in"
  trust_store = ["platform-ca.pem"]
  proxy       = %[2]q
}
backend "oauth" {
  url   = "http://kore.test:%[1]s/oauth/in"
  proxy = %[2]q
  inject "oauth2" {
    token_url     = "http://tokens.test:%[4]s/token"
    client_id     = "relay-client"
    client_secret = %[5]q
  }
}
backend "iam" {
  url   = "http://aicc.test:%[1]s/iam/in"
  proxy = %[2]q
  inject "huawei_iam" {
    iam_url  = "http://iam.test:%[6]s"
    domain   = "acme-domain"
    username = "relay-iam"
    password = %[7]q
    project  = "ap-southeast-1"
  }
}
upstream "koo" {
  listener    = "internal"
  path        = "/out/koo/"
  base_url    = "http://koomessage.test:%[1]s/iam"
  allow_paths = ["/**"]
  proxy       = %[2]q
  inject "huawei_iam" {
    iam_url  = "http://iam.test:%[6]s"
    domain   = "acme-domain"
    username = "relay-iam"
    password = %[7]q
    project  = "ap-southeast-1"
  }
}
upstream "graph" {
  listener    = "internal"
  path        = "/out/graph/"
  base_url    = "https://example.com:%[3]s/tls"
  allow_paths = ["/**"]
  trust_store = ["platform-ca.pem"]
  proxy       = %[2]q
  inject "oauth2" {
    token_url     = "http://tokens.test:%[4]s/token"
    client_id     = "relay-client"
    client_secret = %[5]q
  }
}
`, port(plat.srv.URL), fp.url(), port(tlsPlat.srv.URL), port(oauth.srv.URL), secOAuth, port(iam.srv.URL), secIAM)
	tr := startRelayIn(t, dir, cfg)
	internal := "http://" + tr.s.ListenerAddr("internal")

	const n = 3
	for i := range n {
		if res := post(t, tr.base+"/hooks/bsp", []byte(fmt.Sprintf(`{"n":%d}`, i)), ""); res.StatusCode != 200 {
			t.Fatal(res.StatusCode)
		}
	}
	waitFor(t, 15*time.Second, "deliveries through the proxy", func() bool {
		return len(plat.received("plain")) >= n && tlsPlat.passed("tls") >= n && plat.passed("oauth") >= n && plat.passed("iam") >= n
	})
	call := func(path string) int {
		t.Helper()
		res, err := http.Post(internal+path, "application/json", strings.NewReader(`{"to":"1"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	for range n {
		if st := call("/out/koo/v1/messages"); st != 200 {
			t.Fatalf("upstream koo: %d", st)
		}
		if st := call("/out/graph/v21.0/messages"); st != 200 {
			t.Fatalf("upstream graph: %d", st)
		}
	}
	// The upstream's IAM token refused once: one more login, the call
	// is replayed and succeeds.
	loginsBefore := iam.logins.Load()
	iam.revokeAll()
	if st := call("/out/koo/v1/messages"); st != 200 {
		t.Fatalf("upstream koo after revoke: %d", st)
	}
	if got := iam.logins.Load(); got != loginsBefore+1 {
		t.Errorf("IAM logins after the upstream's 401: %d, want %d", got, loginsBefore+1)
	}
	if f := plat.failures(); len(f["oauth"]) > 0 || len(f["iam"]) != 1 {
		t.Errorf("receiver failures: %v", f)
	}

	abs, conn := fp.counts()
	if abs["aicc.test:"+port(plat.srv.URL)] < 2*n {
		t.Errorf("proxy saw %d deliveries to aicc.test, want >= %d (plain + iam)", abs["aicc.test:"+port(plat.srv.URL)], 2*n)
	}
	if abs["kore.test:"+port(plat.srv.URL)] < n {
		t.Errorf("proxy saw %d oauth2 deliveries", abs["kore.test:"+port(plat.srv.URL)])
	}
	if abs["tokens.test:"+port(oauth.srv.URL)] != 2 || int(oauth.fetches.Load()) != 2 {
		t.Errorf("oauth2 token calls through the proxy: %d (fetches %d), want 2 (the backend's and the upstream's)", abs["tokens.test:"+port(oauth.srv.URL)], oauth.fetches.Load())
	}
	if got := abs["iam.test:"+port(iam.srv.URL)]; got != int(iam.logins.Load()) || got != 3 {
		t.Errorf("IAM logins through the proxy: %d of %d, want 3 (backend, upstream, upstream after 401)", got, iam.logins.Load())
	}
	if abs["koomessage.test:"+port(plat.srv.URL)] != n+2 {
		t.Errorf("upstream calls through the proxy: %d, want %d", abs["koomessage.test:"+port(plat.srv.URL)], n+2)
	}
	if conn["example.com:"+port(tlsPlat.srv.URL)] < 1 {
		t.Errorf("no CONNECT tunnel to the TLS platform: %v", conn)
	}
	if tlsPlat.passed("tls") < 2*n {
		t.Errorf("TLS platform got %d requests through CONNECT, want %d", tlsPlat.passed("tls"), 2*n)
	}
	if fp.denied.Load() != 0 {
		t.Errorf("the proxy refused %d requests for their credentials", fp.denied.Load())
	}
	assertNoSecretInLogs(t, tr.logs.String(), secOAuth, secIAM, secProxyPwd)

	// The same relay shape without proxy: the proxy sees nothing more.
	before := fp.total()
	direct := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
listener "internal" { address = "127.0.0.2:0" }
admin { address = "127.0.0.1:0" }
channel "bsp" {
  listener   = "public"
  path       = "/hooks/bsp"
  auth "none" {}
  forward_to = ["plain"]
}
backend "plain" { url = "%[1]s/direct/in" }
upstream "koo" {
  listener    = "internal"
  path        = "/out/koo/"
  base_url    = "%[1]s/direct"
  allow_paths = ["/**"]
}
`, plat.srv.URL))
	for i := range n {
		post(t, direct.base+"/hooks/bsp", []byte(fmt.Sprintf(`{"d":%d}`, i)), "")
		res, err := http.Get("http://" + direct.s.ListenerAddr("internal") + "/out/koo/x")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("direct upstream: %v %v", err, res)
		}
		res.Body.Close()
	}
	waitFor(t, 10*time.Second, "direct deliveries", func() bool { return len(plat.received("direct")) >= 2*n })
	if fp.total() != before {
		t.Errorf("the proxy saw %d calls of a relay without proxy", fp.total()-before)
	}
}

// TestProxyFromEnvironment: proxy = "env" takes HTTP_PROXY.
func TestProxyFromEnvironment(t *testing.T) {
	fp := newForwardProxy(t, "")
	plat := newPlatform(t, false)
	t.Setenv("HTTP_PROXY", fp.url())
	t.Setenv("HTTPS_PROXY", "")
	t.Setenv("NO_PROXY", "")
	port := plat.srv.URL[strings.LastIndex(plat.srv.URL, ":")+1:]
	tr := startRelay(t, fmt.Sprintf(`
data_dir = "./data"
listener "public" { address = "127.0.0.1:0" }
admin { address = "127.0.0.1:0" }
channel "bsp" {
  listener   = "public"
  path       = "/hooks/bsp"
  auth "none" {}
  forward_to = ["env"]
}
backend "env" {
  url   = "http://webex.test:%s/env/in"
  proxy = "env"
}
`, port))
	post(t, tr.base+"/hooks/bsp", []byte(`{}`), "")
	waitFor(t, 10*time.Second, "delivery through the environment's proxy", func() bool { return len(plat.received("env")) == 1 })
	if abs, _ := fp.counts(); abs["webex.test:"+port] != 1 {
		t.Errorf("proxy counts %v", abs)
	}
}
