package auth

import (
	"net/url"
	"testing"
)

func TestTwilio(t *testing.T) {
	const public = "https://hooks.example.com/hooks/twilio"
	v := must[*Twilio](t)(NewTwilio(TwilioConfig{AuthTokens: []string{"", "old-token", "new-token"}}))
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+15005550006"}, "Body": {"héllo & bye"}}
	sig := SignTwilio("new-token", public, form)

	wantPass(t, v.Verify(twilioFormRequest(t, public, sig, form)))
	t.Run("rotation", func(t *testing.T) {
		wantPass(t, v.Verify(twilioFormRequest(t, public, SignTwilio("old-token", public, form), form)))
		wantReason(t, v.Verify(twilioFormRequest(t, public, SignTwilio("", public, form), form)), ReasonBadSignature)
	})
	t.Run("wrong token", func(t *testing.T) {
		wantReason(t, v.Verify(twilioFormRequest(t, public, SignTwilio("other", public, form), form)), ReasonBadSignature)
	})
	t.Run("tampered form", func(t *testing.T) {
		f2 := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"failed"}, "To": {"+15005550006"}, "Body": {"héllo & bye"}}
		wantReason(t, v.Verify(twilioFormRequest(t, public, sig, f2)), ReasonBadSignature)
		f3 := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}, "To": {"+15005550006"}, "Body": {"héllo & bye"}, "X": {""}}
		wantReason(t, v.Verify(twilioFormRequest(t, public, sig, f3)), ReasonBadSignature)
	})
	t.Run("other URL or query", func(t *testing.T) {
		wantReason(t, v.Verify(twilioFormRequest(t, public+"?a=1", sig, form)), ReasonBadSignature)
		wantReason(t, v.Verify(twilioFormRequest(t, "https://hooks.example.com/hooks/other", sig, form)), ReasonBadSignature)
		wantPass(t, v.Verify(twilioFormRequest(t, public+"?a=1", SignTwilio("new-token", public+"?a=1", form), form)))
	})
	t.Run("content type with charset", func(t *testing.T) {
		r := newRequest(t, public, hdr("Content-Type", "application/x-www-form-urlencoded; charset=utf-8", "X-Twilio-Signature", sig), []byte(form.Encode()))
		wantPass(t, v.Verify(r))
	})
	t.Run("form fields are not read from other content types", func(t *testing.T) {
		r := newRequest(t, public, hdr("Content-Type", "text/plain", "X-Twilio-Signature", sig), []byte(form.Encode()))
		wantReason(t, v.Verify(r), ReasonBadSignature)
	})
	t.Run("GET without body", func(t *testing.T) {
		u := public + "?CallSid=CA1&From=%2B1555"
		r := newRequest(t, u, hdr("X-Twilio-Signature", SignTwilio("new-token", u, nil)), nil)
		r.Method = "GET"
		wantPass(t, v.Verify(r))
	})
	t.Run("public URL fallback to Host", func(t *testing.T) {
		r := twilioFormRequest(t, public, sig, form)
		r.PublicURL = ""
		wantPass(t, v.Verify(r))
		r.Host = "evil.example.com"
		wantReason(t, v.Verify(r), ReasonBadSignature)
	})
	t.Run("missing and malformed", func(t *testing.T) {
		wantReason(t, v.Verify(twilioFormRequest(t, public, "", form)), ReasonMissing)
		wantReason(t, v.Verify(twilioFormRequest(t, public, "not base64!", form)), ReasonMalformed)
		wantReason(t, v.Verify(twilioFormRequest(t, public, "AAAA", form)), ReasonMalformed)
		r := newRequest(t, public, hdr("Content-Type", "application/x-www-form-urlencoded", "X-Twilio-Signature", sig), []byte("a=%zz"))
		wantReason(t, v.Verify(r), ReasonMalformed)
	})
	if _, err := NewTwilio(TwilioConfig{AuthTokens: []string{""}}); err == nil || err.Error() != "twilio: at least one non-empty auth token is required" {
		t.Fatalf("NewTwilio(empty) = %v", err)
	}
}

func TestTwilioURLs(t *testing.T) {
	cases := map[string][2]string{
		"https://a.example/p?q=1":           {"https://a.example/p?q=1", "https://a.example:443/p?q=1"},
		"https://a.example:8443/p":          {"https://a.example/p", "https://a.example:8443/p"},
		"http://a.example":                  {"http://a.example", "http://a.example:80"},
		"https://user:pw@a.example:443/p":   {"https://user:pw@a.example/p", "https://user:pw@a.example:443/p"},
		"https://[2001:db8::1]/p":           {"https://[2001:db8::1]/p", "https://[2001:db8::1]:443/p"},
		"https://[2001:db8::1]:8443/p?x=:1": {"https://[2001:db8::1]/p?x=:1", "https://[2001:db8::1]:8443/p?x=:1"},
	}
	for in, want := range cases {
		got := twilioURLs(in)
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("twilioURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
