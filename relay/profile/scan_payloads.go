package profile

// The payload walkers: scanMeta and scanGupshup read a provider's callback body into the few fields
// its profile classifies by, with the JSON scanner of scan.go, one method per level of the
// payload's structure.

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

// payload reads Meta's top-level object.
func (s *scanner) payload(p *metaPayload) bool {
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "object"):
			return s.text(&p.Object)
		case keyIs(key, "gs_app_id"):
			return s.text(&p.GSAppID)
		case keyIs(key, "entry"):
			return s.entries(&p.Entry)
		}
		return s.skip()
	})
}

func (s *scanner) entries(dst *[]metaEntry) bool {
	return list(s, dst, func(e *metaEntry) bool { return s.entry(e) })
}

func (s *scanner) entry(e *metaEntry) bool {
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "id"):
			return s.text(&e.ID)
		case keyIs(key, "changes"):
			return s.changes(&e.Changes)
		}
		return s.skip()
	})
}

func (s *scanner) changes(dst *[]metaChange) bool {
	return list(s, dst, func(e *metaChange) bool { return s.change(e) })
}

func (s *scanner) change(c *metaChange) bool {
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "field"):
			return s.text(&c.Field)
		case keyIs(key, "value"):
			return s.value(&c.Value)
		}
		return s.skip()
	})
}

func (s *scanner) value(v *metaValue) bool {
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "metadata"):
			return s.metadata(&v.Metadata)
		case keyIs(key, "messages"):
			return s.messages(&v.Messages)
		case keyIs(key, "statuses"):
			return s.statuses(&v.Statuses)
		}
		return s.skip()
	})
}

func (s *scanner) metadata(m *metaMetadata) bool {
	return s.texts(
		textField{"display_phone_number", &m.DisplayPhoneNumber},
		textField{"phone_number_id", &m.PhoneNumberID},
	)
}

func (s *scanner) messages(dst *[]metaMessage) bool {
	return list(s, dst, func(e *metaMessage) bool { return s.message(e) })
}

func (s *scanner) message(m *metaMessage) bool {
	return s.texts(
		textField{"id", &m.ID},
		textField{"from", &m.From},
		textField{"from_user_id", &m.FromUserID},
	)
}

func (s *scanner) statuses(dst *[]metaStatus) bool {
	return list(s, dst, func(e *metaStatus) bool { return s.status(e) })
}

func (s *scanner) status(st *metaStatus) bool {
	return s.texts(
		textField{"id", &st.ID},
		textField{"status", &st.Status},
		textField{"recipient_id", &st.RecipientID},
		textField{"recipient_user_id", &st.RecipientUserID},
	)
}

// gupshup reads a Gupshup callback: gupshupPayload embeds metaPayload, whose members encoding/json
// reads at the top level beside the v2 ones.
func (s *scanner) gupshup(p *gupshupPayload) bool {
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "object"):
			return s.text(&p.Object)
		case keyIs(key, "gs_app_id"):
			return s.text(&p.GSAppID)
		case keyIs(key, "entry"):
			return s.entries(&p.Entry)
		case keyIs(key, "app"):
			return s.text(&p.App)
		case keyIs(key, "type"):
			return s.text(&p.Type)
		case keyIs(key, "payload"):
			return s.gupshupV2(p)
		}
		return s.skip()
	})
}

// gupshupV2 reads p.Payload.
func (s *scanner) gupshupV2(p *gupshupPayload) bool {
	pl := &p.Payload
	return s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "id"):
			return s.text(&pl.ID)
		case keyIs(key, "type"):
			return s.text(&pl.Type)
		case keyIs(key, "source"):
			return s.text(&pl.Source)
		case keyIs(key, "destination"):
			return s.text(&pl.Destination)
		case keyIs(key, "phone"):
			return s.text(&pl.Phone)
		case keyIs(key, "sender"):
			return s.gupshupSender(p)
		}
		return s.skip()
	})
}

// gupshupSender reads p.Payload.Sender.
func (s *scanner) gupshupSender(p *gupshupPayload) bool {
	return s.texts(
		textField{"phone", &p.Payload.Sender.Phone},
	)
}

// list reads a JSON array into *dst, one element with elem each, reusing the slice decoded before
// (see listStart, listElem, listEnd).
func list[E any](s *scanner, dst *[]E, elem func(*E) bool) bool {
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
		if !elem(&v[i]) {
			return false
		}
		i++
	}
	*dst = listEnd(v, i)
	return true
}

// object reads a JSON object, handing each member's key to field, which reads the member's value
// (skipping what it does not hold) and reports false on malformed input. A value that is not an
// object is skipped (see structStart).
func (s *scanner) object(field func(key []byte) bool) bool {
	if obj, ok := s.structStart(); !obj || !ok {
		return ok
	}
	for first := true; ; first = false {
		key, done, ok := s.member(first)
		if done || !ok {
			return ok
		}
		if !field(key) {
			return false
		}
	}
}

// textField is an object member read as a text.
type textField struct {
	name string
	dst  *text
}

// texts reads an object whose members of interest are all texts (first
// match in order, as a switch would); it skips the others.
func (s *scanner) texts(fields ...textField) bool {
	return s.object(func(key []byte) bool {
		for _, f := range fields {
			if keyIs(key, f.name) {
				return s.text(f.dst)
			}
		}
		return s.skip()
	})
}
