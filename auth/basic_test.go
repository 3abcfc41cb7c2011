package auth

import (
	"encoding/base64"
	"testing"
	"time"
)

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestBasic(t *testing.T) {
	expires := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := expires.Add(-time.Hour)
	v := must[*Basic](t)(NewBasic(BasicConfig{
		Users: []BasicUser{
			{Name: "infobip", Password: "pa:ss word", Expires: expires},
			{Name: "karix", Password: "k-secret"},
		},
		Now: func() time.Time { return now },
	}))
	req := func(auth string) *Request {
		h := hdr()
		if auth != "" {
			h.Set("Authorization", auth)
		}
		return newRequest(t, "https://r.example/b", h, nil)
	}
	wantPass(t, v.Verify(req(basicHeader("infobip", "pa:ss word"))))
	wantPass(t, v.Verify(req(basicHeader("karix", "k-secret"))))
	wantPass(t, v.Verify(req("basic "+base64.StdEncoding.EncodeToString([]byte("karix:k-secret")))))

	wantReason(t, v.Verify(req(basicHeader("karix", "k-secreT"))), ReasonBadCredentials)
	wantReason(t, v.Verify(req(basicHeader("karix", ""))), ReasonBadCredentials)
	wantReason(t, v.Verify(req(basicHeader("nobody", "k-secret"))), ReasonBadCredentials)
	wantReason(t, v.Verify(req(basicHeader("infobip", "k-secret"))), ReasonBadCredentials)

	wantReason(t, v.Verify(req("")), ReasonMissing)
	for _, bad := range []string{
		"Bearer abc",
		"Basic",
		"Basic !!!",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon")),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":empty-user")),
		"Digest " + base64.StdEncoding.EncodeToString([]byte("karix:k-secret")),
	} {
		wantReason(t, v.Verify(req(bad)), ReasonMalformed)
	}

	// Rejected from Expires on, accepted just before.
	now = expires.Add(-time.Nanosecond)
	wantPass(t, v.Verify(req(basicHeader("infobip", "pa:ss word"))))
	now = expires
	wantReason(t, v.Verify(req(basicHeader("infobip", "pa:ss word"))), ReasonExpired)
	// An expired user with a wrong password is still a wrong password.
	wantReason(t, v.Verify(req(basicHeader("infobip", "nope"))), ReasonBadCredentials)
	wantPass(t, v.Verify(req(basicHeader("karix", "k-secret"))))

	exp := v.Expiries()
	if len(exp) != 1 || exp[0].Name != "user infobip" || !exp[0].At.Equal(expires) {
		t.Fatalf("Expiries = %+v", exp)
	}
	var _ Expiring = v
}

func TestNewBasicErrors(t *testing.T) {
	cases := []struct {
		users []BasicUser
		want  string
	}{
		{nil, "basic: at least one user is required"},
		{[]BasicUser{{Name: "", Password: "p"}}, "basic: user 1 has an empty name"},
		{[]BasicUser{{Name: "a:b", Password: "p"}}, `basic: user name "a:b" contains a colon`},
		{[]BasicUser{{Name: "a", Password: ""}}, `basic: user "a" has an empty password`},
		{[]BasicUser{{Name: "a", Password: "p"}, {Name: "a", Password: "q"}}, `basic: user "a" is defined twice`},
	}
	for _, c := range cases {
		_, err := NewBasic(BasicConfig{Users: c.users})
		if err == nil || err.Error() != c.want {
			t.Errorf("NewBasic(%v) = %v, want %q", c.users, err, c.want)
		}
	}
}

func TestHeaderAndNone(t *testing.T) {
	v := must[*Header](t)(NewHeader(HeaderConfig{Name: "x-api-key", Values: []string{"", "old-key", "new-key"}}))
	req := func(h string) *Request {
		hd := hdr()
		if h != "" {
			hd.Set("X-Api-Key", h)
		}
		return newRequest(t, "https://r.example/k", hd, nil)
	}
	wantPass(t, v.Verify(req("new-key")))
	wantPass(t, v.Verify(req("old-key")))
	wantReason(t, v.Verify(req("new-ke")), ReasonBadCredentials)
	wantReason(t, v.Verify(req("new-key2")), ReasonBadCredentials)
	wantReason(t, v.Verify(req("")), ReasonMissing)

	for _, c := range []struct {
		c    HeaderConfig
		want string
	}{
		{HeaderConfig{Values: []string{"v"}}, "header: name is required"},
		{HeaderConfig{Name: "Bad Name", Values: []string{"v"}}, `header: name "Bad Name" is not a valid header name`},
		{HeaderConfig{Name: "X-Key", Values: []string{""}}, "header: at least one non-empty value is required for X-Key"},
	} {
		_, err := NewHeader(c.c)
		if err == nil || err.Error() != c.want {
			t.Errorf("NewHeader(%+v) = %v, want %q", c.c, err, c.want)
		}
	}

	wantPass(t, None{}.Verify(newRequest(t, "https://r.example/n", nil, nil)))
	if err := All(newRequest(t, "https://r.example/n", hdr("X-Api-Key", "old-key"), nil), []Verifier{None{}, v}); err != nil {
		t.Fatal(err)
	}
	wantReason(t, All(newRequest(t, "https://r.example/n", nil, nil), []Verifier{None{}, v}), ReasonMissing)
}
