package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets check two properties: verifying never panics, and a
// request is accepted only when an independent computation of the scheme
// (written from the provider's documentation, not through the verifier)
// says the credentials match: a mutated signature or body is never
// accepted. `go test` runs the seeds; `go test -fuzz=FuzzX` explores.

func FuzzHMACHeader(f *testing.F) {
	const github = "It's a Secret to Everybody"
	f.Add(metaSig, []byte(metaBody))
	f.Add("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", []byte("Hello, World!"))
	f.Add(" SHA256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17 ", []byte("Hello, World!"))
	f.Add("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", []byte("Hello, World?"))
	f.Add("sha256=", []byte{})
	f.Add("sha1=757107ea", []byte("x"))
	secrets := []string{metaSecret, github}
	v, err := NewHMAC(metaConfig(secrets...))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		r := &Request{Header: http.Header{"X-Hub-Signature-256": {header}}, Body: body}
		if v.Verify(r) != nil {
			return
		}
		got := strings.ToLower(strings.TrimSpace(header))
		for _, s := range secrets {
			m := hmac.New(sha256.New, []byte(s))
			m.Write(body)
			if got == "sha256="+hexLower(m.Sum(nil)) {
				return
			}
		}
		t.Fatalf("accepted %q for body %q", header, body)
	})
}

func hexLower(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func FuzzBasicHeader(f *testing.F) {
	f.Add(basicHeader("bsp", "pa:ss"))
	f.Add("basic YnNwOnBhOnNz")
	f.Add("Basic  YnNwOnBhOnNz ")
	f.Add("Basic YnNwOnBhOnNz=")
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte("bsp:pa:sS")))
	f.Add("Bearer x")
	f.Add("Basic")
	v, err := NewBasic(BasicConfig{Users: []BasicUser{{Name: "bsp", Password: "pa:ss"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := &Request{Header: http.Header{"Authorization": {header}}}
		if v.Verify(r) != nil {
			return
		}
		fields := strings.Fields(header)
		if len(fields) != 2 || !strings.EqualFold(fields[0], "basic") {
			t.Fatalf("accepted %q", header)
		}
		dec, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil || string(dec) != "bsp:pa:ss" {
			t.Fatalf("accepted %q (%q)", header, dec)
		}
	})
}

func FuzzJWT(f *testing.F) {
	const secret = "fuzz-jwt-secret"
	now := jwtNow
	body := []byte(`{"status":"delivered"}`)
	c := claimsAt(now)
	c["payload_hash"] = PayloadHash(body)
	good, err := SignJWT("HS256", secret, c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, body)
	f.Add(good, []byte(`{"status":"failed"}`))
	f.Add(good[:len(good)-2], body)
	f.Add(rawToken(map[string]any{"alg": "none"}, c, func(string) []byte { return nil }), body)
	f.Add(rawToken(map[string]any{"alg": "HS256"}, claimsAt(now), hs256([]byte(secret))), []byte{})
	f.Add("a.b.c", body)
	v, err := NewJWT(JWTConfig{Algorithms: []string{"HS256"}, Secrets: []string{secret}, PayloadHash: true,
		Leeway: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string, body []byte) {
		r := &Request{Header: http.Header{"Authorization": {token}}, Body: body}
		if v.Verify(r) != nil {
			return
		}
		parts := strings.Split(strings.TrimSpace(token), ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q", token)
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(parts[0] + "." + parts[1]))
		if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
			t.Fatalf("accepted %q with a signature that does not match", token)
		}
		var hdr struct {
			Alg string `json:"alg"`
		}
		h, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if json.Unmarshal(h, &hdr) != nil || hdr.Alg != "HS256" {
			t.Fatalf("accepted %q with header %q", token, h)
		}
		var claims map[string]any
		cl, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if err := json.Unmarshal(cl, &claims); err != nil {
			t.Fatalf("accepted %q with claims %q", token, cl)
		}
		ph, present := claims["payload_hash"].(string)
		if (present && !strings.EqualFold(ph, PayloadHash(body))) || (!present && len(body) > 0) {
			t.Fatalf("accepted %q for body %q", token, body)
		}
	})
}

// twilioOracle computes Twilio signatures as twilio-python does.
func twilioOracle(token, u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := u
	for _, k := range keys {
		vals := append([]string(nil), form[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			s += k + v
		}
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func FuzzTwilio(f *testing.F) {
	params := twilioVectorParams()
	f.Add("foo=1&bar=2", []byte(params.Encode()), twilioSig, true)
	f.Add("foo=1&bar=2", []byte(params.Encode()), "kvajT1Ptam85bY51eRf/AJRuM3w=", true)
	f.Add("foo=1&bar=2&bodySHA256="+twilioBodyHash, []byte(twilioJSONBody), "a9nBmqA0ju/hNViExpshrM61xv4=", false)
	f.Add("bodySHA256="+twilioBodyHash, []byte(twilioJSONBody), "y77kIzt2vzLz71DgmJGsen2scGs=", false)
	f.Add("foo=1&bar=2", []byte("Digits=5678&Digits=1234"), twilioSig, true)
	f.Add("", []byte{}, "", false)
	v, err := NewTwilio(TwilioConfig{AuthTokens: []string{twilioToken}})
	if err != nil {
		f.Fatal(err)
	}
	const base = "https://mycompany.com/myapp.php"
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte, sig string, isForm bool) {
		ct := "application/json"
		if isForm {
			ct = "application/x-www-form-urlencoded"
		}
		r := &Request{
			URL:       &url.URL{Path: "/myapp.php", RawQuery: rawQuery},
			PublicURL: base,
			Header:    http.Header{"Content-Type": {ct}, "X-Twilio-Signature": {sig}},
			Body:      body,
		}
		if v.Verify(r) != nil {
			return
		}
		full := base
		if rawQuery != "" {
			full += "?" + rawQuery
		}
		q, _ := url.ParseQuery(rawQuery)
		var form url.Values
		if hs, ok := q["bodySHA256"]; ok && len(hs) > 0 {
			if !strings.EqualFold(hs[0], PayloadHash(body)) {
				t.Fatalf("accepted body %q against bodySHA256 %q", body, hs[0])
			}
		} else if isForm {
			form, _ = url.ParseQuery(string(body))
		} else if len(body) > 0 {
			t.Fatalf("accepted an unsigned body %q", body)
		}
		withPort := strings.Replace(full, "mycompany.com", "mycompany.com:443", 1)
		sig = strings.TrimSpace(sig)
		if sig != twilioOracle(twilioToken, full, form) && sig != twilioOracle(twilioToken, withPort, form) {
			t.Fatalf("accepted signature %q for %q %q", sig, full, body)
		}
	})
}

func FuzzStandardWebhooksSignature(f *testing.F) {
	f.Add(swExpected, swMsgID, "1614265330", []byte(swPayload))
	f.Add(swInvalid+" v2,x "+swExpected, swMsgID, "1614265330", []byte(swPayload))
	f.Add(swExpected, swMsgID, "1614265330", []byte(swPayload+" "))
	f.Add(swExpected, swMsgID+"x", "1614265330", []byte(swPayload))
	f.Add("v1,"+strings.TrimPrefix(swExpected, "v1,"), swMsgID, "+1614265330", []byte(swPayload))
	f.Add("garbage", "", "", []byte{})
	now := time.Unix(swTimestamp, 0)
	v, err := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{swSecret}, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(swSecret, "whsec_"))
	f.Fuzz(func(t *testing.T, sigHeader, id, ts string, body []byte) {
		r := &Request{Header: http.Header{
			"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sigHeader},
		}, Body: body}
		if v.Verify(r) != nil {
			return
		}
		sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if err != nil || sec < swTimestamp-300 || sec > swTimestamp+300 {
			t.Fatalf("accepted timestamp %q", ts)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + strings.TrimSpace(ts) + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		for _, s := range strings.Fields(sigHeader) {
			if s == want {
				return
			}
		}
		t.Fatalf("accepted %q for id %q ts %q body %q", sigHeader, id, ts, body)
	})
}

func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.2:5000", "1.2.3.4, 198.51.100.1, 10.0.0.9")
	f.Add("203.0.113.7:5000", "198.51.100.1")
	f.Add("[fd00::1]:443", "2001:db8::9")
	f.Add("[::ffff:10.0.0.2]:80", "198.51.100.1:4711, nonsense")
	f.Add("10.0.0.2", "")
	f.Add("", ",,,")
	trusted := prefixes("10.0.0.0/8", "fd00::/8")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		got, ok := ClientAddr(remote, h, trusted)
		peer, peerOK := parseAddr(remote)
		if !peerOK {
			if ok {
				t.Fatalf("ClientAddr(%q) = %v for an unparsable peer", remote, got)
			}
			return
		}
		if !containsAddr(trusted, peer) {
			if !ok || got != peer {
				t.Fatalf("untrusted peer %v: ClientAddr = %v %v", peer, got, ok)
			}
			return
		}
		if !ok {
			return
		}
		if got == peer {
			return
		}
		found := false
		for _, hop := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.WithZone("").Unmap() == got {
				found = true
			} else if ap, err := netip.ParseAddrPort(strings.TrimSpace(hop)); err == nil && ap.Addr().WithZone("").Unmap() == got {
				found = true
			}
		}
		if !found {
			t.Fatalf("ClientAddr(%q, %q) = %v, not among the hops", remote, xff, got)
		}
	})
}
