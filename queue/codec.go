package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key layout in Badger (all keys are short; the event record is the only large value):
//
//	m/instance                  8 random bytes: this database's instance id (part of every event id)
//	m/seq                       8 bytes big endian: the last sequence number handed out
//	e/<id>                      the event record (headers, body, ...)
//	p/<backend>\x00<id>         a pending delivery (delivery record)
//	z/<backend>\x00<id>         a dead letter (delivery record)
//	x/<channel>\x00<peid>       de-duplication entry (event id + creation time), Badger TTL = window
//	r/<deadline BE64><id>       retention deadline of a fully delivered event
//
// Event ids sort in arrival order, so a prefix scan of p/<backend>\x00 yields that backend's
// deliveries in arrival order, which is what the scheduler streams.
var (
	keyInstance   = []byte("m/instance")
	keySeq        = []byte("m/seq")
	prefixEvent   = []byte("e/")
	prefixPending = []byte("p/")
	prefixDead    = []byte("z/")
	prefixDedupe  = []byte("x/")
	prefixRetain  = []byte("r/")
)

const codecVersion = 1

var errCorrupt = errors.New("queue: corrupt record")

func eventKey(id string) []byte { return append(append([]byte{}, prefixEvent...), id...) }

func deliveryKey(prefix []byte, backend, id string) []byte {
	k := make([]byte, 0, len(prefix)+len(backend)+1+len(id))
	k = append(k, prefix...)
	k = append(k, backend...)
	k = append(k, 0)
	return append(k, id...)
}

// backendPrefix is the scan prefix of one backend's deliveries; "" is every backend's.
func backendPrefix(prefix []byte, backend string) []byte {
	k := append([]byte{}, prefix...)
	if backend == "" {
		return k
	}
	k = append(k, backend...)
	return append(k, 0)
}

// splitDeliveryKey returns the backend and event id of a p/ or z/ key.
func splitDeliveryKey(k []byte) (backend, id string, ok bool) {
	k = k[2:]
	for i, c := range k {
		if c == 0 {
			return string(k[:i]), string(k[i+1:]), true
		}
	}
	return "", "", false
}

func dedupeKey(channel, peid string) []byte {
	k := append([]byte{}, prefixDedupe...)
	k = append(k, channel...)
	k = append(k, 0)
	return append(k, peid...)
}

func retainKey(deadline time.Time, id string) []byte {
	k := append([]byte{}, prefixRetain...)
	k = binary.BigEndian.AppendUint64(k, uint64(deadline.UnixNano()))
	return append(k, id...)
}

func timeNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanoTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type reader struct {
	b   []byte
	err error
	// src, when set, holds the bytes being read as one string (from the start of b as first
	// given): string() then returns substrings of it instead of allocating each one.
	src string
	off int
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	r.off += n
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return ""
	}
	var s string
	if r.src != "" {
		s = r.src[r.off : r.off+int(n)]
	} else {
		s = string(r.b[:n])
	}
	r.b = r.b[n:]
	r.off += int(n)
	return s
}

func (r *reader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, r.string())
	}
	return out
}

// encodeEvent serialises everything but the id (which is the key).
func encodeEvent(ev *Event) []byte {
	size := 64 + len(ev.Channel) + len(ev.Provider) + len(ev.ProviderEventID) + len(ev.OrderKey) +
		len(ev.Method) + len(ev.Path) + len(ev.Body)
	for k, vs := range ev.Header {
		size += len(k) + 4
		for _, v := range vs {
			size += len(v) + 4
		}
	}
	for _, b := range ev.Backends {
		size += len(b) + 2
	}
	b := make([]byte, 0, size)
	b = append(b, codecVersion)
	b = putString(b, ev.Channel)
	b = putString(b, ev.Provider)
	b = putString(b, ev.ProviderEventID)
	b = putString(b, ev.OrderKey)
	b = binary.AppendVarint(b, timeNano(ev.ReceivedAt))
	b = putString(b, ev.Method)
	b = putString(b, ev.Path)
	b = binary.AppendUvarint(b, uint64(len(ev.Backends)))
	for _, be := range ev.Backends {
		b = putString(b, be)
	}
	b = binary.AppendUvarint(b, uint64(len(ev.Header)))
	for k, vs := range ev.Header {
		b = putString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = putString(b, v)
		}
	}
	return append(b, ev.Body...)
}

func decodeEvent(id string, b []byte) (*Event, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("decode event %s: %w", id, errCorrupt)
	}
	// Every string of the event is a substring of one copy of the record.
	r := reader{b: b[1:], src: string(b[1:])}
	ev := &Event{ID: id}
	ev.Channel = r.string()
	ev.Provider = r.string()
	ev.ProviderEventID = r.string()
	ev.OrderKey = r.string()
	ev.ReceivedAt = nanoTime(r.varint())
	ev.Method = r.string()
	ev.Path = r.string()
	ev.Backends = r.strings()
	nh := r.uvarint()
	if r.err == nil && nh > uint64(len(r.b)) {
		r.err = errCorrupt
	}
	if r.err == nil && nh > 0 {
		ev.Header = make(map[string][]string, nh)
		for range nh {
			k := r.string()
			ev.Header[k] = r.strings()
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode event %s: %w", id, r.err)
	}
	ev.Body = append([]byte(nil), r.b...)
	return ev, nil
}

// record is the state of one (event, backend) delivery, stored under p/ (pending) or z/ (dead).
// It carries what the scheduler and the dead-letter listing need without loading the event.
type record struct {
	Attempts       int
	FirstAttemptAt time.Time
	Due            time.Time
	ReceivedAt     time.Time
	DeadAt         time.Time
	OrderKey       string
	Channel        string
	Provider       string
	LastError      string
	Backends       []string // all the event's backends, to know when the event is no longer referenced
}

func (d *record) encode() []byte {
	b := make([]byte, 0, 48+len(d.OrderKey)+len(d.Channel)+len(d.Provider)+len(d.LastError)+16*len(d.Backends))
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, uint64(d.Attempts))
	b = binary.AppendVarint(b, timeNano(d.FirstAttemptAt))
	b = binary.AppendVarint(b, timeNano(d.Due))
	b = binary.AppendVarint(b, timeNano(d.ReceivedAt))
	b = binary.AppendVarint(b, timeNano(d.DeadAt))
	b = putString(b, d.OrderKey)
	b = putString(b, d.Channel)
	b = putString(b, d.Provider)
	b = putString(b, d.LastError)
	b = binary.AppendUvarint(b, uint64(len(d.Backends)))
	for _, be := range d.Backends {
		b = putString(b, be)
	}
	return b
}

func decodeRecord(b []byte) (*record, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("decode delivery: %w", errCorrupt)
	}
	r := reader{b: b[1:], src: string(b[1:])} // one allocation for every string
	d := &record{}
	d.Attempts = int(r.uvarint())
	d.FirstAttemptAt = nanoTime(r.varint())
	d.Due = nanoTime(r.varint())
	d.ReceivedAt = nanoTime(r.varint())
	d.DeadAt = nanoTime(r.varint())
	d.OrderKey = r.string()
	d.Channel = r.string()
	d.Provider = r.string()
	d.LastError = r.string()
	d.Backends = r.strings()
	if r.err != nil {
		return nil, fmt.Errorf("decode delivery: %w", r.err)
	}
	return d, nil
}

// dedupe entry value: creation time + original event id.
func encodeDedupe(id string, created time.Time) []byte {
	b := binary.AppendVarint(nil, created.UnixNano())
	return append(b, id...)
}

func decodeDedupe(b []byte) (string, time.Time, bool) {
	n, k := binary.Varint(b)
	if k <= 0 {
		return "", time.Time{}, false
	}
	return string(b[k:]), time.Unix(0, n), true
}
