package profile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// extractMetaReference is extractMeta as it was written on encoding/json: the reference the
// single-pass scanner must agree with on every input.
func extractMetaReference(r *Request, _ Options) Result {
	var p metaPayload
	if !decodeJSONReference(r.Body, &p) || p.Object != metaObject {
		return Result{Kind: KindUnknown}
	}
	return p.result()
}

// decodeJSONReference is decodeJSON: json.Unmarshal, tolerating type mismatches.
func decodeJSONReference(body []byte, v any) bool {
	err := json.Unmarshal(body, v)
	if err == nil {
		return true
	}
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

// extractGupshupReference is extractGupshup as it was written on encoding/json.
func extractGupshupReference(r *Request, _ Options) Result {
	var p gupshupPayload
	if decodeJSONReference(r.Body, &p) {
		if res := p.classify(); res.Kind != KindUnknown {
			return res
		}
	}
	return extractKoreGupshup(r)
}

// metaSeeds returns every fixture under testdata plus hand-written bodies aimed at the corners of
// encoding/json's behaviour: key folding, repeated keys, null, type mismatches, slice reuse,
// escapes, invalid UTF-8 and malformed documents.
func metaSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	err := fs.WalkDir(fixtures, "testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fixtures.ReadFile(p)
		if err != nil {
			return err
		}
		seeds = append(seeds, b)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	const o = `"object":"whatsapp_business_account"`
	for _, s := range []string{
		`{` + o + `,"entry":[{"id":"w","changes":[{"field":"messages","value":{"metadata":{"display_phone_number":"1","phone_number_id":"2"},"messages":[{"id":"m1","from":"f1","from_user_id":"u1"},{"id":"m2"}],"statuses":[{"id":"s1","status":"read","recipient_id":"r1","recipient_user_id":"ru1"}]}}]}]}`,
		// Case-insensitive keys, including the Unicode folds of s (ſ) and k (K).
		`{"OBJECT":"whatsapp_business_account","Entry":[{"ID":"w","cHaNgEs":[{"VALUE":{"Metadata":{"Display_Phone_Number":"1"},"MESSAGES":[{"Id":"m","FROM":"f"}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"meſſages":[{"id":"m","from":"f"}],"ſtatuses":[{"id":"s","ſtatus":"sent"}]}}]}]}`,
		`{"ob\u006aect":"whatsapp_business_account","\u0065ntry":[{"\u0069d":"w","changes":[{"value":{"messages":[{"\u0069d":"m"}]}}]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":"m","ıd":"x","İd":"y","\u212a":"k"}]}}]}]}`,
		// Repeated keys: scalars replaced, null keeps, arrays reuse the slice (stale elements
		// reappear within its capacity), objects merge.
		`{` + o + `,"object":"page"}`,
		`{"object":"page",` + o + `}`,
		`{` + o + `,"entry":[{"id":"a","changes":[{"value":{"messages":[{"id":"1","from":"x"},{"id":"2"},{"id":"3"}]}}]}],"entry":[{"changes":[{"value":{"messages":[{"id":"4"}]}}]}]}`,
		`{` + o + `,"entry":[{"changes":[{"value":{"messages":[{"id":"1"},{"id":"2"},{"id":"3"}],"messages":[{"from":"a"}],"messages":[null,null]}}]}]}`,
		`{` + o + `,"entry":[{"changes":[{"value":{"messages":[{"id":"1"},{"id":"2"}],"messages":[],"messages":[null,null]}}]}]}`,
		`{` + o + `,"entry":[{"changes":[{"value":{"messages":[{"id":"1"},{"id":"2"}],"messages":null,"messages":[null]}}]}]}`,
		`{` + o + `,"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"1"},"metadata":{"display_phone_number":"2"},"metadata":null,"metadata":[1]}}]}]}`,
		`{` + o + `,"entry":[{"id":"a","id":null,"id":{},"id":[],"changes":[{"value":{"statuses":[{"id":"s","status":"sent","status":true}]}}]}]}`,
		// Type mismatches are skipped; what could be read still counts.
		`{` + o + `,"entry":{"id":"x"}}`,
		`{` + o + `,"entry":"x","entry2":[]}`,
		`{` + o + `,"entry":[1,"x",true,null,[],{"id":"w","changes":[{"value":[]},{"value":"v"},{"value":{"messages":{"id":"m"},"statuses":[{"id":"s","status":"read"}]}}]}]}`,
		`{` + o + `,"entry":[{"changes":[{"value":{"messages":[{"id":12.5e-3,"from":-0}],"statuses":false}}]}]}`,
		`{"object":null}`,
		`{"object":["whatsapp_business_account"]}`,
		`{"object":"whatsapp_business_account "}`,
		`["whatsapp_business_account"]`,
		`null`,
		// Escapes and invalid UTF-8.
		`{` + o + `,"entry":[{"changes":[{"value":{"messages":[{"id":"a\/b\"c\\d\b\f\n\r\t\u00e4\ud83d\ude00\ud83d\u0041\udc00x\ud800\ud800","from":"\u0000"}]}}]}]}`,
		"{" + o + ",\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"id\":\"\xff\xfe\xed\xa0\x80ok\",\"from\":\"\xe2\x82\"}]}}]}]}",
		"{" + o + ",\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"id\":\"\xef\xbf\xbd\\u00e4\xc3\",\"\xff\":\"x\"}]}}]}]}",
		// Malformed documents.
		``, ` `, `{`, `}`, `{}x`, `{} {}`, `{"object":"whatsapp_business_account",}`, `{,}`, `[1,]`, `[,1]`,
		`{"object" "x"}`, `{"object":}`, `{object:1}`, `{'object':1}`, `{"a":tru}`, `{"a":nul}`, `{"a":True}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`, `{"a":0x1}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", `{"a":"abc`, `{"a":"\`, "\xef\xbb\xbf{}",
		"{\"a\":1}\x00", "{\"a\":1}\n\t\r ", `{"a":[1 2]}`, `{"a":{"b":1 "c":2}}`, `{"a":1}}`, `{"a":[}`,
		`{"a":1e5,"b":-0.0E-0,"c":[true,false,null]}`,
		// Gupshup: v3 with its app id, v2 with case-folded, repeated, null and mistyped members.
		`{"gs_app_id":"g","GS_APP_ID":"h",` + o + `,"entry":[{"changes":[{"value":{"statuses":[{"id":"s","status":"sent"}]}}]}]}`,
		`{"app":"a","type":"message","payload":{"id":"p","source":"9","sender":{"phone":"8"},"sender":{"name":"n"}}}`,
		`{"APP":"a","Type":"message-event","payload":{"ID":"p","TYPE":"read","deſtination":"7","type":null},"payload":{"source":"6"}}`,
		`{"app":"a","type":"user-event","payload":{"phone":"5","sender":"x"},"payload":null,"payload":[1]}`,
		`{"app":"a","type":"message","payload":{"id":1,"source":true,"sender":{"phone":-2.5}}}`,
		`{"app":"a","type":"message","payload":"x","app":null}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// checkSameAsReference fails the test if extractMeta or extractGupshup disagrees with its
// encoding/json reference on body.
func checkSameAsReference(t *testing.T, body []byte) {
	t.Helper()
	orig := bytes.Clone(body)
	r := &Request{Method: http.MethodPost, ContentType: ctJSON, Body: body}
	for _, pair := range []struct {
		name      string
		extract   func(*Request, Options) Result
		reference func(*Request, Options) Result
	}{
		{nameMeta, extractMeta, extractMetaReference},
		{nameGupshup, extractGupshup, extractGupshupReference},
	} {
		got := pair.extract(r, Options{})
		want := pair.reference(r, Options{})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s, body %q:\n got %+v\nwant %+v", pair.name, body, got, want)
		}
	}
	if !bytes.Equal(body, orig) {
		t.Fatalf("body %q modified", orig)
	}
}

// FuzzMetaDifferential checks that the single-pass readers of Meta's format (the meta profile and
// Gupshup, whose v3 callbacks are Meta's) give exactly the result of the encoding/json reference
// for any body.
func FuzzMetaDifferential(f *testing.F) {
	for _, s := range metaSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkSameAsReference)
}

// TestMetaDifferential runs the differential check on every seed and on mechanical mutations of
// each (every truncation, every single-byte deletion, and byte substitutions at every structural
// byte and word start), so that plain test runs cover what the fuzz target covers first.
func TestMetaDifferential(t *testing.T) {
	subst := []byte{'"', '\\', '{', '}', '[', ']', ',', ':', ' ', '0', 'n', 'S', 0x00, 0xff}
	for _, s := range metaSeeds(t) {
		checkSameAsReference(t, s)
		if len(s) > 1200 {
			continue
		}
		for i := range s {
			checkSameAsReference(t, s[:i])
			checkSameAsReference(t, append(bytes.Clone(s[:i]), s[i+1:]...))
			if isAlnum(s[i]) && (i == 0 || isAlnum(s[i-1])) {
				continue // inside a word: substituting its first byte is enough
			}
			for _, c := range subst {
				m := bytes.Clone(s)
				m[i] = c
				checkSameAsReference(t, m)
			}
		}
	}
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// TestMetaNestingDepth: encoding/json accepts 10000 nested arrays and objects and rejects one
// more; so must the scanner, in skipped values as in read ones.
func TestMetaNestingDepth(t *testing.T) {
	p := mustLookup(t, "meta")
	wrap := func(open, close string, n int) []byte {
		// The payload object is one level; n more inside a skipped member.
		return []byte(`{"object":"whatsapp_business_account","x":` + strings.Repeat(open, n) + "1" +
			strings.Repeat(close, n) + `,"entry":[{"changes":[{"value":{"messages":[{"id":"m"}]}}]}]}`)
	}
	for _, tc := range []struct {
		open, close string
		n           int
		want        string
	}{
		{"[", "]", maxJSONDepth - 1, KindMessage},
		{"[", "]", maxJSONDepth, KindUnknown},
		{`{"a":`, "}", maxJSONDepth - 1, KindMessage},
		{`{"a":`, "}", maxJSONDepth, KindUnknown},
	} {
		body := wrap(tc.open, tc.close, tc.n)
		checkSameAsReference(t, body)
		if got := p.Classify(&Request{Body: body}, Options{}); got.Kind != tc.want {
			t.Errorf("%d levels of %s: kind %q, want %q", tc.n+1, tc.open, got.Kind, tc.want)
		}
	}
	// Depth counts along the path read, too: a message list 10000 levels down is refused.
	deep := []byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":` +
		strings.Repeat("[", maxJSONDepth-6) + strings.Repeat("]", maxJSONDepth-6) + `}]}}]}]}`)
	checkSameAsReference(t, deep)
}

// TestMetaScannerKeyFolding pins the case-insensitive key matching the scanner shares with
// encoding/json.
func TestMetaScannerKeyFolding(t *testing.T) {
	for key, want := range map[string]bool{
		"status":    true,
		"STATUS":    true,
		"StAtUs":    true,
		"ſtatus":    true, // U+017F folds to S
		"ſtatuſ":    true,
		"statu":     false,
		"statuss":   false,
		"ıd":        false, // dotless i does not fold to I
		"stat\xffs": false,
	} {
		name := "status"
		if strings.HasSuffix(key, "d") {
			name = "id"
		}
		if got := keyIs([]byte(key), name); got != want {
			t.Errorf("keyIs(%q, %q) = %v, want %v", key, name, got, want)
		}
	}
	if !keyIs([]byte("\u212a"), "k") {
		t.Error("Kelvin sign does not match k")
	}
}

// BenchmarkMetaDecode compares Classify on the Meta samples (and a Gupshup one) read by the
// scanner and by the encoding/json reference.
func BenchmarkMetaDecode(b *testing.B) {
	for _, sample := range []struct {
		profile, file      string
		compact            bool // as Meta sends it, without the fixture's indentation
		scanner, reference func(*Request, Options) Result
	}{
		{nameMeta, "meta/inbound_text.json", false, extractMeta, extractMetaReference},
		{nameMeta, "meta/inbound_text.json", true, extractMeta, extractMetaReference},
		{nameMeta, "meta/status_delivered.json", false, extractMeta, extractMetaReference},
		{nameMeta, "meta/status_delivered.json", true, extractMeta, extractMetaReference},
		{nameGupshup, "gupshup/inbound_text_v2.json", false, extractGupshup, extractGupshupReference},
		{nameGupshup, "gupshup/event_enqueued_v3.json", false, extractGupshup, extractGupshupReference},
	} {
		body, ct := readFixture(b, sample.file)
		name := strings.TrimSuffix(sample.file, ".json")
		if sample.compact {
			var c bytes.Buffer
			if err := json.Compact(&c, body); err != nil {
				b.Fatal(err)
			}
			body, name = c.Bytes(), name+"_compact"
		}
		for _, impl := range []struct {
			name    string
			extract func(*Request, Options) Result
		}{{"reference", sample.reference}, {"scanner", sample.scanner}} {
			p := mustLookup(b, sample.profile)
			p.extract = impl.extract
			r := &Request{Method: http.MethodPost, ContentType: ct, Body: body}
			b.Run(name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if p.Classify(r, Options{}).EventID == "" {
						b.Fatal("no event id")
					}
				}
			})
		}
	}
}

// TestSpecial8 checks the eight-bytes-at-a-time search of the string scanner against a byte by
// byte one: every byte value at every position, and random words.
func TestSpecial8(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c > 0x7f }
	check := func(b []byte) {
		t.Helper()
		want := 8 // index of the first special byte; 8 for none
		for i, c := range b {
			if special(c) {
				want = i
				break
			}
		}
		if got := bits.TrailingZeros64(special8(binary.LittleEndian.Uint64(b))) >> 3; got != want {
			t.Fatalf("special8(%q) finds byte %d, want %d", b, got, want)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', ' ', '!', '#', '[', ']', '~', 0x7f} {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 8)
	for range 200000 {
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(4) > 0 {
				b[i] = byte(0x20 + rng.IntN(0x60)) // mostly printable ASCII
			}
		}
		check(b)
	}
}

// BenchmarkMetaScan compares the decoding step alone (what the relay's CPU profile showed as
// json.Unmarshal under extractMeta): scanMeta against json.Unmarshal into metaPayload.
func BenchmarkMetaScan(b *testing.B) {
	for _, file := range []string{"meta/inbound_text.json", "meta/status_delivered.json"} {
		body, _ := readFixture(b, file)
		var c bytes.Buffer
		if err := json.Compact(&c, body); err != nil {
			b.Fatal(err)
		}
		for _, in := range []struct {
			name string
			body []byte
		}{{"indented", body}, {"compact", c.Bytes()}} {
			name := strings.TrimSuffix(file, ".json") + "_" + in.name
			b.Run(name+"/reference", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.body)))
				for b.Loop() {
					var p metaPayload
					if !decodeJSONReference(in.body, &p) || p.Object != metaObject {
						b.Fatal("not decoded")
					}
				}
			})
			b.Run(name+"/scanner", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.body)))
				for b.Loop() {
					var p metaPayload
					if !scanMeta(in.body, &p) || p.Object != metaObject {
						b.Fatal("not decoded")
					}
				}
			})
		}
	}
}

// TestMetaStringOffsets puts each kind of special byte (escapes, control characters, invalid and
// valid UTF-8, the closing quote itself) at every offset of the eight-byte steps of the string
// scanner, in a key and in a value read, and checks the result against the reference.
func TestMetaStringOffsets(t *testing.T) {
	for _, special := range []string{``, `\"`, `\\`, `\/`, `\n`, `\u00e4`, `\ud83d\ude00`, `\ud83d`, `\q`, `\u12`, "\x01", "\x7f", "\xff", "é", "\xe2\x82"} {
		for n := range 18 {
			for _, m := range []int{0, 1, 7, 8, 9} {
				v := strings.Repeat("a", n) + special + strings.Repeat("b", m)
				for _, body := range []string{
					`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":"` + v + `","from":"` + v + `x"}]}}]}]}`,
					`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"` + v + `":"1","id":"m"}]}}]}]}`,
					`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":"` + v,
				} {
					checkSameAsReference(t, []byte(body))
				}
			}
		}
	}
}
