package inject

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Proxy returns the http.Transport Proxy function of a `proxy` setting:
// "" (direct: nil), "env" (HTTPS_PROXY, HTTP_PROXY and NO_PROXY read now,
// once per call rather than once per process; note that the
// standard NO_PROXY rules never proxy localhost and loopback addresses), or
// an explicit "http://[user:pass@]host:port" (https:// for a proxy spoken
// to over TLS). HTTPS targets go through the proxy with CONNECT; plain HTTP
// ones as absolute-URI requests. Credentials in the URL are sent as
// Proxy-Authorization. The error never quotes the setting (it may hold a
// password).
func Proxy(setting string) (func(*http.Request) (*url.URL, error), error) {
	switch setting {
	case "":
		return nil, nil
	case "env":
		f := httpproxy.FromEnvironment().ProxyFunc()
		return func(r *http.Request) (*url.URL, error) { return f(r.URL) }, nil
	}
	if !strings.Contains(setting, "://") {
		return nil, errors.New("proxy must be \"env\" or a URL such as http://[user:pass@]host:port (no scheme given)")
	}
	u, err := url.Parse(setting)
	if err != nil {
		return nil, errors.New("proxy is not a URL: write http://[user:pass@]host:port or \"env\"")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("proxy scheme %q: write http://[user:pass@]host:port (or https://), or \"env\"", u.Scheme)
	}
	if u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("proxy must be http://[user:pass@]host:port with no path or query")
	}
	return http.ProxyURL(u), nil
}
