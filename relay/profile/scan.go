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

// The JSON scanner the payload walkers (scan_payloads.go) read callbacks with: a single pass over
// a complete document that accepts and rejects what encoding/json does.

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
