package logout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records every write it gets, as the process's standard error would see them.
type sink struct {
	mu     sync.Mutex
	writes []string
	err    error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), s.err
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func (s *sink) all() string { return strings.Join(s.got(), "") }

func logger(w *Writer) *slog.Logger {
	return slog.New(Wrap(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}), w))
}

func msgs(t *testing.T, out string) []string {
	t.Helper()
	var ms []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line that is not whole JSON: %q: %v", line, err)
		}
		ms = append(ms, rec.Msg)
	}
	return ms
}

// Info lines wait in the buffer; a warn line writes them and itself at once, in order, in one
// write; so does a line logged with Now's context, whatever its level.
func TestWarnAndNowWriteAtOnceInOrder(t *testing.T) {
	s := &sink{}
	w := newWriter(s, time.Hour)
	log := logger(w)
	log.Info("a")
	log.Debug("b")
	if n := len(s.got()); n != 0 {
		t.Fatalf("info and debug lines written at once (%d writes), want them held", n)
	}
	log.Warn("c")
	if got := s.got(); len(got) != 1 || fmt.Sprint(msgs(t, got[0])) != "[a b c]" {
		t.Fatalf("after a warn line: writes %q, want one write of a, b, c", got)
	}
	log.Info("d")
	log.InfoContext(Now(context.Background()), "e")
	if got := s.got(); len(got) != 2 || fmt.Sprint(msgs(t, got[1])) != "[d e]" {
		t.Fatalf("after a line logged with Now: writes %q, want a second write of d, e", got)
	}
	log.Error("f")
	log.With("k", "v").WithGroup("g").Warn("h", "x", 1)
	if got := msgs(t, s.all()); fmt.Sprint(got) != "[a b c d e f h]" {
		t.Fatalf("lines %v, want a to h in order, f and h written at once", got)
	}
}

// A line nothing else writes is written by the timer, within the delay; the timer is armed
// again by the next line after that.
func TestHeldLinesWrittenWithinTheDelay(t *testing.T) {
	s := &sink{}
	w := newWriter(s, 20*time.Millisecond)
	log := logger(w)
	for round := 1; round <= 2; round++ {
		start := time.Now()
		log.Info("held", "round", round)
		for len(s.got()) < round {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("round %d: the held line was not written within 5 s", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := s.got(); len(got) != round || !strings.Contains(got[round-1], fmt.Sprintf(`"round":%d`, round)) {
			t.Fatalf("round %d: writes %q", round, got)
		}
	}
}

// A burst is written in writes of at least FlushAt bytes, nothing lost or reordered, and Flush
// writes the rest.
func TestBurstGatheredIntoFewWrites(t *testing.T) {
	s := &sink{}
	w := newWriter(s, time.Hour)
	const lines = 20000
	var want strings.Builder
	for i := range lines {
		line := fmt.Sprintf("line %06d %s\n", i, strings.Repeat("x", 80))
		want.WriteString(line)
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	got := s.got()
	for i, g := range got {
		if len(g) < FlushAt {
			t.Fatalf("write %d of %d bytes before Flush, want at least %d", i, len(g), FlushAt)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.all() != want.String() {
		t.Fatal("the lines written differ from the lines logged")
	}
	if n := len(s.got()); n > want.Len()/FlushAt+1 {
		t.Fatalf("%d writes for %d lines (%d bytes), want at most %d", n, lines, want.Len(), want.Len()/FlushAt+1)
	}
	t.Logf("%d lines, %d bytes: %d writes", lines, want.Len(), len(s.got()))
}

// Lines logged at once from many goroutines are all written, each whole.
func TestConcurrentLinesWhole(t *testing.T) {
	s := &sink{}
	w := newWriter(s, 2*time.Millisecond)
	log := logger(w)
	const goroutines, each = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%500 == 0 {
					log.Warn("w", "g", g, "i", i)
				} else {
					log.Info("i", "g", g, "i", i, "pad", strings.Repeat("p", i%300))
				}
			}
		}()
	}
	wg.Wait()
	w.Flush()
	if n := len(msgs(t, s.all())); n != goroutines*each {
		t.Fatalf("%d lines written, want %d", n, goroutines*each)
	}
}

// A write error reaches the caller of the next Write or Flush, and the buffer keeps working.
func TestWriteErrorReported(t *testing.T) {
	s := &sink{err: errors.New("disk full")}
	w := newWriter(s, time.Hour)
	w.Write([]byte("one\n"))
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Flush after a failed write: %v, want the write's error", err)
	}
	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
	w.Write([]byte("two\n"))
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush after the error cleared: %v", err)
	}
	if got := s.got(); len(got) != 2 || got[1] != "two\n" {
		t.Fatalf("writes %q", got)
	}
}

// Wrap leaves a handler alone when its output is not a *Writer (tests' buffers, io.Discard).
func TestWrapOnlyOverWriter(t *testing.T) {
	var b bytes.Buffer
	h := slog.NewJSONHandler(&b, nil)
	if got := Wrap(h, &b); got != slog.Handler(h) {
		t.Fatalf("Wrap over a bytes.Buffer returned %T, want the handler itself", got)
	}
}
