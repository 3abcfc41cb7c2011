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
