package profile

import (
	"embed"
	"net/http"
)

// fixtures holds the providers' published sample payloads; the samples for simulate are read from
// it, and the tests classify every file in it. embed.FS is read-only.
//
//go:embed testdata
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
