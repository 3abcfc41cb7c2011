package relay

import (
	"bytes"
	"crypto/rand"
	stdtls "crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/relay/profile"
)

// SimulateOptions describe one simulated provider callback.
type SimulateOptions struct {
	// Channel is the channel name in the configuration.
	Channel string
	// Sample is "inbound" (default) or "status".
	Sample string
	// BodyFile replaces the sample body when set.
	BodyFile string
	// URL overrides the target (default: the channel's listener address
	// with the channel's path).
	URL string
	// Insecure skips certificate verification (self-signed listeners).
	Insecure bool
	// Out receives the report.
	Out io.Writer
}

// SimulateResult is what the relay answered.
type SimulateResult struct {
	Status  int
	Body    string
	EventID string
}

// Simulate builds the provider's sample callback for a channel, signs it
// exactly as the provider would with the channel's configured secrets,
// sends it to the relay and reports the answer. It is how an operator
// proves a setup end to end.
func Simulate(cfg *Config, o SimulateOptions) (*SimulateResult, error) {
	var ch *ChannelConfig
	for _, c := range cfg.Channels {
		if c.Name == o.Channel {
			ch = c
		}
	}
	if ch == nil {
		var names []string
		for _, c := range cfg.Channels {
			names = append(names, c.Name)
		}
		return nil, fmt.Errorf("no channel %q in %s (channels: %s)", o.Channel, cfg.File, strings.Join(names, ", "))
	}
	kind := o.Sample
	if kind == "" {
		kind = "inbound"
	}
	sample, ok := ch.Profile.Samples[kind]
	if !ok && o.BodyFile == "" {
		return nil, fmt.Errorf("provider %q has no %q sample (use -body FILE)", ch.Provider, kind)
	}
	body := sample.Body
	ctype := sample.ContentType
	query := url.Values{}
	for k, v := range sample.Query {
		query[k] = v
	}
	if o.BodyFile != "" {
		b, err := os.ReadFile(o.BodyFile)
		if err != nil {
			return nil, err
		}
		body = b
		if ctype == "" {
			ctype = "application/json"
		}
	}
	// A fresh id per run, so de-duplication does not swallow a second
	// simulation of the same sample.
	if o.BodyFile == "" {
		body = freshIDs(body, ch.Profile.Classify(&profile.Request{Method: http.MethodPost, Header: http.Header{"Content-Type": {ctype}}, Query: query, ContentType: ctype, Body: body}, ch.ProfileOptions).EventID)
	}

	target := o.URL
	if target == "" {
		l := cfg.listener(ch.Listener)
		host, port, _ := net.SplitHostPort(l.Address)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		scheme := "http"
		if l.TLS != nil {
			scheme = "https"
		}
		path := ch.Path
		if base, ok := strings.CutSuffix(path, "/*"); ok {
			path = base + "/simulated" // a prefix channel: any path under it
		}
		target = scheme + "://" + net.JoinHostPort(host, port) + path
	}
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "edgerelay-simulate/"+Version)
	if err := signSample(req, ch, body, query); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 15 * time.Second}
	if o.Insecure {
		client.Transport = &http.Transport{TLSClientConfig: &stdtls.Config{InsecureSkipVerify: true}}
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "> POST %s (%s, %d bytes, provider %s)\n", target, kind, len(body), ch.Provider)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sending to %s: %w", target, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res := &SimulateResult{Status: resp.StatusCode, Body: string(rb)}
	c := ch.Profile.Classify(&profile.Request{Method: http.MethodPost, Header: req.Header, Query: query, ContentType: ctype, Body: body}, ch.ProfileOptions)
	res.EventID = c.EventID
	fmt.Fprintf(out, "< %s\n", resp.Status)
	if len(rb) > 0 {
		fmt.Fprintf(out, "< %s\n", strings.TrimSpace(string(rb)))
	}
	fmt.Fprintf(out, "provider event id: %s\n", orDash(c.EventID))
	fmt.Fprintf(out, "order key: %s\n", orDash(c.OrderKey))
	fmt.Fprintf(out, "routed to: %s\n", strings.Join(route(ch, c.Fields), ", "))
	return res, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// freshIDs gives every provider id of the sample a random suffix, so each
// simulation is a new event rather than a duplicate of the last one.
func freshIDs(body []byte, eventID string) []byte {
	var b [4]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	for _, part := range strings.Split(eventID, ",") {
		id, _, _ := strings.Cut(part, ":")
		if len(id) >= 6 {
			body = bytes.ReplaceAll(body, []byte(id), []byte(id+suffix))
		}
	}
	return body
}

// signSample signs req as the channel's provider would, with the first
// secret of each auth block.
func signSample(req *http.Request, ch *ChannelConfig, body []byte, query url.Values) error {
	for _, a := range ch.Auth {
		switch a.Type {
		case "none", "ip_allow":
		case "hmac":
			req.Header.Set(a.HMAC.Header, auth.SignHMAC(*a.HMAC, a.HMAC.Secrets[0], body))
		case "basic":
			u := a.Basic.Users[0]
			req.SetBasicAuth(u.Name, u.Password)
		case "header":
			req.Header.Set(a.Header.Name, a.Header.Values[0])
		case "twilio":
			full := ch.PublicURL
			if len(query) > 0 {
				full += "?" + query.Encode()
			}
			form := url.Values{}
			if strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
				var err error
				if form, err = url.ParseQuery(string(body)); err != nil {
					return fmt.Errorf("sample body is not a form: %w", err)
				}
			}
			req.Header.Set("X-Twilio-Signature", auth.SignTwilio(a.Twilio.AuthTokens[0], full, form))
		case "standard_webhooks":
			s, err := auth.NewWebhookSigner(a.Standard.Secrets[0])
			if err != nil {
				return err
			}
			var idb [12]byte
			rand.Read(idb[:])
			id := "msg_" + base64.RawURLEncoding.EncodeToString(idb[:])
			now := time.Now()
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", fmt.Sprint(now.Unix()))
			req.Header.Set("webhook-signature", s.Sign(id, now, body))
		case "jwt":
			j := a.JWT
			if len(j.Secrets) == 0 || !strings.HasPrefix(j.Algorithms[0], "HS") {
				return fmt.Errorf("simulate can sign jwt only with a shared secret (HS*): the provider holds the private key")
			}
			now := time.Now()
			claims := map[string]any{"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": fmt.Sprint(now.UnixNano())}
			if j.Issuer != "" {
				claims["iss"] = j.Issuer
			}
			if j.Audience != "" {
				claims["aud"] = j.Audience
			}
			if j.PayloadHash {
				claims["payload_hash"] = auth.PayloadHash(body)
			}
			if j.URLHash {
				u := ch.PublicURL
				if len(query) > 0 {
					u += "?" + query.Encode()
				}
				claims["url_hash"] = auth.URLHash(u)
			}
			tok, err := auth.SignJWT(j.Algorithms[0], []byte(j.Secrets[0]), claims)
			if err != nil {
				return err
			}
			v := tok
			if j.Scheme != "" {
				v = j.Scheme + " " + tok
			}
			req.Header.Set(j.Header, v)
		default:
			return fmt.Errorf("simulate cannot sign auth %q", a.Type)
		}
	}
	return nil
}
