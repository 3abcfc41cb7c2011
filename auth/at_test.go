package auth

import (
	"strconv"
	"testing"
	"time"
)

// A request carrying its arrival time (Request.At) is judged as of that
// time by every verifier that checks times, whatever the clock says now;
// without At the clock decides, as for a live callback.
func TestRequestAtJudgesAsOfArrival(t *testing.T) {
	arrived := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	now := arrived.Add(48 * time.Hour)
	clock := func() time.Time { return now }

	t.Run("standard_webhooks", func(t *testing.T) {
		v := must[*StandardWebhooks](t)(NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{"whsec_bmV3LXNpZ25pbmcta2V5LTEyMzQ1Njc4"}, Now: clock}))
		signer := must[*WebhookSigner](t)(NewWebhookSigner("whsec_bmV3LXNpZ25pbmcta2V5LTEyMzQ1Njc4"))
		body := []byte(`{"type":"message.received"}`)
		r := swRequest(t, "msg_1", strconv.FormatInt(arrived.Unix(), 10), signer.Sign("msg_1", arrived, body), body)
		wantReason(t, v.Verify(r), ReasonClockSkew)
		r.At = arrived.Add(time.Minute)
		wantPass(t, v.Verify(r))
		r.At = arrived.Add(time.Hour)
		wantReason(t, v.Verify(r), ReasonClockSkew)
	})
	t.Run("jwt", func(t *testing.T) {
		key := []byte("jwt-at-secret")
		v := must[*JWT](t)(NewJWT(JWTConfig{Scheme: "Bearer", Algorithms: []string{"HS256"}, Secrets: []string{string(key)}, Now: clock}))
		tok := must[string](t)(SignJWT("HS256", key, claimsAt(arrived)))
		r := jwtReq(t, tok, nil)
		wantReason(t, v.Verify(r), ReasonExpired)
		r.At = arrived.Add(time.Minute)
		wantPass(t, v.Verify(r))
		// The shared parser keeps the clock for live requests.
		wantReason(t, v.Verify(jwtReq(t, tok, nil)), ReasonExpired)
		r.At = arrived.Add(10 * time.Minute)
		wantReason(t, v.Verify(r), ReasonExpired)
	})
	t.Run("basic expiry", func(t *testing.T) {
		v := must[*Basic](t)(NewBasic(BasicConfig{Users: []BasicUser{{Name: "u", Password: "p", Expires: arrived.Add(time.Hour)}}, Now: clock}))
		r := newRequest(t, "https://r.example/b", hdr("Authorization", basicHeader("u", "p")), nil)
		wantReason(t, v.Verify(r), ReasonExpired)
		r.At = arrived
		wantPass(t, v.Verify(r))
	})
}
