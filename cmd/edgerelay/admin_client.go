package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// adminClient talks to the admin API.
type adminClient struct {
	base  string
	token string // EDGERELAY_ADMIN_TOKEN
	http  *http.Client
}

func adminFlags(fs *flag.FlagSet) (cfgPath, admin *string) {
	return fs.String("config", "", "configuration file (its admin address is used)"),
		fs.String("admin", "", "admin API URL, e.g. http://127.0.0.1:9090")
}

func newAdminClient(cfgPath, admin string, stderr io.Writer) *adminClient {
	base := admin
	if base == "" {
		if cfgPath == "" {
			cfgPath = "config.hcl"
		}
		cfg := loadConfig(cfgPath, stderr)
		if cfg == nil {
			return nil
		}
		host := cfg.Admin.Address
		if strings.HasPrefix(host, "0.0.0.0:") {
			host = "127.0.0.1:" + strings.TrimPrefix(host, "0.0.0.0:")
		}
		base = "http://" + host
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: os.Getenv("EDGERELAY_ADMIN_TOKEN"), http: &http.Client{Timeout: 30 * time.Second}}
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
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (%d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}
