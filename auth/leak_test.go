package auth

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFailuresNeverContainSecrets drives every verifier through its failure
// paths and checks that no error text contains a configured secret or a
// credential presented by the client.
func TestFailuresNeverContainSecrets(t *testing.T) {
	now := jwtNow
	nowf := func() time.Time { return now }
	const (
		hmacOld, hmacNew = "S3CRET-hmac-old-1111", "S3CRET-hmac-new-2222"
		basicPW          = "S3CRET-basic-pw-3333"
		headerVal        = "S3CRET-header-4444"
		jwtSecret        = "S3CRET-jwt-5555"
		twilioTok        = "S3CRET-twilio-6666"
	)
	swRaw := "S3CRET-standard-webhooks-7777"
	swSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte(swRaw))
	secrets := []string{hmacOld, hmacNew, basicPW, headerVal, jwtSecret, twilioTok, swRaw, swSecret, strings.TrimPrefix(swSecret, "whsec_")}

	expires := now.Add(-time.Hour)
	hmacCfg := metaConfig(hmacOld, hmacNew)
	vs := map[string]Verifier{
		"hmac":   must[*HMAC](t)(NewHMAC(hmacCfg)),
		"basic":  must[*Basic](t)(NewBasic(BasicConfig{Users: []BasicUser{{Name: "bsp", Password: basicPW}, {Name: "old", Password: basicPW, Expires: expires}}, Now: nowf})),
		"header": must[*Header](t)(NewHeader(HeaderConfig{Name: "X-Api-Key", Values: []string{headerVal}})),
		"jwt": must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{jwtSecret},
			Issuer: "Vonage", Audience: "relay", RequireExp: true, PayloadHash: true, URLHash: true, Now: nowf})),
		"twilio":            must[*Twilio](t)(NewTwilio(TwilioConfig{AuthTokens: []string{twilioTok}})),
		"standard_webhooks": must[*StandardWebhooks](t)(NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{swSecret}, Now: nowf})),
		"ip_allow":          must[*IPAllow](t)(NewIPAllow(IPAllowConfig{CIDRs: prefixes("198.51.100.0/24"), TrustedProxies: prefixes("10.0.0.0/8")})),
	}

	body := []byte(`{"id":"1"}`)
	sig := func(secret string) string { return SignHMAC(hmacCfg, secret, body) }
	jwtTok := func(secret string, mod func(map[string]any)) string {
		c := map[string]any{"iss": "Vonage", "aud": "relay", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			"payload_hash": PayloadHash(body), "url_hash": URLHash("https://r.example/leak")}
		if mod != nil {
			mod(c)
		}
		return must[string](t)(SignJWT("HS256", secret, c))
	}
	swSigner := must[*WebhookSigner](t)(NewWebhookSigner(swSecret))
	form := url.Values{"MessageSid": {"SM1"}}
	ts := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }

	requests := map[string][]http.Header{
		"hmac": {
			hdr(), hdr("X-Hub-Signature-256", hmacNew), hdr("X-Hub-Signature-256", "sha256="+hmacOld),
			hdr("X-Hub-Signature-256", sig("wrong")), hdr("X-Hub-Signature-256", sig(hmacNew)+"00"),
		},
		"basic": {
			hdr(), hdr("Authorization", "Bearer "+basicPW), hdr("Authorization", basicHeader("bsp", basicPW+"x")),
			hdr("Authorization", basicHeader(basicPW, basicPW)), hdr("Authorization", basicHeader("old", basicPW)),
			hdr("Authorization", "Basic "+basicPW),
		},
		"header": {hdr(), hdr("X-Api-Key", headerVal+"-wrong"), hdr("X-Api-Key", strings.ToLower(headerVal))},
		"jwt": {
			hdr(), hdr("Authorization", jwtSecret), hdr("Authorization", "Bearer "+jwtSecret),
			hdr("Authorization", "Bearer "+jwtTok("wrong-secret-value", nil)),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["iss"] = jwtSecret })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["aud"] = jwtSecret })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { delete(c, "exp") })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["payload_hash"] = jwtSecret })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["url_hash"] = jwtSecret })),
			hdr("Authorization", "Bearer "+jwtTok(jwtSecret, func(c map[string]any) { c["exp"] = jwtSecret })),
			hdr("Authorization", "Bearer "+rawToken(map[string]any{"alg": jwtSecret}, map[string]any{}, hs256([]byte(jwtSecret)))),
			hdr("Authorization", "Bearer "+rawToken(map[string]any{"alg": "none"}, map[string]any{"sub": jwtSecret}, func(string) []byte { return nil })),
		},
		"twilio": {
			hdr(), hdr("X-Twilio-Signature", twilioTok),
			hdr("Content-Type", "application/x-www-form-urlencoded", "X-Twilio-Signature", SignTwilio("wrong", "https://r.example/leak", form)),
			hdr("Content-Type", "application/json", "X-Twilio-Signature", SignTwilio(twilioTok, "https://r.example/leak", nil)),
		},
		"standard_webhooks": {
			hdr(), hdr("webhook-id", "m", "webhook-timestamp", ts(0), "webhook-signature", swSecret),
			hdr("webhook-id", "m", "webhook-timestamp", swRaw, "webhook-signature", swSigner.Sign("m", now, body)),
			hdr("webhook-id", "m", "webhook-timestamp", ts(0), "webhook-signature", "v1,"+swRaw),
			hdr("webhook-id", "m", "webhook-timestamp", ts(0), "webhook-signature", swSigner.Sign("m", now, []byte("other"))),
			hdr("webhook-id", "m", "webhook-timestamp", ts(-time.Hour), "webhook-signature", swSigner.Sign("m", now.Add(-time.Hour), body)),
		},
		"ip_allow": {hdr(), hdr("X-Forwarded-For", "203.0.113.1")},
	}

	checked := 0
	for name, hs := range requests {
		for i, h := range hs {
			r := newRequest(t, "https://r.example/leak", h, body)
			if name == "twilio" && h.Get("Content-Type") != "" && strings.Contains(h.Get("Content-Type"), "form") {
				r.Body = []byte(form.Encode())
			}
			if name == "ip_allow" {
				r.RemoteAddr = "10.0.0.1:1"
			}
			err := vs[name].Verify(r)
			if err == nil {
				t.Errorf("%s request %d passed; want failure", name, i)
				continue
			}
			if _, ok := err.(*Failure); !ok {
				t.Errorf("%s request %d: %T is not a *Failure", name, i, err)
			}
			text := err.Error()
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("%s request %d: error %q contains a secret", name, i, text)
				}
			}
			for _, vals := range h {
				for _, v := range vals {
					for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' }) {
						if len(part) >= 12 && strings.Contains(text, part) {
							t.Errorf("%s request %d: error %q contains the presented credential %q", name, i, text, part)
						}
					}
				}
			}
			checked++
		}
	}
	if checked < 35 {
		t.Fatalf("only %d failure paths checked", checked)
	}
}
