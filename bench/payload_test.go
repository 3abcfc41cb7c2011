package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

func TestPayloadIsASignedOneKilobyteMetaMessage(t *testing.T) {
	p := newPayload(1749416383, 100, benchSecret)
	seen := map[string]bool{}
	for _, seq := range []uint64{0, 1, 0xdeadbeef, 1<<64 - 1} {
		b := p.body(seq)
		if len(b) != bodySize {
			t.Fatalf("body of %d is %d bytes, want %d", seq, len(b), bodySize)
		}
		var msg struct {
			Object string `json:"object"`
			Entry  []struct {
				Changes []struct {
					Value struct {
						Messages []struct {
							ID   string `json:"id"`
							From string `json:"from"`
						} `json:"messages"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("body of %d is not JSON: %v\n%s", seq, err, b)
		}
		m := msg.Entry[0].Changes[0].Value.Messages[0]
		if msg.Object != "whatsapp_business_account" || !strings.HasPrefix(m.ID, idPrefix) || len(m.From) != 12 {
			t.Errorf("body of %d: object %q, id %q, from %q", seq, msg.Object, m.ID, m.From)
		}
		if seen[m.ID] {
			t.Errorf("message id %q repeated", m.ID)
		}
		seen[m.ID] = true
		if got, err := seqOf(b); err != nil || got != seq {
			t.Errorf("seqOf(body of %d) = %d, %v", seq, got, err)
		}
		mac := hmac.New(sha256.New, []byte(benchSecret))
		mac.Write(b)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); string(p.sign(b)) != want {
			t.Errorf("signature of %d = %s, want %s", seq, p.sign(b), want)
		}
	}
	if _, err := seqOf([]byte(`{"id":"wamid.OTHER"}`)); err == nil {
		t.Error("seqOf accepted a foreign body")
	}
}

func TestSlopeOf(t *testing.T) {
	xs := []float64{1, 2, 3, 4}
	if s := slopeOf(xs, []float64{10, 10, 10, 10}); s != 0 {
		t.Errorf("flat backlog: slope %v", s)
	}
	if s := slopeOf(xs, []float64{100, 200, 300, 400}); s != 100 {
		t.Errorf("growing backlog: slope %v, want 100", s)
	}
}
