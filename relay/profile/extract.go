package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxEventIDLen bounds the length of an event id or order key. A longer one (a large batch's
// combined ids, an oversized header) is replaced by "sha256:" and the hex SHA-256 of its value,
// which is as stable across retries as the value itself and keeps de-duplication and ordering
// keys small.
const MaxEventIDLen = 512

// bounded returns s, or its digest when s is longer than MaxEventIDLen.
func bounded(s string) string {
	if len(s) <= MaxEventIDLen {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// text is a JSON scalar read as a string whatever its JSON type: providers are not consistent
// about quoting numbers (MessageBird's msisdn, some phone numbers), and a routing field or an id
// must not be lost to that. Objects, arrays and null read as "".
type text string

// UnmarshalJSON implements json.Unmarshaler.
func (t *text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		// encoding/json has validated the literal; without escapes and with valid UTF-8 its
		// content is the string itself.
		if len(b) >= 2 && b[len(b)-1] == '"' {
			if in := b[1 : len(b)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
				*t = text(in)
				return nil
			}
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = text(s)
	case '{', '[', 'n':
		// Objects, arrays and null carry no scalar: leave the field empty.
	default:
		*t = text(b) // number or boolean, verbatim
	}
	return nil
}

// decodeJSON decodes body into v. A body that is not JSON fails; a JSON value of an unexpected
// shape (an object where a list was expected, ...) only leaves the mismatched fields empty, as
// encoding/json does for type errors, so what could be read still counts.
func decodeJSON(body []byte, v any) bool {
	err := json.Unmarshal(body, v)
	if err == nil {
		return true
	}
	var te *json.UnmarshalTypeError
	return errors.As(err, &te)
}

// looksJSON reports whether body starts, after white space, with a JSON object or array.
func looksJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// ids collects the item ids of a batch in payload order.
type ids struct {
	parts   []string
	missing bool // an item had no id: the batch as a whole has none
}

// add appends one item's id; parts are joined with ":" and the id is missing if base is empty.
// An empty suffix part is left out (a status callback without a status keeps its bare id).
func (s *ids) add(base string, suffix ...string) {
	if base == "" {
		s.missing = true
		return
	}
	id := base
	for _, p := range suffix {
		if p != "" {
			id += ":" + p
		}
	}
	s.parts = append(s.parts, id)
}

// addStatus appends a status item's id, id + ":" + status. A status item without its status word
// cannot be told from its siblings (sent, delivered and read share the id), so the batch then
// has no id.
func (s *ids) addStatus(id, status string) {
	if status == "" {
		s.missing = true
	}
	s.add(id, status)
}

// String returns the combined event id: "" if any item had no id or there were no items.
func (s *ids) String() string {
	if s.missing || len(s.parts) == 0 {
		return ""
	}
	return strings.Join(s.parts, ",")
}

// fields builds a routing field map from name/value pairs, leaving out empty values.
func fields(kv ...string) map[string]string {
	var m map[string]string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if m == nil {
			m = make(map[string]string, len(kv)/2)
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}
