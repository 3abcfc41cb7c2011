package profile

import (
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fixtureCase is one published sample payload and what its profile must read from it.
type fixtureCase struct {
	provider string
	file     string // under testdata/
	header   http.Header
	query    url.Values
	opts     Options
	want     Result
}

func fixtureCases() []fixtureCase {
	metaFields := map[string]string{
		"phone_number_id":      "106540352242922",
		"display_phone_number": "15550783881",
		"waba_id":              "102290129340398",
	}
	const metaStatusID = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
	return []fixtureCase{
		{provider: "meta", file: "meta/inbound_text.json", want: Result{
			EventID:  "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
			OrderKey: "16505551234", Fields: metaFields, Kind: KindMessage,
		}},
		{provider: "meta", file: "meta/status_sent.json", want: Result{
			EventID: metaStatusID + ":sent", OrderKey: "16505551234", Fields: metaFields, Kind: KindStatus,
		}},
		{provider: "meta", file: "meta/status_delivered.json", want: Result{
			EventID: metaStatusID + ":delivered", OrderKey: "16505551234", Fields: metaFields, Kind: KindStatus,
		}},
		{provider: "meta", file: "meta/status_read.json", want: Result{
			EventID: metaStatusID + ":read", OrderKey: "16505551234", Fields: metaFields, Kind: KindStatus,
		}},
		{provider: "meta", file: "meta/batch_two_messages.json", want: Result{
			EventID: "wamid.AAA1,wamid.AAA2", OrderKey: "16505551234", Fields: metaFields, Kind: KindMessage,
		}},
		{provider: "meta", file: "meta/batch_two_changes.json", want: Result{
			EventID: "wamid.BBB1,wamid.BBB0:read", OrderKey: "16505551234", Fields: metaFields, Kind: KindMessage,
		}},
		{provider: "meta", file: "meta/bsuid_message.json", want: Result{
			EventID: "wamid.CCC1", OrderKey: "US.13491208655302741918", Fields: metaFields, Kind: KindMessage,
		}},
		{provider: "meta", file: "meta/bsuid_status.json", want: Result{
			EventID: "wamid.CCC2:delivered", OrderKey: "US.13491208655302741918", Fields: metaFields, Kind: KindStatus,
		}},
		{provider: "meta", file: "meta/unicode_escaped.json", want: Result{
			EventID:  "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDNBN0Y=",
			OrderKey: "4915112345678", Fields: metaFields, Kind: KindMessage,
		}},
		{provider: "meta", file: "meta/template_status_update.json", want: Result{
			Fields: map[string]string{"waba_id": "102290129340398"}, Kind: KindEvent,
		}},

		// Twilio: form parameters; Event Streams JSON.
		{provider: "twilio", file: "twilio/inbound_whatsapp.form", want: Result{
			EventID: "SM1f0e8ae6ade43cb3c0ce4525424e404f:received", OrderKey: "whatsapp:+16505551234", Kind: KindMessage,
			Fields: map[string]string{"To": "whatsapp:+14155238886", "From": "whatsapp:+16505551234", "AccountSid": "ACae6e420f425248d6a26948c17a9e2acf"},
		}},
		{provider: "twilio", file: "twilio/inbound_sms.form", want: Result{
			EventID: "SMb711289e438f577f230f5837e9c74a08:received", OrderKey: "+31612345678", Kind: KindMessage,
			Fields: map[string]string{"To": "+3197014204768", "From": "+31612345678", "AccountSid": "ACf54dd7a47a8011d65b54d472a7190549"},
		}},
		{provider: "twilio", file: "twilio/status_sent.form", want: twilioStatus("sent")},
		{provider: "twilio", file: "twilio/status_delivered.form", want: twilioStatus("delivered")},
		{provider: "twilio", file: "twilio/status_read.form", want: twilioStatus("read")},
		{provider: "twilio", file: "twilio/eventstreams_delivered.json", want: Result{
			EventID: "SM0000000000000000000000000000001:DELIVERED", OrderKey: "+11234567890", Kind: KindStatus,
			Fields: map[string]string{"To": "+11234567890", "From": "+12345678901", "AccountSid": "AC0000000000000000000000000000001"},
		}},
		{provider: "twilio", file: "twilio/eventstreams_inbound.json", want: Result{
			EventID: "SM0000000000000000000000000000002:received", OrderKey: "+11234567890", Kind: KindMessage,
			Fields: map[string]string{"To": "+12345678901", "From": "+11234567890", "AccountSid": "AC0000000000000000000000000000001"},
		}},

		// Infobip: results[]; reports are keyed by the end user they went to.
		{provider: "infobip", file: "infobip/inbound_text.json", want: Result{
			EventID: "ABEGOFl3VCQoAhBalbc6rTQT6mgS29EmGZ7a", OrderKey: "385919998888", Kind: KindMessage,
			Fields: map[string]string{"to": "447860099299", "from": "385919998888"},
		}},
		{provider: "infobip", file: "infobip/inbound_two_results.json", want: Result{
			EventID:  "ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPQ,ABEGOFl3VCQoAhAqnlmSd2FKPOaraEaS0rPR",
			OrderKey: "385919998888", Kind: KindMessage,
			Fields: map[string]string{"to": "447860099299", "from": "385919998888"},
		}},
		{provider: "infobip", file: "infobip/report_delivered.json", want: Result{
			EventID: "fb469d73-d362-463f-b30f-1e959b53badc:DELIVERED_TO_HANDSET", OrderKey: "41793026731", Kind: KindStatus,
			Fields: map[string]string{"to": "41793026731"},
		}},
		{provider: "infobip", file: "infobip/report_two_results.json", want: Result{
			EventID:  "45db39c3-7822-4e72-a3ec-c87442c0ffz9:DELIVERED_TO_HANDSET,12db39c3-7822-4e72-a3ec-c87442c0ffc5:PENDING_ACCEPTED",
			OrderKey: "41793026727", Kind: KindStatus,
			Fields: map[string]string{"to": "41793026727"},
		}},
		{provider: "infobip", file: "infobip/seen_report.json", want: Result{
			EventID: "fb469d73-d362-463f-b30f-1e959b53badc:SEEN", OrderKey: "41793026731", Kind: KindStatus,
			Fields: map[string]string{"to": "41793026731", "from": "447860099299"},
		}},

		// Gupshup: v2 and the Meta-format v3.
		{provider: "gupshup", file: "gupshup/inbound_text_v2.json", want: Result{
			EventID: "ABEGkYaYVSEEAhAL3SLAWwHKeKrt6s3FKB0c", OrderKey: "918x98xx21x4", Kind: KindMessage,
			Fields: map[string]string{"app": "DemoApp", "source": "918x98xx21x4"},
		}},
		{provider: "gupshup", file: "gupshup/event_sent_v2.json", want: gupshupEvent("sent")},
		{provider: "gupshup", file: "gupshup/event_delivered_v2.json", want: gupshupEvent("delivered")},
		{provider: "gupshup", file: "gupshup/event_read_v2.json", want: gupshupEvent("read")},
		{provider: "gupshup", file: "gupshup/kore_inbound_text.json", want: Result{
			OrderKey: "919812345678", Kind: KindMessage, Fields: map[string]string{"waNumber": "919900000001"},
		}},
		{provider: "gupshup", file: "gupshup/kore_inbound_text.form", want: Result{
			EventID: "4711-abc-0815", OrderKey: "919812345678", Kind: KindMessage, Fields: map[string]string{"waNumber": "919900000001"},
		}},
		{provider: "gupshup", file: "gupshup/user_event_v2.json", want: Result{
			OrderKey: "918x98xx21x4", Kind: KindEvent, Fields: map[string]string{"app": "DemoApp"},
		}},
		{provider: "gupshup", file: "gupshup/event_enqueued_v3.json", want: Result{
			EventID:  "wamid.HBgMOTE5MTYzODA1ODczFQIAERgSNkZCMThGMEEwQzJDOUFGQjFBAA==:enqueued",
			OrderKey: "9191****873", Kind: KindStatus,
			Fields: map[string]string{"app": "82ed52f4-30c0-4f12-81b4-e7ad07bd41de"},
		}},

		{provider: "karix", file: "karix/inbound_event_content.json", want: Result{
			EventID: "ABEGkZlgQyWAAgo-sM3mYbGs6l0y", OrderKey: "919876543210", Kind: KindMessage,
			Fields: map[string]string{"channel": "WABA", "from": "919876543210", "to": "918047190000"},
		}},
		{provider: "karix", file: "karix/inbound_rcm_message.json", want: Result{
			EventID: "ABEGkZmWEHVtAgo-sLFB7EbPeLOp", OrderKey: "919876543210", Kind: KindMessage,
			Fields: map[string]string{"channel": "WABA", "from": "919876543210", "to": "918047190000"},
		}},
		{provider: "karix", file: "karix/delivery_delivered.json", want: Result{
			EventID: "gBEGkZmWEHVtAgkU5pXm6jLMQsE:delivered", OrderKey: "919876543210", Kind: KindStatus,
			Fields: map[string]string{"channel": "WABA", "from": "918047190000", "to": "919876543210"},
		}},

		{provider: "netcore", file: "netcore/incoming_text.json", want: Result{
			EventID: "ABEGkZIgEEFXAhAvNPBJnwU5Y6xR", OrderKey: "919201053157", Kind: KindMessage,
			Fields: map[string]string{"from": "919201053157", "to": "912249757556"},
		}},
		{provider: "netcore", file: "netcore/delivery_status.json", want: Result{
			EventID:  "8d0e3b4a-6a0e-4d45-9d2a-7a4e0f7b2c11:delivered,1f2a9c77-0b3e-4a8e-a1f2-5b6c7d8e9f00:read",
			OrderKey: "919201053157", Kind: KindStatus,
			Fields: map[string]string{"recipient": "919201053157"},
		}},

		{provider: "webex", file: "webex/inbound_text.json", want: Result{
			EventID: "ABGGFEdwCQNvAgo6AnMJ1sBcJpXD", OrderKey: "447700900123", Kind: KindMessage,
			Fields: map[string]string{"appId": "WA21046398"},
		}},
		{provider: "webex", file: "webex/mo_text.json", want: Result{
			EventID: "5f1b2c3d-8e9f-4a0b-9c1d-2e3f4a5b6c7d", OrderKey: "919876543210", Kind: KindMessage,
			Fields: map[string]string{"appId": "a_163884592177364000"},
		}},
		{provider: "webex", file: "webex/postback.json", want: Result{
			EventID: "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d", OrderKey: "919876543210", Kind: KindMessage,
			Fields: map[string]string{"appId": "a_163884592177364000"},
		}},
		{provider: "webex", file: "webex/delivery_receipt.json", want: Result{
			EventID: "7f3af32c-8d6a-4173-b1c8-4805135ada71:Delivered", OrderKey: "447700900123", Kind: KindStatus,
		}},

		{provider: "vonage", file: "vonage/inbound_text.json", want: Result{
			EventID: "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", OrderKey: "447700900001", Kind: KindMessage,
			Fields: map[string]string{"to": "447700900000", "from": "447700900001", "channel": "whatsapp"},
		}},
		{provider: "vonage", file: "vonage/status_delivered.json", want: Result{
			EventID: "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab:delivered", OrderKey: "447700900000", Kind: KindStatus,
			Fields: map[string]string{"to": "447700900000", "from": "447700900001", "channel": "whatsapp"},
		}},

		{provider: "messagebird", file: "messagebird/message_created.json", want: Result{
			EventID: "93a1f7ba935c4ee298cb5ef952052ea7:received", OrderKey: "73afe0acee2127fd3e7d9a7dc622826e", Kind: KindMessage,
			Fields: map[string]string{"channelId": "2ceefea7c1b8c79673215c42c1a6b916"},
		}},
		{provider: "vonage", file: "vonage/status_read_bsuid.json", want: Result{
			EventID: "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab:read", OrderKey: "US.13491208655302741918", Kind: KindStatus,
			Fields: map[string]string{"from": "447700900001", "channel": "whatsapp"},
		}},

		{provider: "messagebird", file: "messagebird/message_updated.json", want: Result{
			EventID: "e0f1a2b3c4d54e6f8a9b0c1d2e3f4a5b:delivered", OrderKey: "31612345678", Kind: KindStatus,
			Fields: map[string]string{"channelId": "619747f69cf940a98fb443140ce9aed2", "platform": "whatsapp"},
		}},

		{provider: "sinch", file: "sinch/message_inbound.json", want: Result{
			EventID: "01EKJ0KAXGK9VM0E0GWZ0XSWWN", OrderKey: "01EKA07N79THJ20WSN6AS30TMW", Kind: KindMessage,
			Fields: map[string]string{"app_id": "01EB37HMH1M6SV18ASNS3G135H", "project_id": "c36f3d3d-1513-4edd-ae42-11995557ff61", "channel": "WHATSAPP"},
		}},
		{provider: "sinch", file: "sinch/delivery_report.json", want: Result{
			EventID: "01FVAWD1JP5PPB3KEZCBKGN0ES:DELIVERED", OrderKey: "01FNV9VK83AMY60JPNHZ7YE9X6", Kind: KindStatus,
			Fields: map[string]string{"app_id": "01E3S8B6YCMRNR0GGM94H80ACX", "project_id": "c36f3d3d-1513-4edd-ae42-11995557ff61", "channel": "SINCH_PUSH"},
		}},
		{provider: "sinch", file: "sinch/delivery_report_dispatch.json", want: Result{
			EventID: "01H2T2H437XD18TAFQJYBKJM4C:DELIVERED", OrderKey: "916284458847", Kind: KindStatus,
			Fields: map[string]string{"app_id": "01H0MFFJFX0YAWYA5XG4D3MRTA", "project_id": "517ccc41-7c1a-4dfe-af03-dfe804116121", "channel": "RCS"},
		}},

		{provider: "standard", file: "standard/contact_created.json",
			header: http.Header{"Webhook-Id": {"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"}},
			want:   Result{EventID: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", Kind: KindEvent, Fields: map[string]string{"type": "contact.created"}},
		},
		{provider: "generic", file: "generic/event.json",
			header: http.Header{"X-Event-Id": {" evt_3f7a9c "}, "X-Customer": {"cust_0042"}},
			opts:   Options{EventIDHeader: "X-Event-Id", OrderKeyHeader: "X-Customer"},
			want:   Result{EventID: "evt_3f7a9c", OrderKey: "cust_0042", Kind: KindEvent},
		},
	}
}

func twilioStatus(status string) Result {
	return Result{
		EventID: "SM3b8f4b2e5bd14d7f8e6f1c8f0f6a1c11:" + status, OrderKey: "whatsapp:+16505551234", Kind: KindStatus,
		Fields: map[string]string{"To": "whatsapp:+16505551234", "From": "whatsapp:+14155238886", "AccountSid": "ACae6e420f425248d6a26948c17a9e2acf"},
	}
}

func gupshupEvent(typ string) Result {
	return Result{
		EventID: "gBEGkYaYVSEEAgnZxQ3JmKK6Wvg:" + typ, OrderKey: "91XX985XX10X", Kind: KindStatus,
		Fields: map[string]string{"app": "DemoAPI"},
	}
}

// readFixture returns a fixture's bytes and the content type its provider sends it with.
func readFixture(t testing.TB, file string) ([]byte, string) {
	t.Helper()
	b, err := fixtures.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	ct := ctJSON
	if strings.HasSuffix(file, ".form") {
		ct = ctForm
	}
	return b, ct
}

func mustLookup(t testing.TB, name string) *Profile {
	t.Helper()
	p, ok := Lookup(name)
	if !ok {
		t.Fatalf("Lookup(%q) failed", name)
	}
	return p
}

func TestClassifyFixtures(t *testing.T) {
	for _, tc := range fixtureCases() {
		t.Run(tc.file, func(t *testing.T) {
			body, ct := readFixture(t, tc.file)
			p := mustLookup(t, tc.provider)
			got := p.Classify(&Request{Method: http.MethodPost, Header: tc.header, Query: tc.query, ContentType: ct, Body: body}, tc.opts)
			checkResult(t, got, tc.want)
			for k := range got.Fields {
				if !slices.Contains(p.RouteFields, k) {
					t.Errorf("field %q is not among the documented RouteFields %v", k, p.RouteFields)
				}
			}
		})
	}
}

func checkResult(t *testing.T, got, want Result) {
	t.Helper()
	if got.EventID != want.EventID {
		t.Errorf("EventID = %q, want %q", got.EventID, want.EventID)
	}
	if got.OrderKey != want.OrderKey {
		t.Errorf("OrderKey = %q, want %q", got.OrderKey, want.OrderKey)
	}
	if !maps.Equal(got.Fields, want.Fields) {
		t.Errorf("Fields = %v, want %v", got.Fields, want.Fields)
	}
	if got.Kind != want.Kind {
		t.Errorf("Kind = %q, want %q", got.Kind, want.Kind)
	}
}

// TestEveryFixtureAsserted keeps the table and testdata/ in step: a fixture added without its
// expected result fails here.
func TestEveryFixtureAsserted(t *testing.T) {
	asserted := map[string]bool{}
	for _, tc := range fixtureCases() {
		asserted[tc.file] = true
	}
	err := fs.WalkDir(fixtures, "testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Base(p) == "README.md" {
			return err
		}
		if rel := strings.TrimPrefix(p, "testdata/"); !asserted[rel] {
			t.Errorf("fixture %s has no case in fixtureCases", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMetaStatusesOfOneMessageDiffer(t *testing.T) {
	p := mustLookup(t, "meta")
	seen := map[string]string{}
	for _, s := range []string{"sent", "delivered", "read"} {
		body, ct := readFixture(t, "meta/status_"+s+".json")
		id := p.Classify(&Request{ContentType: ct, Body: body}, Options{}).EventID
		if id == "" {
			t.Fatalf("status %s: empty event id", s)
		}
		if prev, dup := seen[id]; dup {
			t.Fatalf("statuses %s and %s share event id %q", prev, s, id)
		}
		seen[id] = s
	}
}

// TestMetaStatusWithoutStatusWord: an id alone cannot tell sent from read, so such a status is
// not de-duplicated rather than wrongly merged with its siblings.
func TestMetaStatusWithoutStatusWord(t *testing.T) {
	p := mustLookup(t, "meta")
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"statuses":[{"id":"wamid.X","recipient_id":"49"}]}}]}]}`
	got := p.Classify(&Request{Body: []byte(body)}, Options{})
	checkResult(t, got, Result{OrderKey: "49", Fields: map[string]string{"waba_id": "1"}, Kind: KindStatus})
}

func TestMetaBatchItemWithoutID(t *testing.T) {
	p := mustLookup(t, "meta")
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messages":[{"id":"wamid.A","from":"49"},{"from":"49"}]}}]}]}`
	got := p.Classify(&Request{Body: []byte(body)}, Options{})
	if got.EventID != "" {
		t.Fatalf("EventID = %q, want none when a batch item has no id", got.EventID)
	}
	if got.OrderKey != "49" {
		t.Fatalf("OrderKey = %q, want 49", got.OrderKey)
	}
}

func TestMetaNumbersWhereStringsExpected(t *testing.T) {
	p := mustLookup(t, "meta")
	// Some relays of Meta's format leave numbers unquoted; they still route.
	body := `{"object":"whatsapp_business_account","entry":[{"id":102290129340398,"changes":[{"value":{"metadata":{"display_phone_number":15550783881,"phone_number_id":"106540352242922"},"messages":[{"from":16505551234,"id":"wamid.N"}]}}]}]}`
	got := p.Classify(&Request{Body: []byte(body)}, Options{})
	checkResult(t, got, Result{
		EventID: "wamid.N", OrderKey: "16505551234", Kind: KindMessage,
		Fields: map[string]string{"phone_number_id": "106540352242922", "display_phone_number": "15550783881", "waba_id": "102290129340398"},
	})
}

func TestLongBatchIDIsHashed(t *testing.T) {
	p := mustLookup(t, "meta")
	var msgs []string
	for i := range 100 {
		msgs = append(msgs, `{"from":"49","id":"wamid.`+strings.Repeat("x", 20)+string(rune('a'+i%26))+`"}`)
	}
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messages":[` + strings.Join(msgs, ",") + `]}}]}]}`
	r := &Request{Body: []byte(body)}
	a, b := p.Classify(r, Options{}).EventID, p.Classify(r, Options{}).EventID
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Fatalf("EventID = %q, want a sha256: digest", a)
	}
	if a != b {
		t.Fatalf("hashed event id is not stable: %q vs %q", a, b)
	}
}

// TestUnreadableBodies: whatever arrives, Classify answers and says unknown.
func TestUnreadableBodies(t *testing.T) {
	bodies := map[string][]byte{
		"empty":        nil,
		"garbage":      []byte("\x00\xff\xfe garbage"),
		"not json":     []byte("hello world"),
		"json string":  []byte(`"whatsapp_business_account"`),
		"json array":   []byte(`[1,2,3]`),
		"truncated":    []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[`),
		"wrong object": []byte(`{"object":"page","entry":[]}`),
		"deep arrays":  []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000)),
		"deep objects": []byte(strings.Repeat(`{"a":`, 50000) + "1" + strings.Repeat("}", 50000)),
		"xml":          []byte(`<?xml version="1.0"?><a/>`),
	}
	for _, name := range Names() {
		if name == "generic" || name == "standard" {
			continue // they read headers, not the body: see their own tests
		}
		p := mustLookup(t, name)
		for what, body := range bodies {
			for _, ct := range []string{ctJSON, ctForm, ""} {
				got := p.Classify(&Request{Method: http.MethodPost, ContentType: ct, Body: body}, Options{})
				if got.Kind != KindUnknown || got.EventID != "" || got.OrderKey != "" {
					t.Errorf("%s, %s, %q: got %+v, want kind unknown with no ids", name, what, ct, got)
				}
			}
		}
	}
}

func TestNilAndZero(t *testing.T) {
	var zero Profile
	if got := zero.Classify(&Request{Body: []byte("{}")}, Options{}); got.Kind != KindUnknown {
		t.Fatalf("zero profile: %+v", got)
	}
	var nilp *Profile
	if got := nilp.Classify(&Request{}, Options{}); got.Kind != KindUnknown {
		t.Fatalf("nil profile: %+v", got)
	}
	for _, name := range Names() {
		if got := mustLookup(t, name).Classify(nil, Options{}); got.Kind != KindUnknown {
			t.Fatalf("%s with nil request: %+v", name, got)
		}
	}
}

func TestMetaTwoEntries(t *testing.T) {
	body := `{"object":"whatsapp_business_account","entry":[
	 {"id":"111","changes":[{"field":"messages","value":{"metadata":{"display_phone_number":"15550001111","phone_number_id":"1001"},"statuses":[{"id":"wamid.S1","status":"sent","recipient_id":"4915100000001"}]}}]},
	 {"id":"222","changes":[{"field":"messages","value":{"metadata":{"display_phone_number":"15550002222","phone_number_id":"2002"},"messages":[{"id":"wamid.M2","from":"4915100000002"}]}}]}]}`
	got := mustLookup(t, "meta").Classify(&Request{Body: []byte(body)}, Options{})
	checkResult(t, got, Result{
		EventID: "wamid.S1:sent,wamid.M2", OrderKey: "4915100000001", Kind: KindStatus,
		Fields: map[string]string{"phone_number_id": "1001", "display_phone_number": "15550001111", "waba_id": "111"},
	})
}

// TestClassifyConcurrently: one Profile serves every request of a channel at once; run with -race.
func TestClassifyConcurrently(t *testing.T) {
	p := mustLookup(t, "meta")
	body, ct := readFixture(t, "meta/batch_two_messages.json")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if got := p.Classify(&Request{ContentType: ct, Body: body}, Options{}); got.EventID != "wamid.AAA1,wamid.AAA2" {
					errs <- got.EventID
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent Classify: event id %q", e)
	}
}
