package quarantine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Record is one kept callback: the request exactly as it arrived, with what
// re-verifying it needs (method, request URI with its raw query, Host,
// headers, body, client address, client certificate) and why it was refused.
type Record struct {
	// ID identifies the record across channels and restarts: 16 hex digits
	// that sort in the order records were kept.
	ID string
	// Channel is the channel the callback was sent to.
	Channel string
	// ReceivedAt is when the callback arrived (UTC).
	ReceivedAt time.Time
	// Reason is the auth failure reason (bad_signature, bad_credentials,
	// expired_credential, clock_skew or bad_claims).
	Reason string
	// Method is the HTTP method.
	Method string
	// RequestURI is the path and raw query as received.
	RequestURI string
	// Host is the Host header the request was sent to.
	Host string
	// RemoteAddr is the TCP peer ("ip:port").
	RemoteAddr string
	// Header holds the original headers, signatures and credentials
	// included (re-verification needs them).
	Header http.Header
	// Body is the raw body.
	Body []byte
	// PeerCert is the DER of the client certificate's leaf under mTLS
	// (for a channel's client_names), or nil.
	PeerCert []byte
}

// Record framing in a segment file:
//
//	magic 'Q' (1) | version 1 (1) | payload length (4, big endian) | CRC-32C of payload (4) | payload
//
// payload: seq (8) | received at, Unix ns (8) | reason | method | request URI | host | remote
// addr | peer cert | header count, then each name and its value count and values | body; every
// string and byte slice is a uvarint length followed by its bytes.
const (
	frameMagic   = 'Q'
	frameVersion = 1
	frameHeader  = 10
	// maxPayload bounds one record when reading a file, so that a corrupt
	// length cannot make the reader allocate gigabytes.
	maxPayload = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errCorrupt = errors.New("quarantine: corrupt record")

// encode frames rec with its sequence number seq.
func encode(seq uint64, rec *Record) []byte {
	n := frameHeader + 16 + 6*binary.MaxVarintLen32 + len(rec.Reason) + len(rec.Method) + len(rec.RequestURI) +
		len(rec.Host) + len(rec.RemoteAddr) + len(rec.PeerCert) + len(rec.Body) + binary.MaxVarintLen32
	for k, vs := range rec.Header {
		n += len(k) + 2*binary.MaxVarintLen32
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen32
		}
	}
	b := make([]byte, frameHeader, n)
	b[0], b[1] = frameMagic, frameVersion
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(rec.ReceivedAt.UnixNano()))
	for _, s := range []string{rec.Reason, rec.Method, rec.RequestURI, rec.Host, rec.RemoteAddr} {
		b = appendString(b, s)
	}
	b = appendBytes(b, rec.PeerCert)
	b = binary.AppendUvarint(b, uint64(len(rec.Header)))
	for _, k := range slices.Sorted(maps.Keys(rec.Header)) { // sorted: one record, one encoding
		vs := rec.Header[k]
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = appendBytes(b, rec.Body)
	payload := b[frameHeader:]
	binary.BigEndian.PutUint32(b[2:6], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[6:10], crc32.Checksum(payload, crcTable))
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// frameLen checks a frame header and returns its payload length.
func frameLen(h []byte) (int, error) {
	if len(h) < frameHeader || h[0] != frameMagic || h[1] != frameVersion {
		return 0, errCorrupt
	}
	n := binary.BigEndian.Uint32(h[2:6])
	if n < 16 || n > maxPayload {
		return 0, errCorrupt
	}
	return int(n), nil
}

// decodePayload checks the payload's CRC against the frame header h and
// decodes it. The record's Body aliases payload.
func decodePayload(h, payload []byte) (uint64, *Record, error) {
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(h[6:10]) {
		return 0, nil, errCorrupt
	}
	d := decoder{b: payload}
	seq := d.u64()
	ns := int64(d.u64())
	rec := &Record{ReceivedAt: time.Unix(0, ns).UTC()}
	rec.Reason = d.str()
	rec.Method = d.str()
	rec.RequestURI = d.str()
	rec.Host = d.str()
	rec.RemoteAddr = d.str()
	if pc := d.bytes(); len(pc) > 0 {
		rec.PeerCert = pc
	}
	nh := d.uvarint()
	if nh > uint64(len(d.b)) {
		d.err = errCorrupt
	}
	if d.err == nil && nh > 0 {
		rec.Header = make(http.Header, nh)
	}
	for i := uint64(0); i < nh && d.err == nil; i++ {
		k := d.str()
		nv := d.uvarint()
		if nv > uint64(len(d.b)) {
			d.err = errCorrupt
			break
		}
		vs := make([]string, 0, nv)
		for j := uint64(0); j < nv && d.err == nil; j++ {
			vs = append(vs, d.str())
		}
		rec.Header[k] = vs
	}
	rec.Body = d.bytes()
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return 0, nil, d.err
	}
	rec.ID = FormatID(seq)
	return seq, rec, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.bytes()) }

// FormatID renders a sequence number as a record id.
func FormatID(seq uint64) string { return fmt.Sprintf("%016x", seq) }

// ParseID is FormatID's inverse.
func ParseID(id string) (uint64, error) {
	if len(id) != 16 {
		return 0, ErrNotFound
	}
	v, err := strconv.ParseUint(id, 16, 64)
	if err != nil {
		return 0, ErrNotFound
	}
	return v, nil
}
