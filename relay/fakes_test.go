package relay

// Test doubles of the platforms a relay talks to: a forward proxy, a
// receiving platform that checks credentials, Huawei IAM and an OAuth2
// token endpoint, all real HTTP servers on 127.0.0.1.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// forwardProxy is an HTTP forward proxy for tests: absolute-URI requests
// and CONNECT tunnels. Every host it is asked for is reached on 127.0.0.1
// at the same port, so a relay can name hosts ("aicc.test") that only the
// proxy can reach. It counts what it forwarded and checks credentials.
type forwardProxy struct {
	srv      *httptest.Server
	user     string // "user:pass" required when set
	mu       sync.Mutex
	absolute map[string]int // host → absolute-URI requests
	connects map[string]int // host → CONNECT tunnels
	denied   atomic.Int32
}

func newForwardProxy(t *testing.T, user string) *forwardProxy {
	t.Helper()
	fp := &forwardProxy{user: user, absolute: map[string]int{}, connects: map[string]int{}}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, loopback(addr))
		},
	}
	fp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fp.user != "" {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(fp.user))
			if r.Header.Get("Proxy-Authorization") != want {
				fp.denied.Add(1)
				w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusProxyAuthRequired)
				return
			}
		}
		if r.Method == http.MethodConnect {
			fp.mu.Lock()
			fp.connects[r.Host]++
			fp.mu.Unlock()
			up, err := net.Dial("tcp", loopback(r.Host))
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusOK)
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				up.Close()
				return
			}
			go func() {
				if n := buf.Reader.Buffered(); n > 0 {
					b, _ := buf.Reader.Peek(n)
					up.Write(b)
				}
				io.Copy(up, conn)
				up.Close()
			}()
			io.Copy(conn, up)
			conn.Close()
			return
		}
		if !r.URL.IsAbs() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fp.mu.Lock()
		fp.absolute[r.URL.Host]++
		fp.mu.Unlock()
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Del("Proxy-Authorization")
		out.Header.Del("Proxy-Connection")
		res, err := tr.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
	}))
	t.Cleanup(fp.srv.Close)
	t.Cleanup(tr.CloseIdleConnections)
	return fp
}

// loopback maps host:port to 127.0.0.1:port.
func loopback(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "127.0.0.1:" + port
}

func (fp *forwardProxy) url() string {
	u := strings.TrimPrefix(fp.srv.URL, "http://")
	if fp.user != "" {
		return "http://" + fp.user + "@" + u
	}
	return "http://" + u
}

func (fp *forwardProxy) counts() (abs, conn map[string]int) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	abs, conn = map[string]int{}, map[string]int{}
	for k, v := range fp.absolute {
		abs[k] = v
	}
	for k, v := range fp.connects {
		conn[k] = v
	}
	return abs, conn
}

func (fp *forwardProxy) total() int {
	a, c := fp.counts()
	n := 0
	for _, v := range a {
		n += v
	}
	for _, v := range c {
		n += v
	}
	return n
}

// platform is a receiving server that checks each delivery the way the
// platform would, by path, and counts passes and failures.
type platform struct {
	srv    *httptest.Server
	mu     sync.Mutex
	ok     map[string]int
	bad    map[string][]string
	checks map[string]func(r *http.Request, body []byte) error
	uris   map[string][]string // path prefix → request URIs received
}

func newPlatform(t *testing.T, tlsOn bool) *platform {
	t.Helper()
	p := &platform{ok: map[string]int{}, bad: map[string][]string{}, checks: map[string]func(*http.Request, []byte) error{}, uris: map[string][]string{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seg := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
		p.mu.Lock()
		check := p.checks[seg]
		p.uris[seg] = append(p.uris[seg], r.RequestURI)
		p.mu.Unlock()
		if check == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		if err := check(r, body); err != nil {
			p.mu.Lock()
			p.bad[seg] = append(p.bad[seg], err.Error())
			p.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		p.ok[seg]++
		p.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	if tlsOn {
		p.srv = httptest.NewTLSServer(h)
	} else {
		p.srv = httptest.NewServer(h)
	}
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) handle(seg string, check func(r *http.Request, body []byte) error) {
	p.mu.Lock()
	p.checks[seg] = check
	p.mu.Unlock()
}

func (p *platform) passed(seg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok[seg]
}

func (p *platform) failures() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	for k, v := range p.bad {
		out[k] = append([]string(nil), v...)
	}
	return out
}

func (p *platform) received(seg string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.uris[seg]...)
}

// fakeIAM is a Huawei IAM token endpoint that counts logins; the tokens it
// issued are valid until revoked.
type fakeIAM struct {
	srv    *httptest.Server
	logins atomic.Int32
	mu     sync.Mutex
	valid  map[string]bool
	bad    atomic.Int32
}

func newFakeIAM(t *testing.T, user, password, domain, project string) *fakeIAM {
	t.Helper()
	f := &fakeIAM{valid: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/auth/tokens" {
			f.bad.Add(1)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		var req struct {
			Auth struct {
				Identity struct {
					Methods  []string `json:"methods"`
					Password struct {
						User struct {
							Name     string `json:"name"`
							Password string `json:"password"`
							Domain   struct {
								Name string `json:"name"`
							} `json:"domain"`
						} `json:"user"`
					} `json:"password"`
				} `json:"identity"`
				Scope struct {
					Project *struct {
						Name string `json:"name"`
					} `json:"project"`
				} `json:"scope"`
			} `json:"auth"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			f.bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		u := req.Auth.Identity.Password.User
		if len(req.Auth.Identity.Methods) != 1 || req.Auth.Identity.Methods[0] != "password" || u.Name != user ||
			u.Password != password || u.Domain.Name != domain || req.Auth.Scope.Project == nil || req.Auth.Scope.Project.Name != project {
			f.bad.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n := f.logins.Add(1)
		tok := fmt.Sprintf("MIIiam-token-%d", n)
		f.mu.Lock()
		f.valid[tok] = true
		f.mu.Unlock()
		w.Header().Set("X-Subject-Token", tok)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":{"expires_at":%q,"methods":["password"],"user":{"name":%q}}}`,
			time.Now().Add(24*time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z"), user)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIAM) check(r *http.Request) error {
	tok := r.Header.Get("X-Auth-Token")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.valid[tok] {
		return fmt.Errorf("X-Auth-Token %q not valid", tok)
	}
	return nil
}

func (f *fakeIAM) revokeAll() {
	f.mu.Lock()
	f.valid = map[string]bool{}
	f.mu.Unlock()
}

// fakeOAuth2 is a client-credentials token endpoint.
type fakeOAuth2 struct {
	srv     *httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	valid   map[string]bool
}

func newFakeOAuth2(t *testing.T, id, secret string) *fakeOAuth2 {
	t.Helper()
	f := &fakeOAuth2{valid: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		u, p, ok := r.BasicAuth()
		if !ok {
			u, p = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.PostForm.Get("grant_type") != "client_credentials" || u != id || p != secret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		tok := fmt.Sprintf("oauth-tok-%d", f.fetches.Add(1))
		f.mu.Lock()
		f.valid[tok] = true
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOAuth2) check(r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !ok || !f.valid[tok] {
		return fmt.Errorf("bad oauth2 token %q", r.Header.Get("Authorization"))
	}
	return nil
}
