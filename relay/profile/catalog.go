package profile

import (
	"embed"
	"net/http"
	"time"
)

// fixtures holds the providers' published sample payloads; the samples for simulate are read from
// it, and the tests classify every file in it. embed.FS is read-only. The fuzz corpus under
// testdata/fuzz is not a fixture and stays out.
//
//go:embed testdata/README.md testdata/*/*.json testdata/*/*.form
var fixtures embed.FS

// Provider names.
const (
	nameMeta        = "meta"
	nameTwilio      = "twilio"
	nameInfobip     = "infobip"
	nameGupshup     = "gupshup"
	nameKarix       = "karix"
	nameNetcore     = "netcore"
	nameWebex       = "webex"
	nameVonage      = "vonage"
	nameMessageBird = "messagebird"
	nameSinch       = "sinch"
	nameStandard    = "standard"
	nameGeneric     = "generic"
)

const (
	ctJSON = "application/json"
	ctForm = "application/x-www-form-urlencoded"
)

// twiML is the empty TwiML document Twilio expects in answer to a messaging callback.
const twiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

// catalog builds every profile afresh, in the order of the specification. It is the single table
// of provider data; Lookup and Names read it.
func catalog() []*Profile {
	ok := Response{Status: http.StatusOK}
	return []*Profile{
		{
			Name:        nameMeta,
			DefaultAuth: AuthHMAC,
			HMAC:        &HMACDefaults{Header: "X-Hub-Signature-256", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256="},
			Success:     ok,
			RouteFields: []string{"phone_number_id", "display_phone_number", "waba_id"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "meta/inbound_text.json",
				"status", ctJSON, "meta/status_delivered.json",
			),
			extract: extractMeta,
		},
		{
			Name:        nameTwilio,
			DefaultAuth: AuthTwilio,
			Success:     Response{Status: http.StatusOK, ContentType: "text/xml", Body: []byte(twiML)},
			RouteFields: []string{"To", "From", "AccountSid"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctForm, "twilio/inbound_whatsapp.form",
				"status", ctForm, "twilio/status_delivered.form",
			),
			extract: extractTwilio,
		},
		{
			Name:        nameInfobip,
			DefaultAuth: AuthBasic,
			HeaderName:  "AccountKey",
			Success:     ok,
			RouteFields: []string{"to", "from"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "infobip/inbound_text.json",
				"status", ctJSON, "infobip/report_delivered.json",
			),
			extract: extractInfobip,
		},
		{
			Name:        nameGupshup,
			DefaultAuth: AuthHeader,
			HeaderName:  "Authorization",
			Success:     ok,
			RouteFields: []string{"app", "source", "phone_number_id", "display_phone_number", "waba_id", "waNumber"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "gupshup/inbound_text_v2.json",
				"status", ctJSON, "gupshup/event_delivered_v2.json",
			),
			extract: extractGupshup,
		},
		{
			Name:        nameKarix,
			DefaultAuth: AuthHeader,
			HeaderName:  "Authorization",
			Success:     ok,
			RouteFields: []string{"channel", "from", "to"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "karix/inbound_event_content.json",
				"status", ctJSON, "karix/delivery_delivered.json",
			),
			extract: extractKarix,
		},
		{
			Name:        nameNetcore,
			DefaultAuth: AuthHeader,
			HeaderName:  "Authorization",
			Success:     ok,
			RouteFields: []string{"from", "to", "recipient"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "netcore/incoming_text.json",
				"status", ctJSON, "netcore/delivery_status.json",
			),
			extract: extractNetcore,
		},
		{
			Name:        nameWebex,
			DefaultAuth: AuthHMAC,
			HMAC:        &HMACDefaults{Header: "X-Hub-Signature", Algorithm: "sha256", Encoding: "hex", Prefix: "sha256=", PrefixOptional: true},
			Success:     ok,
			RouteFields: []string{"appId"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "webex/inbound_text.json",
				"status", ctJSON, "webex/delivery_receipt.json",
			),
			extract: extractWebex,
		},
		{
			Name:        nameVonage,
			DefaultAuth: AuthJWT,
			JWT:         &JWTDefaults{Header: "Authorization", Scheme: "Bearer", Algorithms: []string{"HS256"}, PayloadHash: true, MaxAge: 5 * time.Minute},
			Success:     ok,
			RouteFields: []string{"to", "from", "channel"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "vonage/inbound_text.json",
				"status", ctJSON, "vonage/status_delivered.json",
			),
			extract: extractVonage,
		},
		{
			Name:        nameMessageBird,
			DefaultAuth: AuthJWT,
			JWT:         &JWTDefaults{Header: "MessageBird-Signature-JWT", Algorithms: []string{"HS256"}, PayloadHash: true, URLHash: true, MaxAge: 5 * time.Minute},
			Success:     ok,
			RouteFields: []string{"channelId", "platform"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "messagebird/message_created.json",
				"status", ctJSON, "messagebird/message_updated.json",
			),
			extract: extractMessageBird,
		},
		{
			Name: nameSinch,
			// Sinch's own HMAC (x-sinch-webhook-signature over body, nonce and timestamp) is not
			// a plain body HMAC; Basic credentials are what a relay in front of it can check.
			DefaultAuth: AuthBasic,
			Success:     ok,
			RouteFields: []string{"app_id", "project_id", "channel"},
			Ordered:     true,
			Samples: samples(
				"inbound", ctJSON, "sinch/message_inbound.json",
				"status", ctJSON, "sinch/delivery_report.json",
			),
			extract: extractSinch,
		},
		{
			Name:        nameStandard,
			DefaultAuth: AuthStandardWebhooks,
			Success:     ok,
			RouteFields: []string{"type"},
			Samples:     samples("inbound", ctJSON, "standard/contact_created.json"),
			extract:     extractStandard,
		},
		{
			Name:    nameGeneric,
			Success: ok,
			Samples: samples("inbound", ctJSON, "generic/event.json"),
			extract: extractGeneric,
		},
	}
}

// samples builds a Samples map from (name, content type, fixture path) triples.
func samples(triples ...string) map[string]Sample {
	m := make(map[string]Sample, len(triples)/3)
	for i := 0; i+2 < len(triples); i += 3 {
		body, err := fixtures.ReadFile("testdata/" + triples[i+2])
		if err != nil {
			// Unreachable for the paths listed in catalog: the embed would not compile without
			// the directory, and TestSamples reads every sample. Leave the sample out rather
			// than panic in a library.
			continue
		}
		m[triples[i]] = Sample{ContentType: triples[i+1], Body: body}
	}
	return m
}
