package auth

import (
	"strings"
	"testing"
)

func TestNewHMACErrors(t *testing.T) {
	cases := []struct {
		c    HMACConfig
		want string
	}{
		{HMACConfig{Secrets: []string{"s"}, Header: "X-Sig", Algorithm: "md5"}, `hmac: algorithm "md5" not supported (sha1, sha256, sha512)`},
		{HMACConfig{Secrets: []string{"s"}, Header: "X-Sig", Encoding: "base32"}, `hmac: encoding "base32" not supported (hex, base64)`},
		{HMACConfig{Secrets: []string{"s"}}, "hmac: header name is required"},
		{HMACConfig{Secrets: []string{"", ""}, Header: "X-Sig"}, "hmac: at least one non-empty secret is required"},
		{HMACConfig{Header: "X-Sig"}, "hmac: at least one non-empty secret is required"},
	}
	for _, c := range cases {
		_, err := NewHMAC(c.c)
		if err == nil || err.Error() != c.want {
			t.Errorf("NewHMAC(%+v) = %v, want %q", c.c, err, c.want)
		}
	}
}

func TestHMAC(t *testing.T) {
	body := []byte(`{"entry":[{"id":"1"}]}`)
	c := metaConfig("", "old-secret", "new-secret")
	v := must[*HMAC](t)(NewHMAC(c))
	req := func(sig string, body []byte) *Request {
		return newRequest(t, "https://r.example/meta", hdr("X-Hub-Signature-256", sig), body)
	}
	good := SignHMAC(c, "new-secret", body)

	t.Run("rotation", func(t *testing.T) {
		wantPass(t, v.Verify(req(good, body)))
		wantPass(t, v.Verify(req(SignHMAC(c, "old-secret", body), body)))
	})
	t.Run("empty secret ignored", func(t *testing.T) {
		wantReason(t, v.Verify(req(SignHMAC(c, "", body), body)), ReasonBadSignature)
	})
	t.Run("wrong key", func(t *testing.T) {
		wantReason(t, v.Verify(req(SignHMAC(c, "other-secret", body), body)), ReasonBadSignature)
	})
	t.Run("tampered body", func(t *testing.T) {
		wantReason(t, v.Verify(req(good, []byte(`{"entry":[{"id":"2"}]}`))), ReasonBadSignature)
	})
	t.Run("other algorithm", func(t *testing.T) {
		sha1 := c
		sha1.Algorithm = "sha1"
		wantReason(t, v.Verify(req(SignHMAC(sha1, "new-secret", body), body)), ReasonMalformed)
	})
	t.Run("missing header", func(t *testing.T) {
		wantReason(t, v.Verify(newRequest(t, "https://r.example/meta", nil, body)), ReasonMissing)
		wantReason(t, v.Verify(req("   ", body)), ReasonMissing)
	})
	t.Run("malformed", func(t *testing.T) {
		hexPart := strings.TrimPrefix(good, "sha256=")
		for _, bad := range []string{
			hexPart,                    // prefix required
			"sha256=" + hexPart[:62],   // short
			"sha256=" + hexPart + "00", // long
			"sha256=zz" + hexPart[2:],  // not hex
			"sha1=" + hexPart,          // other prefix
			"sha256=" + hexPart[:31] + " " + hexPart[32:],
		} {
			wantReason(t, v.Verify(req(bad, body)), ReasonMalformed)
		}
	})
	t.Run("spaces and case", func(t *testing.T) {
		wantPass(t, v.Verify(req("  "+strings.ToUpper(good)+"  ", body)))
		wantPass(t, v.Verify(req("SHA256="+strings.ToUpper(strings.TrimPrefix(good, "sha256=")), body)))
	})
}

func TestHMACPrefixOptionalAndBase64(t *testing.T) {
	body := []byte("appId=123&text=hi")
	webex := HMACConfig{Secrets: []string{"webex-secret"}, Header: "X-Hub-Signature", Algorithm: "sha1", Prefix: "sha1=", PrefixOptional: true}
	v := must[*HMAC](t)(NewHMAC(webex))
	sig := SignHMAC(webex, "webex-secret", body)
	if !strings.HasPrefix(sig, "sha1=") || len(sig) != len("sha1=")+40 {
		t.Fatalf("SignHMAC = %q", sig)
	}
	wantPass(t, v.Verify(newRequest(t, "https://r.example/w", hdr("X-Hub-Signature", sig), body)))
	wantPass(t, v.Verify(newRequest(t, "https://r.example/w", hdr("X-Hub-Signature", strings.TrimPrefix(sig, "sha1=")), body)))
	wantReason(t, v.Verify(newRequest(t, "https://r.example/w", hdr("X-Hub-Signature", sig), append(body, '!'))), ReasonBadSignature)

	b64 := HMACConfig{Secrets: []string{"k"}, Header: "X-Signature", Algorithm: "sha512", Encoding: "base64"}
	w := must[*HMAC](t)(NewHMAC(b64))
	sig = SignHMAC(b64, "k", body)
	wantPass(t, w.Verify(newRequest(t, "https://r.example/w", hdr("X-Signature", sig), body)))
	wantPass(t, w.Verify(newRequest(t, "https://r.example/w", hdr("X-Signature", strings.TrimRight(sig, "=")), body)))
	wantReason(t, w.Verify(newRequest(t, "https://r.example/w", hdr("X-Signature", "!!"+sig), body)), ReasonMalformed)
	wantReason(t, w.Verify(newRequest(t, "https://r.example/w", hdr("X-Signature", SignHMAC(b64, "k2", body)), body)), ReasonBadSignature)
}
