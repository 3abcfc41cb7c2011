package auth

import (
	"strconv"
	"testing"
	"time"
)

func TestStandardWebhooks(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	signer := must[*WebhookSigner](t)(NewWebhookSigner("whsec_bmV3LXNpZ25pbmcta2V5LTEyMzQ1Njc4"))
	oldSigner := must[*WebhookSigner](t)(NewWebhookSigner("b2xkLXNpZ25pbmcta2V5"))
	v := must[*StandardWebhooks](t)(NewStandardWebhooks(StandardWebhooksConfig{
		Secrets: []string{"", "b2xkLXNpZ25pbmcta2V5", "whsec_bmV3LXNpZ25pbmcta2V5LTEyMzQ1Njc4"},
		Now:     func() time.Time { return now },
	}))
	body := []byte(`{"type":"message.received"}`)
	ts := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	sign := func(s *WebhookSigner, d time.Duration, b []byte) string { return s.Sign("msg_1", now.Add(d), b) }

	wantPass(t, v.Verify(swRequest(t, "msg_1", ts(0), sign(signer, 0, body), body)))
	t.Run("rotation", func(t *testing.T) {
		wantPass(t, v.Verify(swRequest(t, "msg_1", ts(0), sign(oldSigner, 0, body), body)))
	})
	t.Run("tampered", func(t *testing.T) {
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(0), sign(signer, 0, body), []byte(`{"type":"message.sent"}`))), ReasonBadSignature)
		wantReason(t, v.Verify(swRequest(t, "msg_2", ts(0), sign(signer, 0, body), body)), ReasonBadSignature)
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(time.Second), sign(signer, 0, body), body)), ReasonBadSignature)
		other := must[*WebhookSigner](t)(NewWebhookSigner("whsec_b3RoZXIta2V5"))
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(0), sign(other, 0, body), body)), ReasonBadSignature)
		// Only v1 is understood.
		sig := sign(signer, 0, body)
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(0), "v2"+sig[2:], body)), ReasonBadSignature)
	})
	t.Run("timestamp outside tolerance", func(t *testing.T) {
		for _, d := range []time.Duration{-5*time.Minute - time.Second, 5*time.Minute + time.Second, -time.Hour, 24 * time.Hour} {
			wantReason(t, v.Verify(swRequest(t, "msg_1", ts(d), sign(signer, d, body), body)), ReasonClockSkew)
		}
		for _, d := range []time.Duration{-5 * time.Minute, 5 * time.Minute, -time.Minute} {
			wantPass(t, v.Verify(swRequest(t, "msg_1", ts(d), sign(signer, d, body), body)))
		}
		w := must[*StandardWebhooks](t)(NewStandardWebhooks(StandardWebhooksConfig{
			Secrets: []string{"b2xkLXNpZ25pbmcta2V5"}, Tolerance: 10 * time.Second, Now: func() time.Time { return now },
		}))
		wantReason(t, w.Verify(swRequest(t, "msg_1", ts(-11*time.Second), sign(oldSigner, -11*time.Second, body), body)), ReasonClockSkew)
		wantPass(t, w.Verify(swRequest(t, "msg_1", ts(-9*time.Second), sign(oldSigner, -9*time.Second, body), body)))
	})
	t.Run("missing and malformed", func(t *testing.T) {
		sig := sign(signer, 0, body)
		wantReason(t, v.Verify(swRequest(t, "", ts(0), sig, body)), ReasonMissing)
		wantReason(t, v.Verify(swRequest(t, "msg_1", "", sig, body)), ReasonMissing)
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(0), "", body)), ReasonMissing)
		wantReason(t, v.Verify(swRequest(t, "msg_1", "yesterday", sig, body)), ReasonMalformed)
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(0), "garbage", body)), ReasonMalformed)
		wantReason(t, v.Verify(swRequest(t, "msg_1", ts(0), "v1,!!!", body)), ReasonBadSignature)
	})
	for _, c := range []struct {
		c    StandardWebhooksConfig
		want string
	}{
		{StandardWebhooksConfig{}, "standard_webhooks: at least one non-empty secret is required"},
		{StandardWebhooksConfig{Secrets: []string{"whsec_!!"}}, "standard_webhooks: secret 1: secret is not whsec_ followed by base64"},
		{StandardWebhooksConfig{Secrets: []string{"b2xk"}, Tolerance: -time.Second}, "standard_webhooks: tolerance -1s is negative"},
	} {
		_, err := NewStandardWebhooks(c.c)
		if err == nil || err.Error() != c.want {
			t.Errorf("NewStandardWebhooks(%+v) = %v, want %q", c.c, err, c.want)
		}
	}
	if _, err := NewWebhookSigner("whsec_"); err == nil {
		t.Error("NewWebhookSigner(empty key): want error")
	}
}
