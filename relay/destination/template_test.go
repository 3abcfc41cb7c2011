package destination

import (
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// TestTemplateExpand: the split template gives what replacing each
// placeholder in the text would, unknown placeholders and stray braces
// kept as written.
func TestTemplateExpand(t *testing.T) {
	ev := &queue.Event{Channel: "wa-in", Provider: "meta"}
	for _, s := range []string{
		"relay.events", "{channel}", "{provider}", "relay.{channel}.{provider}",
		"{channel}{channel}-{provider}", "x.{unknown}.{channel}", "a{b{channel}}c", "{", "}{provider",
		"{provider}{", "{{provider}}", "",
	} {
		want := strings.NewReplacer("{channel}", ev.Channel, "{provider}", ev.Provider).Replace(s)
		if got := NewTemplate(s).Expand(ev); got != want {
			t.Errorf("%q: got %q, want %q", s, got, want)
		}
	}
}

func BenchmarkTemplateExpand(b *testing.B) {
	ev := &queue.Event{Channel: "wa-in", Provider: "meta"}
	t := NewTemplate("relay.{channel}.{provider}")
	b.ReportAllocs()
	for b.Loop() {
		_ = t.Expand(ev)
	}
}
