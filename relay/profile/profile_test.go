package profile

import (
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
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
