package profile

import "cmp"

// metaPayload is the part of a WhatsApp Cloud API webhook (object "whatsapp_business_account",
// entry[].changes[].value) that carries ids, senders and routing fields. Gupshup's v3 callbacks
// use the same shape with the app id beside it.
type metaPayload struct {
	Object  text        `json:"object"`
	GSAppID text        `json:"gs_app_id"` // Gupshup v3 only
	Entry   []metaEntry `json:"entry"`
}

type metaEntry struct {
	ID      text         `json:"id"`
	Changes []metaChange `json:"changes"`
}

type metaChange struct {
	Field text      `json:"field"`
	Value metaValue `json:"value"`
}

type metaValue struct {
	Metadata metaMetadata  `json:"metadata"`
	Messages []metaMessage `json:"messages"`
	Statuses []metaStatus  `json:"statuses"`
}

type metaMetadata struct {
	DisplayPhoneNumber text `json:"display_phone_number"`
	PhoneNumberID      text `json:"phone_number_id"`
}

type metaMessage struct {
	ID         text `json:"id"`
	From       text `json:"from"`
	FromUserID text `json:"from_user_id"`
}

type metaStatus struct {
	ID              text `json:"id"`
	Status          text `json:"status"`
	RecipientID     text `json:"recipient_id"`
	RecipientUserID text `json:"recipient_user_id"`
}

// metaObject is the "object" of a WhatsApp Business Account webhook.
const metaObject = "whatsapp_business_account"

// extractMeta reads a WhatsApp Cloud API webhook.
//
// Event id: messages[].id, or statuses[].id + ":" + status (sent, delivered and read of one
// message share its id); for several items (entries, changes, items) every item's id joined with
// ",". Order key: the first item's from (messages) or recipient_id (statuses), falling back to
// from_user_id / recipient_user_id (business-scoped user ids). Fields: phone_number_id and
// display_phone_number (value.metadata) and waba_id (entry[].id) of the first change.
//
// The body is read by scanMeta, which gives exactly what encoding/json would decode into
// metaPayload, in one pass and without reflection.
func extractMeta(r *Request, _ Options) Result {
	var p metaPayload
	if !scanMeta(r.Body, &p) || p.Object != metaObject {
		return Result{Kind: KindUnknown}
	}
	return p.result()
}

func (p *metaPayload) result() Result {
	res := Result{Kind: KindEvent}
	var all ids
	firstChange := true
	firstItem := true
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			v := &c.Value
			if firstChange {
				firstChange = false
				res.Fields = fields(
					"phone_number_id", string(v.Metadata.PhoneNumberID),
					"display_phone_number", string(v.Metadata.DisplayPhoneNumber),
					"waba_id", string(e.ID),
				)
			}
			for _, m := range v.Messages {
				all.add(string(m.ID))
				if firstItem {
					firstItem = false
					res.Kind = KindMessage
					res.OrderKey = cmp.Or(string(m.From), string(m.FromUserID))
				}
			}
			for _, s := range v.Statuses {
				all.addStatus(string(s.ID), string(s.Status))
				if firstItem {
					firstItem = false
					res.Kind = KindStatus
					res.OrderKey = cmp.Or(string(s.RecipientID), string(s.RecipientUserID))
				}
			}
		}
	}
	res.EventID = all.String()
	return res
}
