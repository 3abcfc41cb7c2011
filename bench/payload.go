package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// benchSecret is the Meta app secret of the bench channel.
const benchSecret = "bench-meta-app-secret"

// bodySize is the size of every posted callback.
const bodySize = 1024

// The template of a Meta WhatsApp Cloud API text message. Its variable
// parts have a fixed width, so a body is the template with three fields
// overwritten in place: the sender (wa_id and from), the message id and
// the text's padding, which brings the body to exactly bodySize bytes.
const (
	senderMark = "SSSSSSSSSSSS"     // 12 digits
	idMark     = "IIIIIIIIIIIIIIII" // 16 hex digits
	idPrefix   = "wamid.BENCH"
	bodyMark   = "@PAD@"
)

// payload builds bodies and their signatures; one per worker (not safe for
// concurrent use).
type payload struct {
	tmpl      []byte
	senderOff []int
	idOff     int
	senders   uint64
	buf       []byte
	mac       hash.Hash
	sum       []byte
	sig       []byte
}

func baseTemplate(ts int64) string {
	return `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":` +
		`{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},` +
		`"contacts":[{"profile":{"name":"Bench Sender"},"wa_id":"` + senderMark + `"}],` +
		`"messages":[{"from":"` + senderMark + `","id":"` + idPrefix + idMark + `","timestamp":"` + strconv.FormatInt(ts, 10) + `",` +
		`"type":"text","text":{"body":"` + bodyMark + `"}}]},"field":"messages"}]}]}`
}

func newPayload(ts int64, senders int, secret string) *payload {
	t := baseTemplate(ts)
	pad := bodySize - (len(t) - len(bodyMark))
	if pad < 0 {
		panic("bench: template longer than the body size")
	}
	filler := strings.Repeat("Does it come in another color? ", pad/31+1)[:pad]
	t = strings.Replace(t, bodyMark, filler, 1)
	p := &payload{tmpl: []byte(t), senders: uint64(senders), mac: hmac.New(sha256.New, []byte(secret))}
	for off := 0; ; {
		i := strings.Index(t[off:], senderMark)
		if i < 0 {
			break
		}
		p.senderOff = append(p.senderOff, off+i)
		off += i + len(senderMark)
	}
	p.idOff = strings.Index(t, idMark)
	p.buf = make([]byte, len(p.tmpl))
	p.sig = make([]byte, 0, len("sha256=")+64)
	return p
}

// body returns the body of message seq (valid until the next call).
func (p *payload) body(seq uint64) []byte {
	copy(p.buf, p.tmpl)
	sender := 165055500000 + seq%p.senders
	for _, off := range p.senderOff {
		strconv.AppendUint(p.buf[off:off], sender, 10)
	}
	hexSeq(p.buf[p.idOff:p.idOff+16], seq)
	return p.buf
}

// sign returns the X-Hub-Signature-256 value of b (valid until the next call).
func (p *payload) sign(b []byte) []byte {
	p.mac.Reset()
	p.mac.Write(b)
	p.sum = p.mac.Sum(p.sum[:0])
	p.sig = append(p.sig[:0], "sha256="...)
	p.sig = hex.AppendEncode(p.sig, p.sum)
	return p.sig
}

func hexSeq(dst []byte, seq uint64) {
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		dst[i] = digits[seq&0xf]
		seq >>= 4
	}
}

// seqOf finds the message id in a delivered body and returns its sequence
// number.
func seqOf(body []byte) (uint64, error) {
	i := bytes.Index(body, []byte(`"id":"`+idPrefix))
	if i < 0 || i+6+len(idPrefix)+16 > len(body) {
		return 0, fmt.Errorf("no bench message id in the body")
	}
	h := body[i+6+len(idPrefix) : i+6+len(idPrefix)+16]
	return strconv.ParseUint(string(h), 16, 64)
}
