package relay

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
)

// The validator: collects diagnostics while the file structs become a Config,
// and the small parsers (durations, sizes) and helpers it shares.

func (v *validator) errorf(rng hcl.Range, summary, format string, args ...any) {
	r := rng
	v.diags = append(v.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  &r,
	})
}

func (v *validator) duration(s *string, rng hcl.Range, name string, def time.Duration) time.Duration {
	if s == nil {
		return def
	}
	d, err := ParseDuration(*s)
	if err != nil {
		v.errorf(rng, "invalid duration", "%s = %q: %v (write e.g. \"30s\", \"5m\", \"168h\", \"7d\")", name, *s, err)
		return def
	}
	if d < 0 {
		v.errorf(rng, "invalid duration", "%s = %q must not be negative", name, *s)
		return def
	}
	return d
}

func (v *validator) size(s *string, rng hcl.Range, name string, def int64) int64 {
	if s == nil {
		return def
	}
	n, err := ParseSize(*s)
	if err != nil {
		v.errorf(rng, "invalid size", "%s = %q: %v (write e.g. \"3MiB\", \"10GiB\", \"512KB\")", name, *s, err)
		return def
	}
	return n
}

func (v *validator) positive(n *int, rng hcl.Range, name string, def int, allowZero bool) int {
	if n == nil {
		return def
	}
	if *n < 0 || (*n == 0 && !allowZero) {
		v.errorf(rng, "invalid number", "%s = %d must be %s", name, *n, map[bool]string{true: "0 or more", false: "at least 1"}[allowZero])
		return def
	}
	return *n
}

// secrets drops empty entries (so env("OLD", "") is harmless) and reports
// a list left empty.
func (v *validator) secrets(list []string, rng hcl.Range, name string) []string {
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		v.errorf(rng, "empty secret list", "%s has no non-empty value: at least one is required", name)
	}
	return out
}

func str(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func boolv(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func (v *validator) decode(body hcl.Body, target any) bool {
	d := gohcl.DecodeBody(body, v.ctx, target)
	v.diags = append(v.diags, d...)
	return !d.HasErrors()
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func didYouMean(name string, known []string) string {
	if len(known) == 0 {
		return ""
	}
	if s := nearest(name, known); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Sprintf(" (defined: %s)", strings.Join(known, ", "))
}

// nearest returns the known name within edit distance 2 of name, if any.
func nearest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// ParseDuration is time.ParseDuration plus a "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") && !strings.ContainsAny(s[:len(s)-1], "hmsuµn") {
		n, err := strconv.ParseFloat(s[:len(s)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("bad number of days")
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// ParseSize reads "10GiB", "3MiB", "512KB", "1024" (bytes).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(f * float64(mult)), nil
}

// FormatDiagnostics renders diagnostics one per line as
// "file:line:col: error: summary: detail".
func FormatDiagnostics(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		pos := ""
		if d.Subject != nil {
			pos = fmt.Sprintf("%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "%s%s: %s", pos, sev, d.Summary)
		if d.Detail != "" {
			fmt.Fprintf(&b, ": %s", d.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func diagBefore(a, b *hcl.Diagnostic) bool {
	if a.Subject == nil || b.Subject == nil {
		return a.Subject != nil
	}
	if a.Subject.Start.Line != b.Subject.Start.Line {
		return a.Subject.Start.Line < b.Subject.Start.Line
	}
	return a.Subject.Start.Column < b.Subject.Start.Column
}

// withoutConsequences drops the validator's diagnostics that only repeat a
// decoding error: one about an attribute that was never written (its range
// is empty: the decoder already said "Missing required argument"), or one
// whose range covers a decoding error (an env() that is not set leaves its
// attribute empty, and "empty" is not a second problem).
func withoutConsequences(diags, decoded hcl.Diagnostics) hcl.Diagnostics {
	if !decoded.HasErrors() {
		return diags
	}
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError && (d.Subject == nil || d.Subject.Filename == "") {
			continue
		}
		if d.Severity == hcl.DiagError && overlapsError(*d.Subject, decoded, d) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// withoutUnknownEchoes drops gohcl's "value must be known" that follows a
// failed function call (env() of an unset variable): the call's own
// diagnostic says what is wrong.
func withoutUnknownEchoes(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Subject != nil && strings.Contains(d.Detail, "value must be known") {
			rng := *d.Subject
			if d.Context != nil {
				rng = *d.Context
			}
			if overlapsError(rng, diags, d) {
				continue
			}
		}
		out = append(out, d)
	}
	return out
}

// overlapsError reports whether an error of diags other than self lies
// within rng or contains it.
func overlapsError(rng hcl.Range, diags hcl.Diagnostics, self *hcl.Diagnostic) bool {
	for _, o := range diags {
		if o == self || o.Severity != hcl.DiagError || o.Subject == nil || o.Subject.Filename != rng.Filename {
			continue
		}
		if rng.Overlaps(*o.Subject) || o.Subject.Overlaps(rng) {
			return true
		}
	}
	return false
}
