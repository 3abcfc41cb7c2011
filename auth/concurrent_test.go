package auth

import (
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestVerifiersConcurrent shares each verifier between goroutines, as the
// relay does across requests; run with -race.
func TestVerifiersConcurrent(t *testing.T) {
	now := jwtNow
	nowf := func() time.Time { return now }
	body := []byte(`{"n":1}`)
	hc := metaConfig("s1", "s2")
	hm := must[*HMAC](t)(NewHMAC(hc))
	jw := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{"j"}, PayloadHash: true, Now: nowf}))
	tw := must[*Twilio](t)(NewTwilio(TwilioConfig{AuthTokens: []string{"t"}}))
	sw := must[*StandardWebhooks](t)(NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{swSecret}, Now: nowf}))
	ba := must[*Basic](t)(NewBasic(BasicConfig{Users: []BasicUser{{Name: "u", Password: "p"}}, Now: nowf}))
	signer := must[*WebhookSigner](t)(NewWebhookSigner(swSecret))

	c := claimsAt(now)
	c["payload_hash"] = PayloadHash(body)
	tok := must[string](t)(SignJWT("HS256", "j", c))
	form := url.Values{"A": {"1"}}
	const public = "https://r.example/c"

	good := func() []struct {
		v Verifier
		r *Request
	} {
		swReq := newRequest(t, public, signer.Headers("m1", now, body), body)
		return []struct {
			v Verifier
			r *Request
		}{
			{hm, newRequest(t, public, hdr("X-Hub-Signature-256", SignHMAC(hc, "s2", body)), body)},
			{jw, newRequest(t, public, hdr("Authorization", "Bearer "+tok), body)},
			{tw, twilioFormRequest(t, public, SignTwilio("t", public, form), form)},
			{sw, swReq},
			{ba, newRequest(t, public, hdr("Authorization", basicHeader("u", "p")), nil)},
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(good))
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for _, c := range good {
					if err := c.v.Verify(c.r); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
