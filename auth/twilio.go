package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"mime"
	"net/url"
	"sort"
	"strings"
)

// TwilioConfig configures a Twilio verifier.
type TwilioConfig struct {
	// AuthTokens are the account's auth tokens; any one may match
	// (rotation). Empty strings are ignored; none left is an error.
	AuthTokens []string
}

// Twilio verifies the X-Twilio-Signature header: base64(HMAC-SHA1(token,
// url + sorted form key/value pairs)).
//
// The URL is Request.PublicURL (or "https://" + Host + path when it is
// empty) plus "?" and the raw query when there is one. Form parameters are
// taken from application/x-www-form-urlencoded bodies only. For other bodies
// Twilio adds bodySHA256=<hex SHA-256 of the body> to the query: the
// signature then covers the URL alone and the hash must match the body. As
// Twilio's SDKs do, the URL is tried both without its port and with its port
// (the scheme's default port added when none is given).
type Twilio struct {
	tokens [][]byte
}

var _ Verifier = (*Twilio)(nil)

// TwilioSignatureHeader is the header carrying Twilio's signature.
const TwilioSignatureHeader = "X-Twilio-Signature"

// NewTwilio checks c and returns the verifier.
func NewTwilio(c TwilioConfig) (*Twilio, error) {
	tokens := nonEmpty(c.AuthTokens)
	if len(tokens) == 0 {
		return nil, errors.New("twilio: at least one non-empty auth token is required")
	}
	t := &Twilio{}
	for _, tok := range tokens {
		t.tokens = append(t.tokens, []byte(tok))
	}
	return t, nil
}

// Verify checks the X-Twilio-Signature header.
func (t *Twilio) Verify(r *Request) error {
	value := strings.TrimSpace(r.Header.Get(TwilioSignatureHeader))
	if value == "" {
		return fail(ReasonMissing, "twilio: header %s is absent", TwilioSignatureHeader)
	}
	got, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil || len(got) != sha1.Size || !printable(value) {
		return fail(ReasonMalformed, "twilio: header %s is not a base64 HMAC-SHA1", TwilioSignatureHeader)
	}
	full := fullURL(r)
	var (
		form     url.Values
		bodyHash string
		hasHash  bool
	)
	if r.URL != nil && r.URL.RawQuery != "" {
		q, _ := url.ParseQuery(r.URL.RawQuery) // the signature covers the raw query; a bad pair only loses bodySHA256
		if hs, ok := q["bodySHA256"]; ok && len(hs) > 0 {
			bodyHash, hasHash = hs[0], true
		}
	}
	switch {
	case hasHash:
		// JSON (or other) body: the signature covers the URL alone.
	case isForm(r):
		form, err = url.ParseQuery(string(r.Body))
		if err != nil {
			return fail(ReasonMalformed, "twilio: form body cannot be parsed")
		}
	case len(r.Body) > 0:
		return fail(ReasonBadSignature, "twilio: body is neither a form nor covered by bodySHA256")
	}
	payload := twilioParams(form)
	match := false
	for _, u := range twilioURLs(full) {
		for _, tok := range t.tokens {
			mac := hmac.New(sha1.New, tok)
			mac.Write([]byte(u))
			mac.Write([]byte(payload))
			if hmac.Equal(mac.Sum(nil), got) {
				match = true
			}
		}
	}
	if !match {
		return fail(ReasonBadSignature, "twilio: %s does not match the URL and parameters", TwilioSignatureHeader)
	}
	if hasHash && !equalHex(bodyHash, PayloadHash(r.Body)) {
		return fail(ReasonBadSignature, "twilio: body does not match bodySHA256")
	}
	return nil
}

func isForm(r *Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// twilioParams concatenates the form parameters as Twilio signs them: keys
// in sorted order, each key followed by its value, and a repeated key once
// per value, values sorted (as twilio-python and twilio-node do).
func twilioParams(form url.Values) string {
	if len(form) == 0 {
		return ""
	}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vals := append([]string(nil), form[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	return b.String()
}

// twilioURLs returns the URL without its port and with its port (the
// scheme's default when none is given), as Twilio's SDKs try both.
func twilioURLs(u string) []string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return []string{u}
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, authority = authority[:at+1], authority[at+1:]
	}
	host, port := splitPort(authority)
	if port == "" {
		port = "80"
		if strings.EqualFold(scheme, "https") {
			port = "443"
		}
	}
	prefix := scheme + "://" + userinfo
	without := prefix + host + tail
	with := prefix + host + ":" + port + tail
	return []string{without, with}
}

// splitPort splits "host:port" or "[v6]:port"; port is "" when absent.
func splitPort(authority string) (host, port string) {
	i := strings.LastIndex(authority, ":")
	if i < 0 || strings.Contains(authority[i:], "]") {
		return authority, ""
	}
	if strings.HasPrefix(authority, "[") && !strings.HasSuffix(authority[:i], "]") {
		return authority, ""
	}
	return authority[:i], authority[i+1:]
}

// SignTwilio returns the X-Twilio-Signature value for a request to fullURL
// (including any query) with the given form parameters (nil for none, e.g.
// for a JSON body whose URL carries bodySHA256).
func SignTwilio(token, fullURL string, form url.Values) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(fullURL))
	mac.Write([]byte(twilioParams(form)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
