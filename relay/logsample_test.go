package relay

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestSampleHandler(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	h := newSampleHandler(slog.NewJSONHandler(&buf, nil), func() time.Time { return now })
	log := slog.New(h).With("listener", "public")
	for i := 0; i < 10000; i++ {
		log.Warn("callback refused", "reason", "reading body failed", "i", i)
		log.Info("callback accepted", "i", i)
	}
	log.Warn("callback refused", "reason", "body over max_body")
	out := buf.String()
	if n := strings.Count(out, `"reason":"reading body failed"`); n != sampleBurst {
		t.Fatalf("%d refusal lines in one interval, want %d", n, sampleBurst)
	}
	if n := strings.Count(out, `"msg":"callback accepted"`); n != 10000 {
		t.Fatalf("INFO lines are not sampled: %d of 10000", n)
	}
	if !strings.Contains(out, `"reason":"body over max_body"`) {
		t.Fatal("another reason has its own budget")
	}
	buf.Reset()
	now = now.Add(sampleInterval)
	log.Warn("callback refused", "reason", "reading body failed")
	out = buf.String()
	if !strings.Contains(out, `"msg":"repeated log lines suppressed"`) || !strings.Contains(out, `"suppressed":9980`) ||
		strings.Count(out, `"msg":"callback refused"`) != 1 {
		t.Fatalf("after the interval, want the summary and the line:\n%s", out)
	}
	buf.Reset()
	for i := 0; i < 30; i++ {
		log.Error("callback not stored", "err", "x")
	}
	h.flush()
	if !strings.Contains(buf.String(), `"suppressed":10`) {
		t.Fatalf("flush must report the last suppressed lines:\n%s", buf.String())
	}
}
