package relay

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	relaytls "github.com/edgerelay/edgerelay/tls"
)

const (
	viewerToken   = "viewer-token-0123456789abcdef"
	operatorToken = "operator-token-0123456789abcdef"
)

// adminTokensBlock is an admin block with a viewer "noc" and an operator "ops".
const adminTokensBlock = `
admin {
  address = "127.0.0.1:0"
  hosts   = ["ops.example.com"]
  token "noc" {
    value = "` + viewerToken + `"
    role  = "viewer"
  }
  token "ops" {
    value = "` + operatorToken + `"
    role  = "operator"
  }
}
`

// withAdmin replaces metaConfig's admin block.
func withAdmin(cfg, block string) string {
	return strings.Replace(cfg, `admin { address = "127.0.0.1:0" }`, block, 1)
}

// adminDo sends one admin request; token "" sends none.
func adminDo(t *testing.T, method, url, token, contentType string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// deadLetterIDs lists the dead letters' event ids through the API.
func deadLetterIDs(t *testing.T, admin, token string) []string {
	t.Helper()
	_, b := adminDo(t, "GET", admin+"/api/v1/deadletters", token, "", nil)
	var list struct {
		DeadLetters []DeadLetterJSON `json:"dead_letters"`
	}
	json.Unmarshal(b, &list)
	var ids []string
	for _, d := range list.DeadLetters {
		ids = append(ids, d.EventID)
	}
	return ids
}

// rejectingRelay runs a relay with the given admin block whose backend
// answers 400, and sends n callbacks that all become dead letters.
func rejectingRelay(t *testing.T, adminBlock string, n int, edit ...func(string) string) (*testRelay, *recorder, *atomic.Bool, []string) {
	t.Helper()
	be := newRecorder(t)
	reject := &atomic.Bool{}
	reject.Store(true)
	be.fail = func(recorded) int {
		if reject.Load() {
			return 400
		}
		return 0
	}
	cfg := withAdmin(metaConfig(be.srv.URL), adminBlock)
	for _, e := range edit {
		cfg = e(cfg)
	}
	r := startRelay(t, cfg)
	for i := range n {
		body := metaBody(fmt.Sprintf("wamid.dead-%d", i), fmt.Sprintf("49151000001%02d", i))
		post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	}
	admin := "http://" + r.s.AdminAddr()
	var ids []string
	waitFor(t, 10*time.Second, "dead letters", func() bool {
		ids = deadLetterIDs(t, admin, operatorToken)
		return len(ids) == n
	})
	return r, be, reject, ids
}

// TestAdminRoles: every endpoint × (no token, viewer, operator, wrong
// token) → status, plus the 401 challenge and the audit line.
func TestAdminRoles(t *testing.T) {
	r, _, _, ids := rejectingRelay(t, adminTokensBlock, 4)
	admin := "http://" + r.s.AdminAddr()
	const wrong = "not-a-token-at-all-0123456789"
	type row struct {
		method, path                string
		none, viewer, operator, bad int
	}
	rows := []row{
		{"GET", "/healthz", 200, 200, 200, 200},
		{"GET", "/readyz", 200, 200, 200, 200},
		{"GET", "/metrics", 401, 200, 200, 401},
		{"GET", "/api/v1/queues", 401, 200, 200, 401},
		{"GET", "/api/v1/deadletters", 401, 200, 200, 401},
		{"GET", "/api/v1/deadletters?backend=b0&channel=meta", 401, 200, 200, 401},
		{"GET", "/api/v1/deadletters/" + ids[0], 401, 200, 200, 401},
		{"GET", "/api/v1/deadletters/no-such-event", 401, 404, 404, 401},
		{"GET", "/api/v1/certs", 401, 200, 200, 401},
		{"POST", "/api/v1/deadletters/" + ids[0] + "/replay", 401, 403, 200, 401},
		{"DELETE", "/api/v1/deadletters/" + ids[1], 401, 403, 200, 401},
		{"DELETE", "/api/v1/deadletters/" + ids[1], 401, 403, 404, 401}, // already purged
		{"POST", "/api/v1/deadletters/replay?backend=b0", 401, 403, 200, 401},
		{"POST", "/api/v1/deadletters/purge?backend=b0", 401, 403, 200, 401},
		// A backend nobody configured and the queue does not know: 404, not "0 replayed".
		{"POST", "/api/v1/deadletters/replay?backend=b9", 401, 403, 404, 401},
		{"POST", "/api/v1/deadletters/" + ids[2] + "/replay?backend=b9", 401, 403, 404, 401},
		{"DELETE", "/api/v1/deadletters/" + ids[2] + "?backend=b9", 401, 403, 404, 401},
		{"POST", "/api/v1/deadletters/purge?backend=b9", 401, 403, 404, 401},
	}
	for _, rw := range rows {
		for _, who := range []struct {
			name, token string
			want        int
		}{{"none", "", rw.none}, {"wrong", wrong, rw.bad}, {"viewer", viewerToken, rw.viewer}, {"operator", operatorToken, rw.operator}} {
			ct := ""
			if rw.method != "GET" {
				ct = "application/json"
			}
			resp, body := adminDo(t, rw.method, admin+rw.path, who.token, ct, nil)
			if resp.StatusCode != who.want {
				t.Errorf("%s %s as %s: %d, want %d (%s)", rw.method, rw.path, who.name, resp.StatusCode, who.want, body)
			}
			if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s as %s: 401 without WWW-Authenticate: Bearer", rw.method, rw.path, who.name)
			}
		}
	}

	resp, body := adminDo(t, "POST", admin+"/api/v1/deadletters/replay?backend=b9", operatorToken, "application/json", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), `unknown backend \"b9\" (known: b0)`) {
		t.Errorf("replay for an unknown backend: %d %s", resp.StatusCode, body)
	}

	// One audit line per mutating action, with who, from where, what, which.
	audits := auditLines(t, r.logs.String())
	var purgeOne map[string]any
	for _, a := range audits {
		if a["action"] == "purge" && a["result"] == "ok" {
			purgeOne = a
		}
	}
	if purgeOne == nil {
		t.Fatalf("no audit line for the purge of one dead letter in:\n%v", audits)
	}
	if purgeOne["token"] != "ops" || !strings.HasPrefix(fmt.Sprint(purgeOne["client"]), "127.0.0.1:") ||
		fmt.Sprint(purgeOne["ids"]) != "["+ids[1]+"]" || purgeOne["count"] != float64(1) {
		t.Errorf("audit line of a purge: %v", purgeOne)
	}
	// Successful operator writes: replay, purge, purge (404), replay_all, purge_all = 5.
	if len(audits) != 5 {
		t.Errorf("%d audit lines, want 5 (one per operator write, none for refused ones):\n%v", len(audits), audits)
	}
	var all map[string]any
	for _, a := range audits {
		if a["action"] == "purge_all" {
			all = a
		}
	}
	if all == nil || all["backend"] != "b0" || all["result"] != "ok" || all["token"] != "ops" {
		t.Errorf("audit line of purge all: %v", all)
	}
	if strings.Contains(r.logs.String(), operatorToken) || strings.Contains(r.logs.String(), viewerToken) {
		t.Error("a token value appears in the log")
	}
}

func auditLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "admin action" {
			out = append(out, m)
		}
	}
	return out
}

// TestAdminViewerSeesNoContent: a viewer gets the event's metadata but
// neither its body nor its headers; an operator gets both.
func TestAdminViewerSeesNoContent(t *testing.T) {
	r, _, _, ids := rejectingRelay(t, adminTokensBlock, 1)
	admin := "http://" + r.s.AdminAddr()
	get := func(token string) map[string]any {
		_, b := adminDo(t, "GET", admin+"/api/v1/deadletters/"+ids[0], token, "", nil)
		var m struct {
			Event map[string]any `json:"event"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Event
	}
	v, o := get(viewerToken), get(operatorToken)
	if _, ok := v["body"]; ok {
		t.Errorf("viewer sees the body: %v", v)
	}
	if _, ok := v["header"]; ok {
		t.Errorf("viewer sees the headers: %v", v)
	}
	if v["id"] != ids[0] || v["body_size"].(float64) == 0 {
		t.Errorf("viewer should see the metadata: %v", v)
	}
	if _, ok := o["body"]; !ok {
		t.Errorf("operator does not see the body: %v", o)
	}
	if _, ok := o["header"]; !ok {
		t.Errorf("operator does not see the headers: %v", o)
	}
}

// TestAdminCrossSiteAndHost: without tokens (loopback), a cross-site form
// POST cannot purge, a foreign Host is refused with 421, and the detail
// endpoint does not show an event that is not a dead letter.
func TestAdminCrossSiteAndHost(t *testing.T) {
	r, _, _, ids := rejectingRelay(t, `admin {
  address = "127.0.0.1:0"
  hosts   = ["ops.example.com"]
}`, 3)
	admin := "http://" + r.s.AdminAddr()
	resp, _ := adminDo(t, "POST", admin+"/api/v1/deadletters/purge", "", "application/x-www-form-urlencoded",
		map[string]string{"Origin": "https://evil.example"})
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("cross-site form purge: %d, want 415", resp.StatusCode)
	}
	for _, ct := range []string{"", "text/plain", "multipart/form-data; boundary=x"} {
		if resp, _ := adminDo(t, "POST", admin+"/api/v1/deadletters/"+ids[0]+"/replay", "", ct, nil); resp.StatusCode != 415 {
			t.Errorf("replay with Content-Type %q: %d, want 415", ct, resp.StatusCode)
		}
	}
	if got := deadLetterIDs(t, admin, ""); len(got) != 3 {
		t.Fatalf("refused writes changed the dead letters: %v", got)
	}
	for host, want := range map[string]int{
		"evil.example":         421,
		"evil.example:80":      421,
		"ops.example.com:9090": 200,
		"OPS.example.com":      200,
		"localhost:1234":       200,
		"127.0.0.1":            200,
		"[::1]:9090":           200,
	} {
		if resp, _ := adminDo(t, "GET", admin+"/api/v1/queues", "", "", map[string]string{"Host": host}); resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	if resp, _ := adminDo(t, "GET", admin+"/healthz", "", "", map[string]string{"Host": "10.1.2.3:9090"}); resp.StatusCode != 200 {
		t.Errorf("/healthz by IP: %d, want 200 (probes)", resp.StatusCode)
	}
	if resp, _ := adminDo(t, "DELETE", admin+"/api/v1/deadletters/"+ids[0], "", "application/json", map[string]string{"Host": "evil.example"}); resp.StatusCode != 421 {
		t.Errorf("DELETE with a foreign Host: %d, want 421", resp.StatusCode)
	}

	// A delivered (retained) or pending event is not a dead letter.
	ev, err := r.s.Queue().DeadLetters("", 0)
	if err != nil || len(ev) != 3 {
		t.Fatal(err)
	}
	resp, _ = adminDo(t, "POST", admin+"/api/v1/deadletters/"+ids[0]+"/replay", "", "application/json", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("replay: %d", resp.StatusCode)
	}
	// Just replayed: pending (or being attempted) until the 400 makes it dead again.
	if resp, b := adminDo(t, "GET", admin+"/api/v1/deadletters/"+ids[0], "", "", nil); resp.StatusCode == 200 && strings.Contains(string(b), `"dead_letters": []`) {
		t.Errorf("detail shows an event with no dead letter: %s", b)
	}
}

// TestAdminPendingEventNotShown: the detail endpoint answers 404 for an
// event that is only pending.
func TestAdminPendingEventNotShown(t *testing.T) {
	be := newRecorder(t)
	be.status.Store(503)
	cfg := strings.Replace(metaConfig(be.srv.URL), `initial = "20ms"`, `initial = "1h"`, 1)
	cfg = strings.Replace(cfg, `max     = "200ms"`, `max     = "2h"`, 1)
	r := startRelay(t, cfg)
	body := metaBody("wamid.pending", "4915100000200")
	post(t, r.base+"/hooks/meta", body, sign(testSecret, body))
	var id string
	waitFor(t, 5*time.Second, "a pending event", func() bool {
		for _, st := range r.s.Queue().Stats() {
			if st.Pending+st.InFlight == 1 {
				id = strings.TrimSpace(r.logs.String())
				return strings.Contains(id, `"event_id"`)
			}
		}
		return false
	})
	m := regexp.MustCompile(`"event_id":"([^"]+)"`).FindStringSubmatch(r.logs.String())
	if m == nil {
		t.Fatal("no event id in the log")
	}
	if ev, _, err := r.s.Queue().Get(m[1]); err != nil || ev == nil {
		t.Fatalf("the event should be in the queue: %v", err)
	}
	resp, b := adminDo(t, "GET", "http://"+r.s.AdminAddr()+"/api/v1/deadletters/"+m[1], "", "", nil)
	if resp.StatusCode != 404 {
		t.Errorf("pending event through the dead-letter endpoint: %d, want 404 (%s)", resp.StatusCode, b)
	}
}

// TestAdminJSONSnakeCase walks every admin JSON response and checks that
// each key is snake_case (header names inside an event are data, not keys).
func TestAdminJSONSnakeCase(t *testing.T) {
	r, _, _, ids := rejectingRelay(t, adminTokensBlock, 2)
	admin := "http://" + r.s.AdminAddr()
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !snake.MatchString(k) {
					t.Errorf("%s: key %q is not snake_case", path, k)
				}
				if k == "header" {
					continue
				}
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		}
	}
	for _, req := range []struct{ method, path string }{
		{"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/api/v1/queues"}, {"GET", "/api/v1/deadletters"},
		{"GET", "/api/v1/deadletters/" + ids[0]}, {"GET", "/api/v1/deadletters/nope"}, {"GET", "/api/v1/certs"},
		{"POST", "/api/v1/deadletters/" + ids[0] + "/replay"}, {"DELETE", "/api/v1/deadletters/" + ids[1]},
		{"POST", "/api/v1/deadletters/replay"}, {"POST", "/api/v1/deadletters/purge"},
	} {
		for _, tok := range []string{operatorToken, viewerToken, ""} {
			resp, b := adminDo(t, req.method, admin+req.path, tok, "application/json", nil)
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s %s: Content-Type %q", req.method, req.path, resp.Header.Get("Content-Type"))
				continue
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s %s: not JSON: %v", req.method, req.path, err)
			}
			walk(req.method+" "+req.path, v)
		}
	}
}

// TestAdminMetricsPublic: /metrics without a token when metrics_public.
func TestAdminMetricsPublic(t *testing.T) {
	block := strings.Replace(adminTokensBlock, `hosts   = ["ops.example.com"]`, `metrics_public = true`, 1)
	r := startRelay(t, withAdmin(metaConfig("http://127.0.0.1:1"), block))
	admin := "http://" + r.s.AdminAddr()
	if resp, b := adminDo(t, "GET", admin+"/metrics", "", "", nil); resp.StatusCode != 200 || !strings.Contains(string(b), "edgerelay_queue_size_bytes") {
		t.Errorf("public metrics: %d", resp.StatusCode)
	}
	if resp, _ := adminDo(t, "GET", admin+"/api/v1/queues", "", "", nil); resp.StatusCode != 401 {
		t.Errorf("queues stay protected: %d", resp.StatusCode)
	}
}

// TestAdminConfigValidation: the admin block's problems, each at its place.
func TestAdminConfigValidation(t *testing.T) {
	base := metaConfig("http://127.0.0.1:1")
	cases := []struct {
		name, block string
		want        []string // substrings of the diagnostics; none = valid
	}{
		{"public without protection", `admin { address = "0.0.0.0:9090" }`, []string{"relay.hcl:8:", "unprotected admin address", "0.0.0.0:9090"}},
		{"all interfaces", `admin { address = ":9090" }`, []string{"unprotected admin address"}},
		{"public with a token", `admin {
  address = "0.0.0.0:9090"
  token "ops" {
    value = "` + operatorToken + `"
    role  = "operator"
  }
}`, nil},
		{"loopback name", `admin { address = "localhost:9090" }`, nil},
		{"bad role and short token", `admin {
  address = "127.0.0.1:9090"
  token "a" {
    value = "short"
    role  = "admin"
  }
  token "a" {
    value = "` + operatorToken + `"
    role  = "viewer"
  }
  token "b" {
    role = "viewer"
  }
}`, []string{"token too short", "invalid role", `"admin"`, "duplicate token", "missing value"}},
		{"tls without key", `admin {
  address = "127.0.0.1:9090"
  tls { cert_file = "x.pem" }
}`, []string{"incomplete certificate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "relay.hcl")
			os.WriteFile(file, []byte(withAdmin(base, c.block)), 0o600)
			_, diags := LoadConfig(file)
			out := FormatDiagnostics(diags)
			if c.want == nil {
				if diags.HasErrors() {
					t.Fatalf("want valid, got:\n%s", out)
				}
				return
			}
			if !diags.HasErrors() {
				t.Fatal("want errors, got a valid file")
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("diagnostics lack %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestAdminMutualTLS: an admin listener on TLS with client_ca (no
// tokens): no certificate, no handshake; a certificate of the CA gets in
// and is named in the audit line.
func TestAdminMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "Ops Root")
	caDER, leaf := privateCA(t)
	os.WriteFile(filepath.Join(dir, "ops-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der}), 0o600)
	os.WriteFile(filepath.Join(dir, "admin.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o600)
	kb, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	os.WriteFile(filepath.Join(dir, "admin.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	cfg := withAdmin(metaConfig("http://127.0.0.1:1"), `admin {
  address = "127.0.0.1:0"
  tls {
    cert_file = "admin.pem"
    key_file  = "admin.key"
    client_ca = ["ops-ca.pem"]
  }
}`)
	r := startRelayIn(t, dir, cfg)
	roots := x509.NewCertPool()
	c, _ := x509.ParseCertificate(caDER)
	roots.AddCert(c)
	client := func(cert *tls.Certificate) *http.Client {
		tc := &tls.Config{RootCAs: roots}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
	}
	url := "https://" + r.s.AdminAddr() + "/api/v1/deadletters/purge"
	req, _ := http.NewRequest("POST", url, nil)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := client(nil).Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("no client certificate: the handshake must fail")
	}
	op := ca.client(t, "alice.ops")
	req, _ = http.NewRequest("POST", url, nil)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client(&op).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with a client certificate: %v %v", err, resp)
	}
	resp.Body.Close()
	a := auditLines(t, r.logs.String())
	if len(a) != 1 || a[0]["token"] != "cert:alice.ops" {
		t.Errorf("audit lines: %v", a)
	}
	if certs := r.s.certificates(); !slices.ContainsFunc(certs, func(ci relaytls.CertInfo) bool { return ci.Listener == "admin" }) {
		t.Errorf("the admin certificate is not listed: %v", certs)
	}
}
