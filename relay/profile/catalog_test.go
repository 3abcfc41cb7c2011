package profile

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNamesAndLookup(t *testing.T) {
	want := []string{"meta", "twilio", "infobip", "gupshup", "karix", "netcore", "webex", "vonage", "messagebird", "sinch", "standard", "generic"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		p, ok := Lookup(name)
		if !ok || p.Name != name {
			t.Fatalf("Lookup(%q) = %v, %v", name, p, ok)
		}
		if p.Success.Status != http.StatusOK {
			t.Errorf("%s: success status %d, want 200", name, p.Success.Status)
		}
	}
	for _, bad := range []string{"", "Meta", "META", "whatsapp", "meta "} {
		if p, ok := Lookup(bad); ok || p != nil {
			t.Errorf("Lookup(%q) = %v, %v; want nothing", bad, p, ok)
		}
	}
}

// TestLookupReturnsIndependentCopies: a caller that edits its profile does not change another's.
func TestLookupReturnsIndependentCopies(t *testing.T) {
	a := mustLookup(t, "meta")
	a.HMAC.Header = "X-Changed"
	a.RouteFields[0] = "changed"
	a.Samples["inbound"].Body[0] = 'X'
	b := mustLookup(t, "meta")
	if b.HMAC.Header != "X-Hub-Signature-256" || b.RouteFields[0] != "phone_number_id" {
		t.Fatalf("second Lookup sees the first caller's edits: %+v", b)
	}
	if b.Samples["inbound"].Body[0] != '{' {
		t.Fatalf("second Lookup sees an edited sample body: %q", b.Samples["inbound"].Body[:10])
	}
}

func TestProviderDefaults(t *testing.T) {
	tests := []struct {
		name       string
		auth       string
		hmac       *HMACDefaults
		jwt        *JWTDefaults
		headerName string
		ordered    bool
	}{
		{name: "meta", auth: AuthHMAC, hmac: &HMACDefaults{Header: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256="}, ordered: true},
		{name: "twilio", auth: AuthTwilio, ordered: true},
		{name: "infobip", auth: AuthBasic, headerName: "AccountKey", ordered: true},
		{name: "gupshup", auth: AuthHeader, headerName: "Authorization", ordered: true},
		{name: "karix", auth: AuthHeader, headerName: "Authorization", ordered: true},
		{name: "netcore", auth: AuthHeader, headerName: "Authorization", ordered: true},
		{name: "webex", auth: AuthHMAC, hmac: &HMACDefaults{Header: "X-Hub-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=", PrefixOptional: true}, ordered: true},
		{name: "vonage", auth: AuthJWT, jwt: &JWTDefaults{Header: "Authorization", Scheme: "Bearer", Algorithms: []string{"HS256"}, PayloadHash: true, MaxAge: 5 * time.Minute}, ordered: true},
		{name: "messagebird", auth: AuthJWT, jwt: &JWTDefaults{Header: "MessageBird-Signature-JWT", Algorithms: []string{"HS256"}, PayloadHash: true, URLHash: true, MaxAge: 5 * time.Minute}, ordered: true},
		{name: "sinch", auth: AuthBasic, ordered: true},
		{name: "standard", auth: AuthStandardWebhooks},
		{name: "generic", auth: ""},
	}
	for _, tc := range tests {
		p := mustLookup(t, tc.name)
		if p.DefaultAuth != tc.auth {
			t.Errorf("%s: DefaultAuth %q, want %q", tc.name, p.DefaultAuth, tc.auth)
		}
		if (p.HMAC == nil) != (tc.hmac == nil) || p.HMAC != nil && *p.HMAC != *tc.hmac {
			t.Errorf("%s: HMAC %+v, want %+v", tc.name, p.HMAC, tc.hmac)
		}
		if (p.JWT == nil) != (tc.jwt == nil) || p.JWT != nil && !jwtEqual(*p.JWT, *tc.jwt) {
			t.Errorf("%s: JWT %+v, want %+v", tc.name, p.JWT, tc.jwt)
		}
		if p.HeaderName != tc.headerName {
			t.Errorf("%s: HeaderName %q, want %q", tc.name, p.HeaderName, tc.headerName)
		}
		if p.Ordered != tc.ordered {
			t.Errorf("%s: Ordered %v, want %v", tc.name, p.Ordered, tc.ordered)
		}
		if tc.name != "twilio" && (len(p.Success.Body) != 0 || p.Success.ContentType != "") {
			t.Errorf("%s: success answer %q (%q), want an empty body", tc.name, p.Success.Body, p.Success.ContentType)
		}
	}
	tw := mustLookup(t, "twilio").Success
	if tw.Status != http.StatusOK || tw.ContentType != "text/xml" || string(tw.Body) != `<?xml version="1.0" encoding="UTF-8"?><Response/>` {
		t.Errorf("twilio success = %d %q %q", tw.Status, tw.ContentType, tw.Body)
	}
}

func jwtEqual(a, b JWTDefaults) bool {
	return a.Header == b.Header && a.Scheme == b.Scheme && slices.Equal(a.Algorithms, b.Algorithms) &&
		a.PayloadHash == b.PayloadHash && a.URLHash == b.URLHash && a.MaxAge == b.MaxAge
}

// TestSamples: every profile offers an inbound sample (and a status sample where the provider has
// reports), and each classifies as what it claims to be, with an id and a sender, so that
// `edgerelay simulate` exercises de-duplication and ordering.
func TestSamples(t *testing.T) {
	for _, name := range Names() {
		p := mustLookup(t, name)
		in, ok := p.Samples["inbound"]
		if !ok || len(in.Body) == 0 || in.ContentType == "" {
			t.Errorf("%s: no inbound sample", name)
			continue
		}
		if name == "standard" || name == "generic" {
			continue // their ids come from headers the sender sets: see TestClassifyFixtures
		}
		for kind, want := range map[string]string{"inbound": KindMessage, "status": KindStatus} {
			s, ok := p.Samples[kind]
			if !ok {
				t.Errorf("%s: no %s sample", name, kind)
				continue
			}
			got := p.Classify(&Request{Method: http.MethodPost, ContentType: s.ContentType, Query: s.Query, Body: s.Body}, Options{})
			if got.Kind != want || got.EventID == "" || got.OrderKey == "" {
				t.Errorf("%s %s sample: %+v, want kind %s with an event id and order key", name, kind, got, want)
			}
		}
	}
}

// TestTwilioGET: Twilio may be configured to call with GET; the parameters are in the query.
func TestTwilioGET(t *testing.T) {
	body, _ := readFixture(t, "twilio/status_delivered.form")
	q, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	got := mustLookup(t, "twilio").Classify(&Request{Method: http.MethodGet, Query: q}, Options{})
	checkResult(t, got, twilioStatus("delivered"))
}

func TestTwilioFormOddities(t *testing.T) {
	p := mustLookup(t, "twilio")
	// A bad escape in one pair does not lose the others.
	got := p.Classify(&Request{ContentType: ctForm, Body: []byte("Body=%zz&MessageSid=SM1&SmsStatus=received&From=%2B49151")}, Options{})
	checkResult(t, got, Result{EventID: "SM1:received", OrderKey: "+49151", Kind: KindMessage, Fields: map[string]string{"From": "+49151"}})
	// No sid, no event.
	got = p.Classify(&Request{ContentType: ctForm, Body: []byte("From=%2B49151&Body=hi")}, Options{})
	checkResult(t, got, Result{Kind: KindUnknown})
	// A status callback without a status keeps the bare sid.
	got = p.Classify(&Request{ContentType: ctForm, Body: []byte("MessageSid=SM2&To=%2B49151")}, Options{})
	checkResult(t, got, Result{EventID: "SM2", OrderKey: "+49151", Kind: KindStatus, Fields: map[string]string{"To": "+49151"}})
}

func TestInfobipBatchItemWithoutID(t *testing.T) {
	body := `{"results":[{"messageId":"a","from":"1","to":"2"},{"from":"3","to":"2"}]}`
	got := mustLookup(t, "infobip").Classify(&Request{Body: []byte(body)}, Options{})
	checkResult(t, got, Result{OrderKey: "1", Kind: KindMessage, Fields: map[string]string{"from": "1", "to": "2"}})
}

func TestGenericAndStandardHeaders(t *testing.T) {
	g := mustLookup(t, "generic")
	h := http.Header{"X-Event-Id": {"e1"}, "X-Sender": {"s1"}}
	// Without header names in the options, generic knows nothing.
	checkResult(t, g.Classify(&Request{Header: h}, Options{}), Result{Kind: KindEvent})
	// Named headers that are absent give no id and no key.
	checkResult(t, g.Classify(&Request{Header: http.Header{}}, Options{EventIDHeader: "X-Event-Id", OrderKeyHeader: "X-Sender"}), Result{Kind: KindEvent})
	// Header lookup is case-insensitive, as HTTP header names are.
	checkResult(t, g.Classify(&Request{Header: h}, Options{EventIDHeader: "x-event-id", OrderKeyHeader: "x-sender"}), Result{EventID: "e1", OrderKey: "s1", Kind: KindEvent})
	if g.OrdersBy(Options{}) || !g.OrdersBy(Options{OrderKeyHeader: "X-Sender"}) {
		t.Errorf("generic OrdersBy: want false without and true with an order key header")
	}
	if !mustLookup(t, "meta").OrdersBy(Options{}) || mustLookup(t, "standard").OrdersBy(Options{}) || !mustLookup(t, "standard").OrdersBy(Options{OrderKeyHeader: "X"}) {
		t.Errorf("OrdersBy: want meta ordered, standard only with an order key header")
	}

	s := mustLookup(t, "standard")
	// A body that is not the Standard Webhooks JSON shape keeps the webhook-id.
	got := s.Classify(&Request{Header: http.Header{"Webhook-Id": {"msg_1"}}, Body: []byte("not json")}, Options{})
	checkResult(t, got, Result{EventID: "msg_1", Kind: KindUnknown})
	got = s.Classify(&Request{Body: []byte(`{"type":"a.b","data":{}}`)}, Options{})
	checkResult(t, got, Result{Kind: KindEvent, Fields: map[string]string{"type": "a.b"}})
	// The standard profile takes an order key from the named header, and only from there.
	got = s.Classify(&Request{Header: http.Header{"Webhook-Id": {"msg_2"}, "X-Tenant": {"t1"}}, Body: []byte(`{"type":"a.b"}`)}, Options{EventIDHeader: "X-Tenant", OrderKeyHeader: "X-Tenant"})
	checkResult(t, got, Result{EventID: "msg_2", OrderKey: "t1", Kind: KindEvent, Fields: map[string]string{"type": "a.b"}})
}

func TestOversizedHeaderIDIsHashed(t *testing.T) {
	long := strings.Repeat("k", 4096)
	got := mustLookup(t, "generic").Classify(&Request{Header: http.Header{"Id": {long}, "Key": {long}}}, Options{EventIDHeader: "Id", OrderKeyHeader: "Key"})
	if !strings.HasPrefix(got.EventID, "sha256:") || got.EventID != got.OrderKey {
		t.Fatalf("got %+v, want both bounded to the same digest", got)
	}
}

// FuzzClassify feeds every profile arbitrary bodies (seeded with every fixture) and checks that
// Classify answers within its contract: no panic, a known kind, bounded ids, documented fields.
func FuzzClassify(f *testing.F) {
	err := fs.WalkDir(fixtures, "testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fixtures.ReadFile(p)
		if err != nil {
			return err
		}
		f.Add(b, strings.HasSuffix(p, ".form"))
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{}]}}]}]}`), false)
	f.Add([]byte(`[{"data":null},{"type":"x"}]`), false)
	f.Add([]byte(`{"results":[null]}`), false)
	f.Add([]byte("MessageSid=%&SmsStatus="), true)
	profiles := make([]*Profile, 0, len(Names()))
	for _, n := range Names() {
		p, _ := Lookup(n)
		profiles = append(profiles, p)
	}
	kinds := []string{KindMessage, KindStatus, KindEvent, KindUnknown}
	f.Fuzz(func(t *testing.T, body []byte, form bool) {
		ct := ctJSON
		if form {
			ct = ctForm
		}
		orig := bytes.Clone(body)
		for _, p := range profiles {
			r := &Request{
				Method:      http.MethodPost,
				Header:      http.Header{"Webhook-Id": {string(body)}},
				Query:       url.Values{"MessageSid": {string(body)}},
				ContentType: ct,
				Body:        body,
			}
			res := p.Classify(r, Options{EventIDHeader: "Webhook-Id", OrderKeyHeader: "Webhook-Id"})
			if !slices.Contains(kinds, res.Kind) {
				t.Fatalf("%s: kind %q", p.Name, res.Kind)
			}
			if len(res.EventID) > MaxEventIDLen || len(res.OrderKey) > MaxEventIDLen {
				t.Fatalf("%s: unbounded ids: %d, %d bytes", p.Name, len(res.EventID), len(res.OrderKey))
			}
			for k := range res.Fields {
				if !slices.Contains(p.RouteFields, k) {
					t.Fatalf("%s: undocumented field %q", p.Name, k)
				}
			}
			if res.Fields != nil && len(res.Fields) == 0 {
				t.Fatalf("%s: empty non-nil Fields", p.Name)
			}
		}
		if !bytes.Equal(body, orig) {
			t.Fatal("Classify modified the body")
		}
	})
}

func BenchmarkClassifyMeta(b *testing.B) {
	body, ct := readFixture(b, "meta/inbound_text.json")
	p := mustLookup(b, "meta")
	r := &Request{Method: http.MethodPost, ContentType: ct, Body: body}
	b.ReportAllocs()
	for b.Loop() {
		if p.Classify(r, Options{}).EventID == "" {
			b.Fatal("no event id")
		}
	}
}

func BenchmarkClassifyTwilioForm(b *testing.B) {
	body, ct := readFixture(b, "twilio/inbound_whatsapp.form")
	p := mustLookup(b, "twilio")
	r := &Request{Method: http.MethodPost, ContentType: ct, Body: body}
	b.ReportAllocs()
	for b.Loop() {
		if p.Classify(r, Options{}).EventID == "" {
			b.Fatal("no event id")
		}
	}
}

func TestTextScalar(t *testing.T) {
	tests := map[string]string{
		`"plain"`:              "plain",
		`"J\u00fcrgen"`:        "Jürgen",
		`"a\"b"`:               `a"b`,
		"\"\xff\"":             "\ufffd", // invalid UTF-8 is replaced as encoding/json does
		`31612345678`:          "31612345678",
		`true`:                 "true",
		`null`:                 "",
		`{"a":"b"}`:            "",
		`["x"]`:                "",
		` "spaced" `:           "spaced",
		`"\ud83d\ude00 smile"`: "😀 smile",
	}
	for in, want := range tests {
		var got text
		if err := got.UnmarshalJSON([]byte(in)); err != nil || string(got) != want {
			t.Errorf("text(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Malformed literals fail rather than panic when called directly.
	for _, in := range []string{`"`, `"abc`, `"\`} {
		var got text
		if err := got.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("text(%s) = %q, want an error", in, got)
		}
	}
}
