package queue

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func codecEvent() *Event {
	return &Event{
		ID: "0000000000000001-0000000000000001", Channel: "meta", Provider: "meta", ProviderEventID: "wamid.X",
		OrderKey: "15551234567", ReceivedAt: time.Unix(1764000000, 123456789).UTC(), Method: "POST",
		Path: "/hooks/meta?x=1", Backends: []string{"crm", "archive"},
		Header: map[string][]string{"Content-Type": {"application/json"}, "X-A": {"1", "2"}, "X-Empty": {""}},
		Body:   []byte(`{"entry":[{"id":"1","bin":"\u0000\u00ff"}]}`),
	}
}

// TestEventCodecRoundTrip: what is encoded decodes equal, and the decoded body is a copy the
// caller may change without touching the stored bytes.
func TestEventCodecRoundTrip(t *testing.T) {
	ev := codecEvent()
	enc := encodeEvent(ev)
	got, err := decodeEvent(ev.ID, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("decoded %+v\nwant    %+v", got, ev)
	}
	before := bytes.Clone(enc)
	got.Body[0] = 'X'
	if !bytes.Equal(enc, before) {
		t.Fatal("changing the decoded body changed the encoded record")
	}
}

// FuzzDecodeEvent: a damaged record is refused or decoded, never a panic, and an encoded
// event always decodes back to itself.
func FuzzDecodeEvent(f *testing.F) {
	enc := encodeEvent(codecEvent())
	f.Add(enc)
	f.Add(enc[:len(enc)/2])
	f.Add([]byte{codecVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent("id", b)
		if err != nil {
			return
		}
		again, err := decodeEvent("id", encodeEvent(ev))
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("re-encoded event: %v\n%+v\n%+v", err, again, ev)
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	enc := encodeEvent(codecEvent())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEvent("id", enc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecordCodecRoundTrip: a delivery record decodes to what was encoded.
func TestRecordCodecRoundTrip(t *testing.T) {
	rec := &record{Attempts: 3, FirstAttemptAt: time.Unix(1764000000, 5).UTC(), Due: time.Unix(1764000100, 0).UTC(),
		ReceivedAt: time.Unix(1763999999, 7).UTC(), OrderKey: "15551234567", Channel: "meta", Provider: "meta",
		LastError: "backend answered 503", Backends: []string{"crm", "archive"}}
	got, err := decodeRecord(rec.encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Fatalf("decoded %+v\nwant    %+v", got, rec)
	}
}
