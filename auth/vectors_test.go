package auth

import (
	"net/url"
	"testing"
	"time"
)

// Twilio request validator vectors, copied from
//
//	twilio/twilio-go   client/request_validator_test.go
//	twilio/twilio-python tests/unit/test_request_validator.py
//
// (auth token "12345", URL https://mycompany.com/myapp.php?foo=1&bar=2).
const (
	twilioToken    = "12345"
	twilioURL      = "https://mycompany.com/myapp.php?foo=1&bar=2"
	twilioSig      = "RSOYDt4T1cUTdK1PDd93/VVr8B8=" // of twilioURL with twilioParams
	twilioBodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	twilioJSONBody = `{"property": "value", "boolean": true}`
)

func twilioVectorParams() url.Values {
	return url.Values{
		"Digits":  {"1234"},
		"CallSid": {"CA1234567890ABCDE"},
		"To":      {"+18005551212"},
		"Caller":  {"+14158675309"},
		"From":    {"+14158675309"},
	}
}

func twilioFormRequest(t *testing.T, fullURL, sig string, form url.Values) *Request {
	t.Helper()
	return newRequest(t, fullURL, hdr(
		"Content-Type", "application/x-www-form-urlencoded",
		"X-Twilio-Signature", sig,
	), []byte(form.Encode()))
}

func TestTwilioOfficialVectors(t *testing.T) {
	v := must[*Twilio](t)(NewTwilio(TwilioConfig{AuthTokens: []string{twilioToken}}))
	params := twilioVectorParams()
	cases := []struct {
		name, url, sig string
	}{
		{"form params", twilioURL, twilioSig},
		{"https with port, signature without it", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", twilioSig},
		{"https, signature with :443", twilioURL, "kvajT1Ptam85bY51eRf/AJRuM3w="},
		{"http, signature with :80", "http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="},
		{"http with port, signature with it", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantPass(t, v.Verify(twilioFormRequest(t, c.url, c.sig, params)))
		})
	}
	if got := SignTwilio(twilioToken, twilioURL, params); got != twilioSig {
		t.Errorf("SignTwilio = %s, want %s", got, twilioSig)
	}

	t.Run("wrong signature", func(t *testing.T) {
		wantReason(t, v.Verify(twilioFormRequest(t, twilioURL, "WRONG SIGNATURE", params)), ReasonMalformed)
		// A well-formed signature of another URL.
		wantReason(t, v.Verify(twilioFormRequest(t, twilioURL, "y77kIzt2vzLz71DgmJGsen2scGs=", params)), ReasonBadSignature)
	})

	// Repeated keys (twilio-python test_compute_signature_duplicate_*).
	t.Run("duplicate keys", func(t *testing.T) {
		form, _ := url.ParseQuery("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234")
		const want = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
		if got := SignTwilio(twilioToken, twilioURL, form); got != want {
			t.Errorf("SignTwilio = %s, want %s", got, want)
		}
		r := newRequest(t, twilioURL, hdr("Content-Type", "application/x-www-form-urlencoded", "X-Twilio-Signature", want),
			[]byte("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"))
		wantPass(t, v.Verify(r))
	})

	// JSON bodies: the URL carries bodySHA256 (twilio-go ValidateBody tests,
	// twilio-python test_validation_of_body_succeeds).
	jsonReq := func(t *testing.T, fullURL, sig, body string) *Request {
		t.Helper()
		return newRequest(t, fullURL, hdr("Content-Type", "application/json", "X-Twilio-Signature", sig), []byte(body))
	}
	t.Run("json bodySHA256", func(t *testing.T) {
		if got := PayloadHash([]byte(twilioJSONBody)); got != twilioBodyHash {
			t.Fatalf("PayloadHash = %s, want %s", got, twilioBodyHash)
		}
		wantPass(t, v.Verify(jsonReq(t, twilioURL+"&bodySHA256="+twilioBodyHash, "a9nBmqA0ju/hNViExpshrM61xv4=", twilioJSONBody)))
		wantPass(t, v.Verify(jsonReq(t, "https://mycompany.com/myapp.php?bodySHA256="+twilioBodyHash, "y77kIzt2vzLz71DgmJGsen2scGs=", twilioJSONBody)))
		if got := SignTwilio(twilioToken, twilioURL+"&bodySHA256="+twilioBodyHash, nil); got != "a9nBmqA0ju/hNViExpshrM61xv4=" {
			t.Errorf("SignTwilio(json) = %s", got)
		}
	})
	t.Run("json without bodySHA256", func(t *testing.T) {
		wantReason(t, v.Verify(jsonReq(t, twilioURL, twilioSig, twilioJSONBody)), ReasonBadSignature)
	})
	t.Run("json body tampered", func(t *testing.T) {
		wantReason(t, v.Verify(jsonReq(t, twilioURL+"&bodySHA256="+twilioBodyHash, "a9nBmqA0ju/hNViExpshrM61xv4=",
			`{"property": "value", "boolean": false}`)), ReasonBadSignature)
	})
}

// Standard Webhooks reference vector, copied from
// standard-webhooks/standard-webhooks libraries/go/webhook_test.go
// (TestWebhookSign, TestWebhook "valid multi sig is valid", TestWebhookPrefix).
const (
	swSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTimestamp = 1614265330
	swPayload   = `{"test": 2432232314}`
	swExpected  = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	swInvalid   = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

func swRequest(t testing.TB, id, ts, sig string, body []byte) *Request {
	t.Helper()
	return newRequest(t, "https://relay.example/hooks/std", hdr(
		"webhook-id", id, "webhook-timestamp", ts, "webhook-signature", sig), body)
}

func TestStandardWebhooksOfficialVector(t *testing.T) {
	signer := must[*WebhookSigner](t)(NewWebhookSigner(swSecret))
	if got := signer.Sign(swMsgID, time.Unix(swTimestamp, 0), []byte(swPayload)); got != swExpected {
		t.Fatalf("Sign = %s, want %s", got, swExpected)
	}
	now := func() time.Time { return time.Unix(swTimestamp, 0).Add(90 * time.Second) }
	for _, secret := range []string{swSecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		v := must[*StandardWebhooks](t)(NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{secret}, Now: now}))
		wantPass(t, v.Verify(swRequest(t, swMsgID, "1614265330", swExpected, []byte(swPayload))))
		multi := swInvalid + " v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + swExpected + " " + swInvalid
		wantPass(t, v.Verify(swRequest(t, swMsgID, "1614265330", multi, []byte(swPayload))))
		wantReason(t, v.Verify(swRequest(t, swMsgID, "1614265330", swInvalid, []byte(swPayload))), ReasonBadSignature)
	}
	h := signer.Headers(swMsgID, time.Unix(swTimestamp, 0), []byte(swPayload))
	if h.Get("webhook-signature") != swExpected || h.Get("webhook-timestamp") != "1614265330" || h.Get("webhook-id") != swMsgID {
		t.Fatalf("Headers = %v", h)
	}
}

// X-Hub-Signature-256 vectors.
//
// GitHub publishes the vector for the same header format (HMAC-SHA256 of
// the raw body, hex, "sha256=" prefix): github/docs
// content/webhooks/using-webhooks/validating-webhook-deliveries.md
// ("Testing the webhook payload validation").
//
// Meta publishes no test vector for X-Hub-Signature-256; metaSig below was
// computed (Python hmac/hashlib) over metaBody, a WhatsApp payload whose
// non-ASCII characters are \u escapes, as Meta sends them. The same JSON
// with the characters decoded must not verify: Meta signs the raw bytes.
const (
	metaSecret = "meta-app-secret-4f1c"
	metaBody   = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","contacts":[{"profile":{"name":"J\u00e4n M\u00fcller"},"wa_id":"4915112345678"}]},"field":"messages"}]}]}`
	metaSig    = "sha256=3fda1cd91b9b3a071e78b3c7cfd3129e5fd43a139926ac8d613e28fb9c87b9bf"
)

func metaConfig(secrets ...string) HMACConfig {
	return HMACConfig{Secrets: secrets, Header: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256="}
}

func TestHubSignatureVectors(t *testing.T) {
	t.Run("github documented vector", func(t *testing.T) {
		c := metaConfig("It's a Secret to Everybody")
		v := must[*HMAC](t)(NewHMAC(c))
		const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
		if got := SignHMAC(c, "It's a Secret to Everybody", []byte("Hello, World!")); got != want {
			t.Fatalf("SignHMAC = %s, want %s", got, want)
		}
		wantPass(t, v.Verify(newRequest(t, "https://r.example/h", hdr("X-Hub-Signature-256", want), []byte("Hello, World!"))))
		wantReason(t, v.Verify(newRequest(t, "https://r.example/h", hdr("X-Hub-Signature-256", want), []byte("Hello, World?"))), ReasonBadSignature)
	})
	t.Run("meta raw bytes", func(t *testing.T) {
		c := metaConfig(metaSecret)
		v := must[*HMAC](t)(NewHMAC(c))
		if got := SignHMAC(c, metaSecret, []byte(metaBody)); got != metaSig {
			t.Fatalf("SignHMAC = %s, want %s", got, metaSig)
		}
		wantPass(t, v.Verify(newRequest(t, "https://r.example/h", hdr("X-Hub-Signature-256", metaSig), []byte(metaBody))))
		decoded := `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","contacts":[{"profile":{"name":"Jän Müller"},"wa_id":"4915112345678"}]},"field":"messages"}]}]}`
		wantReason(t, v.Verify(newRequest(t, "https://r.example/h", hdr("X-Hub-Signature-256", metaSig), []byte(decoded))), ReasonBadSignature)
	})
}

// MessageBird webhook signature vectors, copied from
// messagebird/go-rest-api signature/testdata/reference.json (each case there
// is repeated for five HTTP methods; the method is not signed, so each
// case appears once here). All are evaluated at the file's timestamp
// 2021-07-05T12:00:00+02:00 with MessageBird's 1 s skew.
func TestMessageBirdReferenceVectors(t *testing.T) {
	received := time.Date(2021, 7, 5, 12, 0, 0, 0, time.FixedZone("", 2*3600))
	v := must[*JWT](t)(NewJWT(JWTConfig{
		Header:      "MessageBird-Signature-JWT",
		Algorithms:  []string{"HS256"},
		Secrets:     []string{"hunter2"},
		Issuer:      "MessageBird",
		Leeway:      time.Second,
		RequireExp:  true,
		PayloadHash: true,
		URLHash:     true,
		Now:         func() time.Time { return received },
	}))
	cases := []struct {
		name, url, payload, token string
		want                      Reason // "" = valid
	}{
		{"Valid JWT with no URL parameters or payload", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.SrhlKJ-ES4Dg8BBXKtop3u92Z_k4L4VjHKsyHWpweGE", ""},
		{"Valid JWT with URL parameters and no payload", "https://example.com/path?bar=1&foo=2", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJjOTQ2YWY3Ny1lMTgyLTRlYWEtYjJmZi0xYTU0NWI1ZTk5MWEiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAifQ.wUeGukU50HcPIr8d-zcCpttlGnPE-W57ujVb36AbAYw", ""},
		{"Valid JWT with URL parameters and payload", "https://example.com/path?bar=1&foo=2", "Hello, World!",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0.K6HyLDRdYgQBKN2tBcu0dOSxsfb_lOLaWby3un4rxIc", ""},
		{"Token received before it was issued", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ4MjgwMCwiZXhwIjoxNjI1NDgyODYwLCJqdGkiOiJmOWY4YzM4Mi0yNDQ5LTQzMTEtYjcyYi0xZGY3MTY4NzkzMWUiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ._59NNTg0j5YVXCRHgyeJAj8n6rTg1gwTh_I_coe7RDQ", ReasonClockSkew},
		{"Token received after it was expired", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3NTYwMCwiZXhwIjoxNjI1NDc1NjYwLCJqdGkiOiI1ZjAyZjUyMi02MDMwLTQ2YzgtYjVhMy0wMTI0NjQ3OGQ4YmMiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.iGUCLsYVQG4iYWe2MkRoLQBBMzq7p_bLy4u0mhC3Jfc", ReasonExpired},
		{"Token received on different URL (parameters were sorted out of order)", "https://example.com/path?foo=1&bar=2", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJhNzVjOTA5Ni1lODIzLTQ0MmItODVmMi03ZDNjOWQ5YjcyNmIiLCJ1cmxfaGFzaCI6IjZhMDIyZDgzNGMxODMzMGJhYWQ4YTJiZDYxMzUxNzNlZDIxNjEwYTQ1NDUxNmJlMGRmM2YxY2MwMTUxNjEwZWEifQ.LtoTBRRo4Zcw9VlEhS5WCwX4cI_f-mYznekIzXkxqds", ReasonBadClaims},
		{"Payload does not match", "https://example.com/", "Hello, World!",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIxNDUwMTUzMi05NmYyLTQ2ODQtOTgzMi02OGYwOTUxYWUzNDIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiJmYjYyZjAyYWNkYTdkNzQxNzdhNzAxYTFjZTAwNmU2YmFjZDkwYzdkNGQ3YWI0ODE2OTJjMWRhNDdjODEwNzZiIn0.wt_2rlnGfmMQsZ8tYtN_D5V5oIMt4wXp1s2b0uVwcvk", ReasonBadClaims},
		{"Different secret", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIyNDNjMjdhZS0yZjAyLTQ2YTAtODg1Mi1jNjZmMzdlYTlmNDYiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ._Uwf4HMtfAT6jvbBbh85Q9TunX0QlsXoaLGKX0I4VDg", ReasonBadSignature},
		{"payload was removed in transit", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIxNDUwMTUzMi05NmYyLTQ2ODQtOTgzMi02OGYwOTUxYWUzNDIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0.K2VPo6K75lV2rXAvXfm9kBhSEQNYyBaIqwC73h-BPKI", ReasonBadClaims},
		{"payload was added in transit", "https://example.com/", "Hello, World!",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.SrhlKJ-ES4Dg8BBXKtop3u92Z_k4L4VjHKsyHWpweGE", ReasonBadClaims},
		{"Special characters in URL", "https://example.com/?obj%5Bfield1%5D=val1&obj%5Bfield2%5D=val2&param=value+with+spaces", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjhhZmYzNzQ4ZDc4OWM0MzMzNTczZTFjMzFmZTViMDA0OTQwY2I1ZmM0NzQ2MGVkM2QwZTY1NGY3ZmM0ZTVmYWUifQ.uKyViTrquY1DAtEaeBrz6RvLNsLdSg0n4YVDuO2juj4", ""},
		{"Special characters in the payload", "https://example.com/", `Some text containg & < >, & and \u0026`,
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiIyNDMxYmQ5Y2NiNDhlZDAxNmZhZDU2N2IwNzcxMjAzOGI1Y2RkOTQ5YWM5ZDQxZmU0NjkzZDVhMzg0NWNmN2U4In0.oQZwEMcMsT3SQhMozbnAo2445PYDKwoD77e2-dJQpdc", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRequest(t, c.url, hdr("MessageBird-Signature-JWT", c.token), []byte(c.payload))
			err := v.Verify(r)
			if c.want == "" {
				wantPass(t, err)
			} else {
				wantReason(t, err, c.want)
			}
		})
	}
}

// Vonage signed-webhook vector, copied from Vonage/vonage-python-sdk
// jwt/tests/test_verify_jwt.py (verify_signature: HS256 with the
// signature secret).
func TestVonageVerifySignatureVector(t *testing.T) {
	const (
		token   = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM"
		valid   = "qwertyuiopasdfghjklzxcvbnm123456"
		invalid = "asdf"
	)
	now := func() time.Time { return time.Unix(1697634680, 0).Add(time.Minute) }
	cfg := JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{valid}, Leeway: 30 * time.Second, PayloadHash: true, Now: now}
	v := must[*JWT](t)(NewJWT(cfg))
	wantPass(t, v.Verify(newRequest(t, "https://r.example/vonage", hdr("Authorization", "Bearer "+token), nil)))
	wantPass(t, v.Verify(newRequest(t, "https://r.example/vonage", hdr("Authorization", "bearer  "+token), nil)))
	wantReason(t, v.Verify(newRequest(t, "https://r.example/vonage", hdr("Authorization", "Bearer asdf"), nil)), ReasonMalformed)
	// The vector's token carries no payload_hash: a body is then not covered.
	wantReason(t, v.Verify(newRequest(t, "https://r.example/vonage", hdr("Authorization", "Bearer "+token), []byte(`{"a":1}`))), ReasonBadClaims)

	cfg.Secrets = []string{invalid}
	w := must[*JWT](t)(NewJWT(cfg))
	wantReason(t, w.Verify(newRequest(t, "https://r.example/vonage", hdr("Authorization", "Bearer "+token), nil)), ReasonBadSignature)
}
