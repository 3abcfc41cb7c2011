package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HuaweiIAM logs in to Huawei Cloud IAM with a password and sends the
// token as X-Auth-Token: `inject "huawei_iam" { iam_url, domain, username,
// password, project }` (what KooMessage's "IAM Url, Domain, IAM user name
// and password" need).
//
// The login is `POST {IAMURL}/v3/auth/tokens` with the password method,
// scoped to Project when given, else to the domain; the token is the
// X-Subject-Token response header and its expiry the body's
// token.expires_at. It is cached, refreshed before expiry and fetched again
// after a 401.
type HuaweiIAM struct {
	IAMURL   string
	Domain   string
	Username string
	Password string
	// Project is the project name to scope the token to (e.g. "ap-southeast-1");
	// empty scopes it to the domain.
	Project string
	// EarlyExpiry is how long before expiry the token is refreshed
	// (default 60s, at most a fifth of the token's lifetime).
	EarlyExpiry time.Duration
}

func newIAMCache(v HuaweiIAM) (*cache, error) {
	if v.IAMURL == "" || v.Domain == "" || v.Username == "" || v.Password == "" {
		return nil, errors.New("iam_url, domain, username and password are required")
	}
	if err := checkHTTPURL(v.IAMURL); err != nil {
		return nil, fmt.Errorf("iam_url: %w", err)
	}
	if v.EarlyExpiry < 0 {
		return nil, errors.New("negative early expiry")
	}
	early := v.EarlyExpiry
	if early == 0 {
		early = defaultEarlyExpiry
	}
	endpoint := strings.TrimSuffix(v.IAMURL, "/") + "/v3/auth/tokens"
	body, err := json.Marshal(iamRequest(v))
	if err != nil {
		return nil, err
	}
	return &cache{
		key:   fmt.Sprintf("iam\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d", v.IAMURL, v.Domain, v.Username, v.Password, v.Project, v.EarlyExpiry),
		early: early,
		fetch: func(ctx context.Context, client *http.Client) (*token, error) {
			return iamLogin(ctx, client, endpoint, body)
		},
	}, nil
}

type iamName struct {
	Name string `json:"name"`
}

func iamRequest(v HuaweiIAM) any {
	type user struct {
		Domain   iamName `json:"domain"`
		Name     string  `json:"name"`
		Password string  `json:"password"`
	}
	scope := map[string]iamName{"domain": {v.Domain}}
	if v.Project != "" {
		scope = map[string]iamName{"project": {v.Project}}
	}
	return map[string]any{"auth": map[string]any{
		"identity": map[string]any{
			"methods":  []string{"password"},
			"password": map[string]any{"user": user{Domain: iamName{v.Domain}, Name: v.Username, Password: v.Password}},
		},
		"scope": scope,
	}}
}

func iamLogin(ctx context.Context, client *http.Client, endpoint string, body []byte) (*token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: huawei_iam: building the login request", ErrTokenEndpoint)
	}
	req.Header.Set("Content-Type", "application/json;charset=utf8")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: huawei_iam: %s", ErrTokenEndpoint, describeTokenError(err))
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: huawei_iam: reading the answer: %v", ErrTokenEndpoint, err)
	}
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		// The body is not quoted: it may echo the request.
		return nil, fmt.Errorf("%w: huawei_iam: login answered %d", ErrTokenEndpoint, res.StatusCode)
	}
	tok := res.Header.Get("X-Subject-Token")
	if tok == "" || !validHeaderValue(tok) {
		return nil, fmt.Errorf("%w: huawei_iam: no X-Subject-Token in the answer", ErrTokenEndpoint)
	}
	var doc struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
		} `json:"token"`
	}
	_ = json.Unmarshal(raw, &doc)
	var exp time.Time
	if doc.Token.ExpiresAt != "" {
		if exp, err = time.Parse(time.RFC3339Nano, doc.Token.ExpiresAt); err != nil {
			return nil, fmt.Errorf("%w: huawei_iam: token.expires_at %q is not a time", ErrTokenEndpoint, doc.Token.ExpiresAt)
		}
	}
	return &token{value: tok, expiry: exp}, nil
}
