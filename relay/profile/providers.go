package profile

import (
	"bytes"
	"cmp"
	"net/http"
	"net/url"
	"strings"
)

// This file holds one small extract function per provider besides Meta (meta.go). Each reads only
// the fields it needs; everything else in the payload is ignored. Order keys name the end user:
// the sender of an inbound message, the recipient of a delivery report, so that a customer's
// messages and the reports on the replies they get stay in one ordered stream.

// twilioFields are the parameters Twilio posts (form-encoded) to messaging webhooks and status
// callbacks; the same names, in camelCase, appear in Event Streams' JSON data (encoding/json
// matches names case-insensitively).
type twilioFields struct {
	MessageSid    text  `json:"messageSid"`
	SmsSid        text  `json:"smsSid"`
	MessageStatus text  `json:"messageStatus"`
	SmsStatus     text  `json:"smsStatus"`
	From          text  `json:"from"`
	To            text  `json:"to"`
	AccountSid    text  `json:"accountSid"`
	Body          *text `json:"body"`
}

// twilioEvent is one Event Streams CloudEvent; a flat JSON object of twilioFields decodes into the
// embedded fields with Data nil.
type twilioEvent struct {
	Type text          `json:"type"`
	Data *twilioFields `json:"data"`
	twilioFields
}

// extractTwilio reads a Twilio messaging callback: form parameters in the body (POST) or the
// query (GET), or Event Streams JSON.
//
// Event id: MessageSid (or SmsSid) + ":" + MessageStatus (or SmsStatus) when present. Order key:
// From for an incoming message (status received/receiving, or a Body without a status), To for a
// status callback. Fields: To, From, AccountSid.
func extractTwilio(r *Request, _ Options) Result {
	if looksJSON(r.Body) {
		return extractTwilioJSON(r.Body)
	}
	vals := url.Values{}
	for k, v := range r.Query {
		vals[k] = v
	}
	if len(r.Body) > 0 {
		// A malformed pair is skipped; the well-formed ones still count.
		form, _ := url.ParseQuery(string(r.Body))
		for k, v := range form {
			vals[k] = v
		}
	}
	f := twilioFields{
		MessageSid:    text(vals.Get("MessageSid")),
		SmsSid:        text(cmp.Or(vals.Get("SmsSid"), vals.Get("SmsMessageSid"))),
		MessageStatus: text(vals.Get("MessageStatus")),
		SmsStatus:     text(vals.Get("SmsStatus")),
		From:          text(vals.Get("From")),
		To:            text(vals.Get("To")),
		AccountSid:    text(vals.Get("AccountSid")),
	}
	if vals.Has("Body") {
		b := text(vals.Get("Body"))
		f.Body = &b
	}
	var all ids
	res, ok := f.item(&all, "")
	if !ok {
		return Result{Kind: KindUnknown}
	}
	res.EventID = all.String()
	return res
}

// item adds one Twilio message's id to all and returns its order key, fields and kind; ok is false
// when it carries no message sid. eventType is the CloudEvent type, if any.
func (f *twilioFields) item(all *ids, eventType string) (Result, bool) {
	sid := cmp.Or(string(f.MessageSid), string(f.SmsSid))
	if sid == "" {
		return Result{}, false
	}
	status := cmp.Or(string(f.MessageStatus), string(f.SmsStatus))
	inbound := strings.Contains(eventType, "inbound-message")
	switch strings.ToLower(status) {
	case "received", "receiving":
		inbound = true
	case "":
		inbound = inbound || f.Body != nil
		if inbound {
			status = "received"
		}
	}
	all.add(sid, status)
	res := Result{
		Kind:     KindStatus,
		OrderKey: string(f.To),
		Fields:   fields("To", string(f.To), "From", string(f.From), "AccountSid", string(f.AccountSid)),
	}
	if inbound {
		res.Kind, res.OrderKey = KindMessage, string(f.From)
	}
	return res, true
}

func extractTwilioJSON(body []byte) Result {
	var events []twilioEvent
	if bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
		var one twilioEvent
		if !decodeJSON(body, &one) {
			return Result{Kind: KindUnknown}
		}
		events = []twilioEvent{one}
	} else if !decodeJSON(body, &events) {
		return Result{Kind: KindUnknown}
	}
	var all ids
	var res Result
	found := false
	for i := range events {
		f := &events[i].twilioFields
		if events[i].Data != nil {
			f = events[i].Data
		}
		r, ok := f.item(&all, string(events[i].Type))
		if !ok {
			all.missing = true
			continue
		}
		if !found {
			res, found = r, true
		}
	}
	if !found {
		return Result{Kind: KindUnknown}
	}
	res.EventID = all.String()
	return res
}

// infobipPayload is an Infobip callback: inbound messages and delivery/seen reports share the
// `results[]` envelope.
type infobipPayload struct {
	Results []struct {
		MessageID text `json:"messageId"`
		From      text `json:"from"`
		To        text `json:"to"`
		Status    *struct {
			GroupName text `json:"groupName"`
			Name      text `json:"name"`
		} `json:"status"`
		SeenAt text `json:"seenAt"`
	} `json:"results"`
}

// extractInfobip reads an Infobip callback.
//
// Event id: results[].messageId, + ":" + status.name (or status.groupName) for delivery reports
// and ":SEEN" for seen reports; all results joined with ",". Order key: the first result's end
// user, that is `from` of an inbound message and `to` of a report (on a report, `to` is the end
// user the business wrote to). Fields: to, from of the first result.
func extractInfobip(r *Request, _ Options) Result {
	var p infobipPayload
	if !decodeJSON(r.Body, &p) || len(p.Results) == 0 {
		return Result{Kind: KindUnknown}
	}
	var all ids
	var res Result
	for i, it := range p.Results {
		kind, key := KindMessage, string(it.From)
		switch {
		case it.Status != nil:
			all.addStatus(string(it.MessageID), cmp.Or(string(it.Status.Name), string(it.Status.GroupName)))
			kind, key = KindStatus, string(it.To)
		case it.SeenAt != "":
			all.add(string(it.MessageID), "SEEN")
			kind, key = KindStatus, string(it.To)
		default:
			all.add(string(it.MessageID))
		}
		if i == 0 {
			res = Result{Kind: kind, OrderKey: key, Fields: fields("to", string(it.To), "from", string(it.From))}
		}
	}
	res.EventID = all.String()
	return res
}

// gupshupPayload is a Gupshup WhatsApp callback in the v2 format (`type` "message",
// "message-event", "user-event", ...). The v3 format is Meta's (metaPayload with gs_app_id).
type gupshupPayload struct {
	metaPayload      // v3
	App         text `json:"app"`
	Type        text `json:"type"`
	Payload     struct {
		ID          text `json:"id"`
		Type        text `json:"type"`
		Source      text `json:"source"`
		Destination text `json:"destination"`
		Phone       text `json:"phone"`
		Sender      struct {
			Phone text `json:"phone"`
		} `json:"sender"`
	} `json:"payload"`
}

// extractGupshup reads a Gupshup WhatsApp callback.
//
// v2: event id payload.id for a message, payload.id + ":" + payload.type for a message-event
// (enqueued, sent, delivered, read, failed); none for user-events and billing-events. Order key:
// payload.source or payload.sender.phone (messages), payload.destination (message-events),
// payload.phone (user-events). Fields: app, source.
// v3 (Meta's format with gs_app_id): the Meta rules, with app = gs_app_id.
//
// The body is read by scanGupshup, which gives exactly what encoding/json would decode into
// gupshupPayload.
func extractGupshup(r *Request, _ Options) Result {
	var p gupshupPayload
	if scanGupshup(r.Body, &p) {
		if res := p.classify(); res.Kind != KindUnknown {
			return res
		}
	}
	return extractKoreGupshup(r)
}

// koreGupshupPayload is an inbound WhatsApp message in the shape of Gupshup's enterprise
// callback, as Kore.ai's WhatsApp channel receives it from Gupshup: flat fields, in a JSON body
// or as form / query parameters.
type koreGupshupPayload struct {
	WANumber  text `json:"waNumber"`
	Mobile    text `json:"mobile"`
	MessageID text `json:"messageId"`
	Type      text `json:"type"`
}

// extractKoreGupshup reads the enterprise shape: route field waNumber (the business number),
// order key mobile (the customer), event id messageId when the callback carries one (the
// documented samples do not: then no de-duplication).
func extractKoreGupshup(r *Request) Result {
	var p koreGupshupPayload
	if looksJSON(r.Body) {
		if !decodeJSON(r.Body, &p) {
			return Result{Kind: KindUnknown}
		}
	} else {
		v := r.Query
		if form, err := url.ParseQuery(string(r.Body)); err == nil && form.Get("waNumber") != "" {
			v = form
		}
		p = koreGupshupPayload{WANumber: text(v.Get("waNumber")), Mobile: text(v.Get("mobile")),
			MessageID: text(v.Get("messageId")), Type: text(v.Get("type"))}
	}
	if p.WANumber == "" || p.Mobile == "" {
		return Result{Kind: KindUnknown}
	}
	return Result{Kind: KindMessage, EventID: string(p.MessageID), OrderKey: string(p.Mobile),
		Fields: fields("waNumber", string(p.WANumber))}
}

// classify classifies a decoded Gupshup callback.
func (p *gupshupPayload) classify() Result {
	if p.Object == metaObject {
		res := p.result()
		if p.GSAppID != "" {
			if res.Fields == nil {
				res.Fields = map[string]string{}
			}
			res.Fields["app"] = string(p.GSAppID)
		}
		return res
	}
	if p.App == "" || p.Type == "" {
		return Result{Kind: KindUnknown}
	}
	pl := &p.Payload
	res := Result{Fields: fields("app", string(p.App), "source", string(pl.Source))}
	switch p.Type {
	case "message":
		res.Kind = KindMessage
		res.EventID = string(pl.ID)
		res.OrderKey = cmp.Or(string(pl.Source), string(pl.Sender.Phone))
	case "message-event":
		var all ids
		all.addStatus(string(pl.ID), string(pl.Type))
		res.Kind, res.EventID, res.OrderKey = KindStatus, all.String(), string(pl.Destination)
	default:
		res.Kind = KindEvent
		res.OrderKey = string(pl.Phone)
	}
	return res
}

// karixMessage is the inbound message of a Karix callback, under `eventContent.message` or, in
// the older RCM layout, `message`.
type karixMessage struct {
	Channel   text `json:"channel"`
	From      text `json:"from"`
	To        text `json:"to"`
	Recipient struct {
		To text `json:"to"`
	} `json:"recipient"`
	Sender struct {
		From text `json:"from"`
	} `json:"sender"`
}

// karixPayload is a Karix (Tanla) WhatsApp callback: an inbound message carries
// eventContent.message (or message), a delivery event notificationAttributes; both carry
// events.mid.
type karixPayload struct {
	Channel      text          `json:"channel"`
	Message      *karixMessage `json:"message"`
	EventContent struct {
		Message *karixMessage `json:"message"`
	} `json:"eventContent"`
	Events struct {
		EventType text `json:"eventType"`
		MID       text `json:"mid"`
	} `json:"events"`
	NotificationAttributes *struct {
		Status text `json:"status"`
	} `json:"notificationAttributes"`
	Recipient struct {
		To text `json:"to"`
	} `json:"recipient"`
	Sender struct {
		From text `json:"from"`
	} `json:"sender"`
}

// extractKarix reads a Karix WhatsApp callback.
//
// Event id: events.mid, + ":" + notificationAttributes.status for delivery events. Order key: the
// inbound message's from (eventContent.message.from, or message.sender.from), or recipient.to of a
// delivery event. Fields: channel, from, to.
func extractKarix(r *Request, _ Options) Result {
	var p karixPayload
	if !decodeJSON(r.Body, &p) {
		return Result{Kind: KindUnknown}
	}
	if m := cmp.Or(p.EventContent.Message, p.Message); m != nil {
		from := cmp.Or(string(m.From), string(m.Sender.From))
		return Result{
			Kind:     KindMessage,
			EventID:  string(p.Events.MID),
			OrderKey: from,
			Fields: fields("channel", cmp.Or(string(m.Channel), string(p.Channel)), "from", from,
				"to", cmp.Or(string(m.To), string(m.Recipient.To))),
		}
	}
	if p.NotificationAttributes != nil {
		var all ids
		all.addStatus(string(p.Events.MID), string(p.NotificationAttributes.Status))
		return Result{
			Kind:     KindStatus,
			EventID:  all.String(),
			OrderKey: string(p.Recipient.To),
			Fields:   fields("channel", string(p.Channel), "from", string(p.Sender.From), "to", string(p.Recipient.To)),
		}
	}
	if p.Events.MID == "" {
		return Result{Kind: KindUnknown}
	}
	return Result{Kind: KindEvent, EventID: string(p.Events.MID)}
}

// netcorePayload is a Netcore WhatsApp callback: incoming_message[] or delivery_status[].
type netcorePayload struct {
	Incoming []struct {
		MessageID text `json:"message_id"`
		From      text `json:"from"`
		To        text `json:"to"`
	} `json:"incoming_message"`
	Delivery []struct {
		NCMessageID text `json:"ncmessage_id"`
		Recipient   text `json:"recipient"`
		Status      text `json:"status"`
	} `json:"delivery_status"`
}

// extractNetcore reads a Netcore WhatsApp callback.
//
// Event id: incoming_message[].message_id, or delivery_status[].ncmessage_id + ":" + status; all
// items joined. Order key: from of the first incoming message, recipient of the first delivery
// status. Fields: from, to (incoming), recipient (delivery).
func extractNetcore(r *Request, _ Options) Result {
	var p netcorePayload
	if !decodeJSON(r.Body, &p) || len(p.Incoming)+len(p.Delivery) == 0 {
		return Result{Kind: KindUnknown}
	}
	var all ids
	var res Result
	for i, m := range p.Incoming {
		all.add(string(m.MessageID))
		if i == 0 {
			res = Result{Kind: KindMessage, OrderKey: string(m.From), Fields: fields("from", string(m.From), "to", string(m.To))}
		}
	}
	for i, d := range p.Delivery {
		all.addStatus(string(d.NCMessageID), string(d.Status))
		if i == 0 && len(p.Incoming) == 0 {
			res = Result{Kind: KindStatus, OrderKey: string(d.Recipient), Fields: fields("recipient", string(d.Recipient))}
		}
	}
	res.EventID = all.String()
	return res
}

// webexPayload is a Webex Connect (formerly imiconnect) outbound webhook: WhatsApp incoming
// messages in Meta's item shape beside appId, or a deliveryInfoNotification receipt.
type webexPayload struct {
	AppID text `json:"appId"`
	// Event, TID and WAID are the flat MO/postback notification: event "MO" (an incoming
	// message) or "postback" (a button or list reply), the transaction id tid, the sender waid.
	Event text `json:"event"`
	TID   text `json:"tid"`
	WAID  text `json:"waid"`
	metaValue
	DeliveryInfoNotification *struct {
		DeliveryInfo struct {
			DeliveryStatus text `json:"deliveryStatus"`
			Destination    text `json:"destination"`
		} `json:"deliveryInfo"`
		TransID text `json:"transid"`
	} `json:"deliveryInfoNotification"`
}

// extractWebex reads a Webex Connect outbound webhook.
//
// Event id: messages[].id (or statuses[].id + ":" + status), all joined; for a delivery receipt,
// deliveryInfoNotification.transid + ":" + deliveryStatus; for an MO or postback notification
// (event "MO" / "postback"), tid. Order key: the first message's from (or status's
// recipient_id); a receipt's destination; an MO's or postback's waid. Fields: appId.
func extractWebex(r *Request, _ Options) Result {
	var p webexPayload
	if !decodeJSON(r.Body, &p) {
		return Result{Kind: KindUnknown}
	}
	if n := p.DeliveryInfoNotification; n != nil {
		var all ids
		all.addStatus(string(n.TransID), string(n.DeliveryInfo.DeliveryStatus))
		return Result{
			Kind:     KindStatus,
			EventID:  all.String(),
			OrderKey: string(n.DeliveryInfo.Destination),
			Fields:   fields("appId", string(p.AppID)),
		}
	}
	if ev := strings.ToLower(string(p.Event)); (ev == "mo" || ev == "postback") && (p.TID != "" || p.WAID != "") {
		return Result{Kind: KindMessage, EventID: string(p.TID), OrderKey: string(p.WAID),
			Fields: fields("appId", string(p.AppID))}
	}
	if len(p.Messages)+len(p.Statuses) == 0 {
		if p.AppID == "" {
			return Result{Kind: KindUnknown}
		}
		return Result{Kind: KindEvent, Fields: fields("appId", string(p.AppID))}
	}
	// Reuse Meta's item rules on a one-change payload.
	m := metaPayload{Object: metaObject, Entry: []metaEntry{{Changes: []metaChange{{Value: p.metaValue}}}}}
	res := m.result()
	res.Fields = fields("appId", string(p.AppID))
	return res
}

// vonagePayload is a Vonage Messages API inbound message or message status.
type vonagePayload struct {
	MessageUUID text `json:"message_uuid"`
	From        text `json:"from"`
	To          text `json:"to"`
	Channel     text `json:"channel"`
	Status      text `json:"status"`
	WhatsApp    struct {
		Recipient struct {
			UserID text `json:"user_id"`
		} `json:"recipient"`
	} `json:"whatsapp"`
}

// extractVonage reads a Vonage Messages API callback.
//
// Event id: message_uuid, + ":" + status for status callbacks. Order key: from (inbound), to
// (status), falling back to whatsapp.recipient.user_id (a business-scoped user id) when to is
// empty. Fields: to, from, channel.
func extractVonage(r *Request, _ Options) Result {
	var p vonagePayload
	if !decodeJSON(r.Body, &p) || p.MessageUUID == "" {
		return Result{Kind: KindUnknown}
	}
	res := Result{Fields: fields("to", string(p.To), "from", string(p.From), "channel", string(p.Channel))}
	if p.Status != "" {
		res.Kind, res.OrderKey = KindStatus, cmp.Or(string(p.To), string(p.WhatsApp.Recipient.UserID))
		res.EventID = string(p.MessageUUID) + ":" + string(p.Status)
	} else {
		res.Kind, res.OrderKey = KindMessage, string(p.From)
		res.EventID = string(p.MessageUUID)
	}
	return res
}

// messageBirdPayload is a MessageBird (Bird) Conversations API webhook.
type messageBirdPayload struct {
	Type    text `json:"type"`
	Contact struct {
		ID     text `json:"id"`
		MSISDN text `json:"msisdn"`
	} `json:"contact"`
	Conversation struct {
		ContactID text `json:"contactId"`
	} `json:"conversation"`
	Message *struct {
		ID        text `json:"id"`
		Platform  text `json:"platform"`
		ChannelID text `json:"channelId"`
		Direction text `json:"direction"`
		Status    text `json:"status"`
	} `json:"message"`
}

// extractMessageBird reads a MessageBird Conversations API webhook (message.created,
// message.updated).
//
// Event id: message.id + ":" + message.status (message.updated repeats the id). Order key:
// contact.msisdn, else contact.id, else conversation.contactId (the contact object is not in
// every payload). Fields: channelId, platform. Kind: message when message.direction is
// "received", else status.
func extractMessageBird(r *Request, _ Options) Result {
	var p messageBirdPayload
	if !decodeJSON(r.Body, &p) || p.Message == nil || p.Message.ID == "" {
		if p.Type != "" {
			return Result{Kind: KindEvent, OrderKey: p.contactKey()}
		}
		return Result{Kind: KindUnknown}
	}
	m := p.Message
	var all ids
	all.add(string(m.ID), string(m.Status))
	kind := KindStatus
	if m.Direction == "received" {
		kind = KindMessage
	}
	return Result{
		Kind:     kind,
		EventID:  all.String(),
		OrderKey: p.contactKey(),
		Fields:   fields("channelId", string(m.ChannelID), "platform", string(m.Platform)),
	}
}

func (p *messageBirdPayload) contactKey() string {
	return cmp.Or(string(p.Contact.MSISDN), string(p.Contact.ID), string(p.Conversation.ContactID))
}

type sinchChannelIdentity struct {
	Channel  text `json:"channel"`
	Identity text `json:"identity"`
}

// sinchPayload is a Sinch Conversation API callback (MESSAGE_INBOUND, MESSAGE_DELIVERY, ...).
type sinchPayload struct {
	AppID     text `json:"app_id"`
	ProjectID text `json:"project_id"`
	Message   *struct {
		ID              text                 `json:"id"`
		ContactID       text                 `json:"contact_id"`
		ChannelIdentity sinchChannelIdentity `json:"channel_identity"`
	} `json:"message"`
	Report *struct {
		MessageID       text                 `json:"message_id"`
		Status          text                 `json:"status"`
		ContactID       text                 `json:"contact_id"`
		ChannelIdentity sinchChannelIdentity `json:"channel_identity"`
	} `json:"message_delivery_report"`
}

// extractSinch reads a Sinch Conversation API callback.
//
// Event id: message.id (inbound), or message_delivery_report.message_id + ":" + status. Order
// key: contact_id, else channel_identity.identity. Fields: app_id, project_id, channel
// (channel_identity.channel).
func extractSinch(r *Request, _ Options) Result {
	var p sinchPayload
	if !decodeJSON(r.Body, &p) || p.AppID == "" && p.Message == nil && p.Report == nil {
		return Result{Kind: KindUnknown}
	}
	res := Result{Kind: KindEvent, Fields: fields("app_id", string(p.AppID), "project_id", string(p.ProjectID))}
	var ci sinchChannelIdentity
	switch {
	case p.Message != nil:
		res.Kind = KindMessage
		res.EventID = string(p.Message.ID)
		res.OrderKey = cmp.Or(string(p.Message.ContactID), string(p.Message.ChannelIdentity.Identity))
		ci = p.Message.ChannelIdentity
	case p.Report != nil:
		var all ids
		all.addStatus(string(p.Report.MessageID), string(p.Report.Status))
		res.Kind = KindStatus
		res.EventID = all.String()
		res.OrderKey = cmp.Or(string(p.Report.ContactID), string(p.Report.ChannelIdentity.Identity))
		ci = p.Report.ChannelIdentity
	}
	if ci.Channel != "" {
		if res.Fields == nil {
			res.Fields = map[string]string{}
		}
		res.Fields["channel"] = string(ci.Channel)
	}
	return res
}

// extractStandard reads a Standard Webhooks request: the event id is the webhook-id header (the
// same on every retry). The specification names no sender, so there is no order key unless the
// channel names an order_key_header. Fields: type, from a JSON body {"type": ..., "timestamp":
// ..., "data": ...}. Kind: event when the body is such an object, else unknown (the webhook-id
// still counts).
func extractStandard(r *Request, o Options) Result {
	res := Result{Kind: KindUnknown, EventID: headerValue(r.Header, "webhook-id")}
	if o.OrderKeyHeader != "" {
		res.OrderKey = headerValue(r.Header, o.OrderKeyHeader)
	}
	var p struct {
		Type text `json:"type"`
	}
	if looksJSON(r.Body) && decodeJSON(r.Body, &p) && p.Type != "" {
		res.Kind = KindEvent
		res.Fields = fields("type", string(p.Type))
	}
	return res
}

// extractGeneric takes the event id and order key from the request headers named by the
// channel's event_id_header and order_key_header, when set; it never reads the body. Kind: event.
func extractGeneric(r *Request, o Options) Result {
	res := Result{Kind: KindEvent}
	if o.EventIDHeader != "" {
		res.EventID = headerValue(r.Header, o.EventIDHeader)
	}
	if o.OrderKeyHeader != "" {
		res.OrderKey = headerValue(r.Header, o.OrderKeyHeader)
	}
	return res
}

// headerValue returns the first value of a header, trimmed of surrounding white space.
func headerValue(h http.Header, name string) string {
	return strings.TrimSpace(h.Get(name))
}
