package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/relay"
)

// adminEnvToken is the environment variable that gives the admin API's
// bearer token when -token is not written (a token on the command line is
// visible to every user of the machine in ps).
const adminEnvToken = "EDGERELAY_ADMIN_TOKEN"

// adminOpts are the flags of every command that calls the admin API.
type adminOpts struct {
	config, admin, token string
	cacert, cert, key    string
}

const adminFlagsUsage = `
Where the admin API is (one of them is required):
  -admin HOST:PORT or URL   e.g. 127.0.0.1:9090, https://ops.example.com:9443
  -config FILE              the relay's configuration (only its admin block is read)
Bearer token: -token T, or the environment variable EDGERELAY_ADMIN_TOKEN.
`

func addAdminFlags(fs *flag.FlagSet) *adminOpts {
	o := &adminOpts{}
	fs.StringVar(&o.admin, "admin", "", "admin API address: HOST:PORT or URL")
	fs.StringVar(&o.config, "config", "", "configuration file whose admin block says where the admin API is")
	fs.StringVar(&o.token, "token", "", "admin bearer token (default $"+adminEnvToken+")")
	fs.StringVar(&o.cacert, "cacert", "", "PEM file of the CA (or certificate) an HTTPS admin API is trusted with")
	fs.StringVar(&o.cert, "cert", "", "client certificate (PEM) for an admin API that requires one")
	fs.StringVar(&o.key, "key", "", "private key (PEM) of -cert")
	return o
}

// adminClient talks to the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminBaseURL turns -admin into a base URL: a URL is taken as is, a
// HOST:PORT (or :PORT) means http://HOST:PORT.
func adminBaseURL(s string) (string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("-admin %q: %v", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("-admin %q: want HOST:PORT or an http(s):// URL", s)
		}
		return strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" {
		return "", fmt.Errorf("-admin %q: want HOST:PORT (e.g. 127.0.0.1:9090) or an http(s):// URL", s)
	}
	return "http://" + dialable(host, port), nil
}

// dialable turns a listen address into one to connect to: an unspecified
// host (":9090", "0.0.0.0:9090", "[::]:9090") means this machine.
func dialable(host, port string) string {
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (o *adminOpts) client() (*adminClient, error) {
	var base string
	roots := []string{}
	switch {
	case o.admin != "" && o.config != "":
		return nil, errors.New("give -admin or -config, not both")
	case o.admin != "":
		b, err := adminBaseURL(o.admin)
		if err != nil {
			return nil, err
		}
		base = b
	case o.config != "":
		ep, diags := relay.PeekAdmin(o.config)
		if diags.HasErrors() {
			return nil, fmt.Errorf("reading the admin address from %s:\n%s", o.config, strings.TrimRight(relay.FormatDiagnostics(diags), "\n"))
		}
		host, port, _ := net.SplitHostPort(ep.Address)
		scheme := "http"
		if ep.TLS {
			scheme = "https"
			if ep.CertFile != "" {
				roots = append(roots, ep.CertFile)
			}
		}
		base = scheme + "://" + dialable(host, port)
	default:
		return nil, errors.New("where is the admin API? give -admin HOST:PORT (e.g. 127.0.0.1:9090) or -config FILE")
	}
	if o.cacert != "" {
		roots = append(roots, o.cacert)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(roots) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, f := range roots {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no PEM certificate", f)
			}
		}
		tc.RootCAs = pool
	}
	if o.cert != "" || o.key != "" {
		kp, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("-cert/-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	token := o.token
	if token == "" {
		token = os.Getenv(adminEnvToken)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &adminClient{base: base, token: token, http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}, nil
}

func (c *adminClient) do(method, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // the admin API refuses other writes
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		msg := resp.Status
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = fmt.Sprintf("%s (%d)", e.Error, resp.StatusCode)
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			if c.token == "" {
				msg += ": the admin API needs a token: give -token or set " + adminEnvToken
			} else {
				msg += ": the token was refused"
			}
		case http.StatusForbidden:
			msg += ": this needs an operator token"
		case http.StatusBadRequest:
			if strings.Contains(string(body), "HTTP request to an HTTPS server") {
				msg += ": the admin API speaks HTTPS: give -admin https://HOST:PORT (and -cacert for a private CA)"
			}
		}
		return fmt.Errorf("admin API %s: %s", c.base, msg)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("admin API %s: unreadable answer: %v", c.base, err)
		}
	}
	return nil
}

// backendKnown fails when the relay has no queue for backend (a typo in
// -backend would otherwise replay or purge nothing and say so politely).
func (c *adminClient) backendKnown(backend string) error {
	if backend == "" {
		return nil
	}
	var res struct {
		Queues []struct {
			Backend string `json:"backend"`
		} `json:"queues"`
	}
	if err := c.do("GET", "/api/v1/queues", nil, &res); err != nil {
		return err
	}
	var names []string
	for _, q := range res.Queues {
		if q.Backend == backend {
			return nil
		}
		names = append(names, q.Backend)
	}
	return fmt.Errorf("unknown backend %q (the relay has: %s)", backend, strings.Join(names, ", "))
}
