package relay

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/edgerelay/edgerelay/queue"
)

// Prefix channels and the {path} / {query} placeholders of backend URLs.
//
// A channel path ending in "/*" matches every path under its prefix; the
// prefix is matched against the path as the BSP sent it (not decoded), and
// an exact channel path on the same listener wins. The rest of the path
// after the prefix is what {path} becomes, byte for byte; {query} is "?"
// and the query string as received. A rest with "." or ".." segments
// (decoded) is refused with 404, so a backend URL's base path cannot be
// climbed out of.

// prefixChannel is a channel whose path ends in "/*".
type prefixChannel struct {
	base string // the path without "/*", e.g. "/hooks/kore"
	ch   *ChannelConfig
}

// prefixChannels lists a listener's prefix channels, longest prefix first.
func prefixChannels(chs []*ChannelConfig) map[string][]prefixChannel {
	out := map[string][]prefixChannel{}
	for _, ch := range chs {
		if base, ok := strings.CutSuffix(ch.Path, "/*"); ok {
			out[ch.Listener] = append(out[ch.Listener], prefixChannel{base: base, ch: ch})
		}
	}
	for _, l := range out {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].base) > len(l[j].base) })
	}
	return out
}

// rawTarget returns the request target as the client sent it (path and
// query), falling back to the parsed URL for absolute-form requests.
func rawTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// matchPrefix finds the prefix channel of a request; ok is false when none
// matches, and refused is true when one matches but the rest of the path
// has dot segments.
func matchPrefix(pcs []prefixChannel, r *http.Request) (ch *ChannelConfig, refused bool) {
	if len(pcs) == 0 {
		return nil, false
	}
	raw, _, _ := strings.Cut(rawTarget(r), "?")
	for _, pc := range pcs {
		if !strings.HasPrefix(raw, pc.base+"/") {
			continue
		}
		rest := raw[len(pc.base):]
		if dec, err := url.PathUnescape(rest); err != nil || hasDotSegment(dec) {
			return pc.ch, true
		}
		return pc.ch, false
	}
	return nil, false
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// channelRest is the {path} of an event: the raw path after its channel's
// prefix, or "" for an exact channel (or a channel no longer configured as
// a prefix).
func (s *Server) channelRest(ev *queue.Event) string {
	ch := s.state.Load().byName[ev.Channel]
	if ch == nil {
		return ""
	}
	base, ok := strings.CutSuffix(ch.Path, "/*")
	if !ok {
		return ""
	}
	raw, _, _ := strings.Cut(ev.Path, "?")
	if rest, ok := strings.CutPrefix(raw, base+"/"); ok {
		return "/" + rest
	}
	return ""
}

// backendURL fills a backend url's placeholders: {path} with rest and
// {query} with "?" + the raw query of target (the event's request target),
// or "" when it has none. The path and query are kept byte for byte: when
// Go would re-escape the path, it goes out as written (URL.Opaque).
func backendURL(tmpl, target, rest string) (*url.URL, error) {
	if !strings.Contains(tmpl, "{") {
		return url.Parse(tmpl)
	}
	query := ""
	if _, q, ok := strings.Cut(target, "?"); ok && q != "" {
		query = "?" + q
	}
	s := strings.NewReplacer("{path}", rest, "{query}", query).Replace(tmpl)
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("the url with {path} and {query} filled in is not a valid URL")
	}
	// The raw path and query as written: after "scheme://authority".
	after := s[strings.Index(s, "://")+3:]
	if i := strings.IndexAny(after, "/?"); i >= 0 {
		after = after[i:]
	} else {
		after = ""
	}
	rawPath, rawQuery, hasQuery := strings.Cut(after, "?")
	u.RawQuery = rawQuery
	u.ForceQuery = hasQuery && rawQuery == ""
	if rawPath != "" && u.EscapedPath() != rawPath {
		u.Opaque = rawPath
	}
	return u, nil
}
