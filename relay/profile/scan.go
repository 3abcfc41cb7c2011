package profile

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// scanMeta decodes a WhatsApp Cloud API webhook body into p in a single pass, reading only the
// fields metaPayload holds and skipping everything else without allocating. It reports false for
// a body that is not one well-formed JSON value, exactly where json.Unmarshal reports a syntax
// error (trailing data, bad literals, numbers, escapes or control characters in strings, nesting
// deeper than 10000 levels; invalid UTF-8 inside strings is accepted); otherwise p holds what json.Unmarshal into a zero metaPayload (with decodeJSON's
// tolerance of type mismatches) would hold:
//
//   - object keys match field names exactly or, failing that, case-insensitively with
//     encoding/json's folding (so "OBJECT" and "ſtatus" match);
//   - a repeated key decodes again into the same place: scalars are replaced, objects merge,
//     arrays reuse (and truncate) the slice decoded before;
//   - null leaves a scalar or an object as it was and empties a list; a value of the wrong JSON
//     type (a string where a list is expected, ...) is skipped and leaves the field as it was;
//   - scalars read as [text.UnmarshalJSON] reads them.
func scanMeta(body []byte, p *metaPayload) bool {
	s := scanner{data: body}
	s.space()
	if s.peek() == '{' {
		if !s.payload(p) {
			return false
		}
	} else if !s.skip() {
		return false
	}
	return s.end()
}

// scanGupshup is scanMeta for a Gupshup callback: Meta's fields (the v3 format) and the v2
// format's beside them, as encoding/json decodes gupshupPayload.
func scanGupshup(body []byte, p *gupshupPayload) bool {
	s := scanner{data: body}
	s.space()
	if s.peek() == '{' {
		if !s.gupshup(p) {
			return false
		}
	} else if !s.skip() {
		return false
	}
	return s.end()
}

// maxJSONDepth is the nesting depth of arrays and objects encoding/json accepts.
const maxJSONDepth = 10000

// scanner is a JSON reader over a complete document. Every method leaves pos after what it read
// and returns false on malformed input; the caller then abandons the document.
type scanner struct {
	data  []byte
	pos   int
	depth int
	buf   []byte // scratch for unescaping keys and strings
}

// end reports whether only white space follows the document's value.
func (s *scanner) end() bool {
	s.space()
	return s.pos == len(s.data)
}

// peek returns the byte at pos, or 0 at the end of the input.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// space skips JSON white space.
func (s *scanner) space() {
	d, i := s.data, s.pos
	for i < len(d) {
		switch d[i] {
		case ' ':
			// Indentation: eight bytes at a time up to the first one that is not a space.
			i++
			for i+8 <= len(d) {
				if x := binary.LittleEndian.Uint64(d[i:]) ^ 0x2020202020202020; x != 0 {
					i += bits.TrailingZeros64(x) >> 3
					break
				}
				i += 8
			}
		case '\n', '\t', '\r':
			i++
		default:
			s.pos = i
			return
		}
	}
	s.pos = i
}

// open consumes the '{' or '[' at pos and enters one nesting level.
func (s *scanner) open() bool {
	s.pos++
	s.depth++
	return s.depth <= maxJSONDepth
}

// member advances to the next member of the object being read: with first, right after its '{';
// otherwise right after a member's value. It returns the member's key (unescaped; valid until
// the next call that reads a string) with pos at the member's value, or done after the closing
// '}'.
func (s *scanner) member(first bool) (key []byte, done, ok bool) {
	s.space()
	c := s.peek()
	if c == '}' {
		s.pos++
		s.depth--
		return nil, true, true
	}
	if !first {
		if c != ',' {
			return nil, false, false
		}
		s.pos++
		s.space()
		c = s.peek()
	}
	if c != '"' {
		return nil, false, false
	}
	raw, esc, _, ok := s.str()
	if !ok {
		return nil, false, false
	}
	// A key without escapes is matched as it is: unescaping would only replace invalid UTF-8
	// with U+FFFD, and neither matches a field name.
	key = raw
	if esc {
		s.buf = appendUnquoted(s.buf[:0], raw)
		key = s.buf
	}
	s.space()
	if s.peek() != ':' {
		return nil, false, false
	}
	s.pos++
	s.space()
	return key, false, true
}

// element advances to the next element of the array being read, like member: pos is left at the
// element, or after the closing ']' with done.
func (s *scanner) element(first bool) (done, ok bool) {
	s.space()
	c := s.peek()
	if c == ']' {
		s.pos++
		s.depth--
		return true, true
	}
	if !first {
		if c != ',' {
			return false, false
		}
		s.pos++
		s.space()
	}
	return false, true
}

// str reads the string literal at pos (which is '"') and returns its raw content between the
// quotes, whether it holds an escape and whether it holds a byte outside ASCII.
func (s *scanner) str() (raw []byte, esc, high, ok bool) {
	d := s.data
	start := s.pos + 1
	for i := start; i < len(d); {
		// Eight bytes at a time up to the first quote, backslash, control character or byte
		// outside ASCII.
		for i+8 <= len(d) {
			m := special8(binary.LittleEndian.Uint64(d[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(d) {
			break
		}
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return d[start:i], esc, high, true
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				return nil, false, false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || hex4(d[i+2:i+6]) < 0 {
					return nil, false, false, false
				}
				i += 6
			default:
				return nil, false, false, false
			}
		case c < 0x20:
			return nil, false, false, false
		default:
			if c >= utf8.RuneSelf {
				high = true
			}
			i++
		}
	}
	return nil, false, false, false
}

// special8 returns a mask of the bytes in w (little-endian) that are '"', '\\', below 0x20 or
// above 0x7f: the high bit of each such byte is set. Bytes above the lowest such byte may be
// flagged spuriously; the lowest set bit marks the first special byte exactly.
func special8(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	zeroQuote := (quote - ones) &^ quote
	zeroBackslash := (backslash - ones) &^ backslash
	control := (w - ones*0x20) &^ w
	return (zeroQuote | zeroBackslash | control | w) & highs
}

// hex4 returns the value of four hexadecimal digits, or -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// appendUnquoted appends the content of a validated string literal, escapes resolved, to dst as
// encoding/json does: an invalid surrogate escape and every byte of invalid UTF-8 become U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch e := s[r]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(s[r+1 : r+5])
				r += 5
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:r+6])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			r++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, n := utf8.DecodeRune(s[r:])
			dst = utf8.AppendRune(dst, rr)
			r += n
		}
	}
	return dst
}

// literal consumes word (true, false or null) at pos.
func (s *scanner) literal(word string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		return false
	}
	s.pos += len(word)
	return true
}

// number consumes the number at pos: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i+1)
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			return false
		}
		i = j
	}
	s.pos = i
	return true
}

// digits returns the index of the first byte at or after i that is not a decimal digit.
func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// skip validates and consumes the value at pos.
func (s *scanner) skip() bool {
	switch c := s.peek(); c {
	case '{':
		if !s.open() {
			return false
		}
		for first := true; ; first = false {
			_, done, ok := s.member(first)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !s.skip() {
				return false
			}
		}
	case '[':
		if !s.open() {
			return false
		}
		for first := true; ; first = false {
			done, ok := s.element(first)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !s.skip() {
				return false
			}
		}
	case '"':
		_, _, _, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// text reads the value at pos into t as text.UnmarshalJSON does: a string unescaped, a number or
// boolean verbatim, null, an object or an array leaving t as it was.
func (s *scanner) text(t *text) bool {
	switch c := s.peek(); c {
	case '"':
		raw, esc, high, ok := s.str()
		if !ok {
			return false
		}
		if !esc && (!high || utf8.Valid(raw)) {
			*t = text(raw)
		} else {
			s.buf = appendUnquoted(s.buf[:0], raw)
			*t = text(s.buf)
		}
		return true
	case 't', 'f':
		start := s.pos
		if !s.skip() {
			return false
		}
		*t = text(s.data[start:s.pos])
		return true
	case 'n', '{', '[':
		return s.skip()
	default:
		start := s.pos
		if !s.number() {
			return false
		}
		*t = text(s.data[start:s.pos])
		return true
	}
}

// keyIs reports whether an object key selects the field named name (lower-case ASCII), as
// encoding/json matches keys: exactly or, failing that, equal after folding case (ASCII letters
// to upper case, other runes to the smallest rune of their Unicode fold orbit).
func keyIs(key []byte, name string) bool {
	if string(key) == name {
		return true
	}
	if len(key) < len(name) {
		return false
	}
	j := 0
	for i := 0; i < len(key); j++ {
		var f rune
		if c := key[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			f = rune(c)
			i++
		} else {
			r, n := utf8.DecodeRune(key[i:])
			f = foldRune(r)
			i += n
		}
		if j >= len(name) {
			return false
		}
		n := name[j]
		if 'a' <= n && n <= 'z' {
			n -= 'a' - 'A'
		}
		if f != rune(n) {
			return false
		}
	}
	return j == len(name)
}

// foldRune returns the smallest rune of r's case fold orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// structStart begins reading a value that decodes into a struct. If the value is an object, it
// is entered and isObject is true: its members follow. Any other value (null, or a type mismatch
// that leaves the struct as it was) is skipped. ok is false for malformed input.
func (s *scanner) structStart() (isObject, ok bool) {
	if s.peek() != '{' {
		return false, s.skip()
	}
	return true, s.open()
}

// listStart begins reading a value that decodes into the slice *dst as encoding/json decodes
// into a slice. If the value is an array, it is entered and isArray is true: its elements follow,
// read with listElem and closed with listEnd. null makes *dst nil; any other value is skipped and
// leaves *dst as it was. ok is false for malformed input.
func listStart[E any](s *scanner, dst *[]E) (isArray, ok bool) {
	switch s.peek() {
	case '[':
		return true, s.open()
	case 'n':
		if !s.literal("null") {
			return false, false
		}
		*dst = nil
		return false, true
	}
	return false, s.skip()
}

// listElem returns v with room for element i, as reflect grows a slice being decoded into: the
// element decoded before at index i (within the capacity of a slice decoded before from a
// repeated key) is reused, not zeroed.
func listElem[E any](v []E, i int) []E {
	if i >= cap(v) {
		v = slices.Grow(v, 1)
	}
	if i >= len(v) {
		v = v[:i+1]
	}
	return v
}

// listEnd returns v truncated to the n elements read; an empty array gives an empty slice.
func listEnd[E any](v []E, n int) []E {
	if n < len(v) {
		v = v[:n]
	}
	if n == 0 {
		v = []E{}
	}
	return v
}

func (s *scanner) payload(p *metaPayload) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "object"):
			ok = s.text(&p.Object)
		case keyIs(key, "gs_app_id"):
			ok = s.text(&p.GSAppID)
		case keyIs(key, "entry"):
			ok = s.entries(&p.Entry)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) entries(dst *[]metaEntry) bool {
	if arr, ok := listStart(s, dst); !arr || !ok {
		return ok
	}
	v, i := *dst, 0
	for first := true; ; first = false {
		done, ok := s.element(first)
		if !ok {
			return false
		}
		if done {
			break
		}
		v = listElem(v, i)
		if !s.entry(&v[i]) {
			return false
		}
		i++
	}
	*dst = listEnd(v, i)
	return true
}

func (s *scanner) entry(e *metaEntry) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "id"):
			ok = s.text(&e.ID)
		case keyIs(key, "changes"):
			ok = s.changes(&e.Changes)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) changes(dst *[]metaChange) bool {
	if arr, ok := listStart(s, dst); !arr || !ok {
		return ok
	}
	v, i := *dst, 0
	for first := true; ; first = false {
		done, ok := s.element(first)
		if !ok {
			return false
		}
		if done {
			break
		}
		v = listElem(v, i)
		if !s.change(&v[i]) {
			return false
		}
		i++
	}
	*dst = listEnd(v, i)
	return true
}

func (s *scanner) change(c *metaChange) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "field"):
			ok = s.text(&c.Field)
		case keyIs(key, "value"):
			ok = s.value(&c.Value)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) value(v *metaValue) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "metadata"):
			ok = s.metadata(&v.Metadata)
		case keyIs(key, "messages"):
			ok = s.messages(&v.Messages)
		case keyIs(key, "statuses"):
			ok = s.statuses(&v.Statuses)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) metadata(m *metaMetadata) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "display_phone_number"):
			ok = s.text(&m.DisplayPhoneNumber)
		case keyIs(key, "phone_number_id"):
			ok = s.text(&m.PhoneNumberID)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) messages(dst *[]metaMessage) bool {
	if arr, ok := listStart(s, dst); !arr || !ok {
		return ok
	}
	v, i := *dst, 0
	for first := true; ; first = false {
		done, ok := s.element(first)
		if !ok {
			return false
		}
		if done {
			break
		}
		v = listElem(v, i)
		if !s.message(&v[i]) {
			return false
		}
		i++
	}
	*dst = listEnd(v, i)
	return true
}

func (s *scanner) message(m *metaMessage) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "id"):
			ok = s.text(&m.ID)
		case keyIs(key, "from"):
			ok = s.text(&m.From)
		case keyIs(key, "from_user_id"):
			ok = s.text(&m.FromUserID)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) statuses(dst *[]metaStatus) bool {
	if arr, ok := listStart(s, dst); !arr || !ok {
		return ok
	}
	v, i := *dst, 0
	for first := true; ; first = false {
		done, ok := s.element(first)
		if !ok {
			return false
		}
		if done {
			break
		}
		v = listElem(v, i)
		if !s.status(&v[i]) {
			return false
		}
		i++
	}
	*dst = listEnd(v, i)
	return true
}

func (s *scanner) status(st *metaStatus) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "id"):
			ok = s.text(&st.ID)
		case keyIs(key, "status"):
			ok = s.text(&st.Status)
		case keyIs(key, "recipient_id"):
			ok = s.text(&st.RecipientID)
		case keyIs(key, "recipient_user_id"):
			ok = s.text(&st.RecipientUserID)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

// gupshup reads a Gupshup callback: gupshupPayload embeds metaPayload, whose members encoding/json
// reads at the top level beside the v2 ones.
func (s *scanner) gupshup(p *gupshupPayload) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "object"):
			ok = s.text(&p.Object)
		case keyIs(key, "gs_app_id"):
			ok = s.text(&p.GSAppID)
		case keyIs(key, "entry"):
			ok = s.entries(&p.Entry)
		case keyIs(key, "app"):
			ok = s.text(&p.App)
		case keyIs(key, "type"):
			ok = s.text(&p.Type)
		case keyIs(key, "payload"):
			ok = s.gupshupV2(p)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

// gupshupV2 reads p.Payload.
func (s *scanner) gupshupV2(p *gupshupPayload) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	pl := &p.Payload
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		switch {
		case keyIs(key, "id"):
			ok = s.text(&pl.ID)
		case keyIs(key, "type"):
			ok = s.text(&pl.Type)
		case keyIs(key, "source"):
			ok = s.text(&pl.Source)
		case keyIs(key, "destination"):
			ok = s.text(&pl.Destination)
		case keyIs(key, "phone"):
			ok = s.text(&pl.Phone)
		case keyIs(key, "sender"):
			ok = s.gupshupSender(p)
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

// gupshupSender reads p.Payload.Sender.
func (s *scanner) gupshupSender(p *gupshupPayload) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		if keyIs(key, "phone") {
			ok = s.text(&p.Payload.Sender.Phone)
		} else {
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}
