package quarantine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dir string, clock *fakeClock, channels map[string]Settings) *Manager {
	t.Helper()
	o := Options{SweepInterval: time.Hour}
	if clock != nil {
		o.Now = clock.now
	}
	m, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Configure(channels); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func sample(channel string, i int, at time.Time, bodySize int) *Record {
	body := bytes.Repeat([]byte{'x'}, bodySize)
	copy(body, fmt.Sprintf("%08d", i))
	return &Record{
		Channel: channel, ReceivedAt: at, Reason: "bad_signature", Method: "POST",
		RequestURI: fmt.Sprintf("/hooks/meta?n=%d", i), Host: "hooks.example.com", RemoteAddr: "192.0.2.7:4711",
		Header: http.Header{"X-Hub-Signature-256": {"sha256=00"}, "Content-Type": {"application/json"}, "Multi": {"a", "b"}},
		Body:   body,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 456789, time.UTC)
	for _, rec := range []*Record{
		sample("c", 1, at, 100),
		{ReceivedAt: at, Method: "POST", RequestURI: "/"},
		{ReceivedAt: at, Reason: "bad_claims", Method: "PUT", RequestURI: "/a?b=c", PeerCert: []byte{1, 2, 3}, Header: http.Header{"Empty": {}}},
	} {
		b := encode(42, rec)
		n, err := frameLen(b)
		if err != nil || n != len(b)-frameHeader {
			t.Fatalf("frameLen = %d, %v", n, err)
		}
		seq, got, err := decodePayload(b[:frameHeader], b[frameHeader:])
		if err != nil || seq != 42 {
			t.Fatalf("decode: %d %v", seq, err)
		}
		rec.ID = FormatID(42)
		got.Channel = rec.Channel // the directory names the channel, not the record
		if len(rec.Body) == 0 {
			rec.Body = got.Body // nil and empty are the same body
		}
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, rec)
		}
		// Any flipped byte is caught by the CRC.
		for i := frameHeader; i < len(b); i += 7 {
			c := bytes.Clone(b)
			c[i] ^= 0x20
			if _, _, err := decodePayload(c[:frameHeader], c[frameHeader:]); err == nil {
				t.Fatalf("flipped byte %d not detected", i)
			}
		}
	}
}

func TestAddListGetDeletePurgeAndRestart(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)}
	set := map[string]Settings{"meta": {MaxSize: 1 << 20, Keep: time.Hour}, "twilio/eu": {}}
	m := open(t, dir, clock, set)
	var ids []string
	for i := range 5 {
		clock.add(time.Second)
		id, ok := m.Add(sample("meta", i, clock.now(), 300))
		if !ok {
			t.Fatal("not kept")
		}
		ids = append(ids, id)
	}
	if _, ok := m.Add(sample("other", 0, clock.now(), 10)); ok {
		t.Fatal("kept for a channel without quarantine")
	}
	if id, ok := m.Add(sample("twilio/eu", 9, clock.now(), 10)); !ok {
		t.Fatal("twilio not kept")
	} else if rec, err := m.Get(id); err != nil || rec.Channel != "twilio/eu" || rec.RequestURI != "/hooks/meta?n=9" {
		t.Fatalf("get twilio: %+v %v", rec, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "twilio%2Feu")); err != nil {
		t.Fatalf("channel directory: %v", err)
	}
	list, err := m.List("meta", 0)
	if err != nil || len(list) != 5 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	for i, s := range list {
		if s.ID != ids[i] || s.Reason != "bad_signature" || s.BodyBytes != 300 || s.Channel != "meta" {
			t.Fatalf("summary %d: %+v", i, s)
		}
	}
	if l, _ := m.List("meta", 2); len(l) != 2 || l[0].ID != ids[0] {
		t.Fatalf("limit: %+v", l)
	}
	rec, err := m.Get(ids[2])
	if err != nil || !bytes.HasPrefix(rec.Body, []byte("00000002")) || rec.Header.Get("X-Hub-Signature-256") != "sha256=00" || len(rec.Header["Multi"]) != 2 {
		t.Fatalf("get: %+v %v", rec, err)
	}
	if err := m.Delete(ids[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ids[2]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}
	if err := m.Delete(ids[2]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := m.Get("zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}
	// Appends after a delete go on in the rewritten segment.
	clock.add(time.Second)
	last, _ := m.Add(sample("meta", 5, clock.now(), 300))

	// Files and directories are private.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})

	m.Close()
	m = open(t, dir, clock, set)
	list, _ = m.List("meta", 0)
	if len(list) != 5 || list[4].ID != last || list[2].ID != ids[3] {
		t.Fatalf("after restart: %+v", list)
	}
	// New ids stay above the old ones even if the clock went back.
	clock.add(-time.Hour)
	id, _ := m.Add(sample("meta", 6, clock.now().Add(2*time.Hour), 10))
	if id <= last {
		t.Fatalf("id %s not after %s", id, last)
	}
	if n, err := m.Purge("meta"); err != nil || n != 6 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if l, _ := m.List("meta", 0); len(l) != 0 {
		t.Fatalf("after purge: %d", len(l))
	}
	if _, err := m.Purge("other"); !errors.Is(err, ErrNoQuarantine) {
		t.Fatalf("purge other: %v", err)
	}
}

// A crash in the middle of an append leaves a torn record: it is cut off
// at the next open and what came before is kept.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	set := map[string]Settings{"c": {MaxSize: 1 << 20}}
	m := open(t, dir, nil, set)
	for i := range 3 {
		m.Add(sample("c", i, time.Now(), 100))
	}
	m.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "c", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	fi, _ := os.Stat(segs[0])
	os.Truncate(segs[0], fi.Size()-20)
	m = open(t, dir, nil, set)
	if l, _ := m.List("c", 0); len(l) != 2 {
		t.Fatalf("kept %d, want 2", len(l))
	}
	if _, ok := m.Add(sample("c", 3, time.Now(), 100)); !ok {
		t.Fatal("append after repair")
	}
	if l, _ := m.List("c", 0); len(l) != 3 {
		t.Fatalf("kept %d, want 3", len(l))
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// A flood of ten times max_size keeps the files within max_size, drops the
// oldest first, and does not grow the heap.
func TestFloodStaysWithinBoundAndMemory(t *testing.T) {
	dir := t.TempDir()
	const maxSize = 1 << 20
	m := open(t, dir, nil, map[string]Settings{"c": {MaxSize: maxSize}})
	add := func(i int) {
		if _, ok := m.Add(sample("c", i, time.Now(), 200)); !ok {
			t.Fatalf("record %d not kept", i)
		}
	}
	recSize := len(encode(1, sample("c", 0, time.Now(), 200)))
	perBound := maxSize / recSize
	i := 0
	for ; i < perBound; i++ { // fill once, then measure
		add(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for ; i < 10*perBound; i++ {
		add(i)
		if i%1000 == 0 {
			if size := dirSize(t, filepath.Join(dir, "c")); size > maxSize {
				t.Fatalf("after %d records: %d bytes on disk > %d", i, size, maxSize)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("records %d of %d bytes; heap in use before %d, after %d (growth %d)", i, recSize, before.HeapInuse, after.HeapInuse, growth)
	if growth > 256<<10 {
		t.Fatalf("heap grew by %d bytes over a flood of %d bytes", growth, 9*maxSize)
	}
	if size := dirSize(t, filepath.Join(dir, "c")); size > maxSize {
		t.Fatalf("%d bytes on disk > %d", size, maxSize)
	}
	st := m.Stats()[0]
	if st.Bytes > maxSize || st.Bytes < maxSize/2 || st.Dropped == 0 || int(st.Dropped)+st.Callbacks != i {
		t.Fatalf("stats %+v after %d records", st, i)
	}
	list, _ := m.List("c", 0)
	// The newest are kept, the oldest dropped, in order.
	first, lastRec := list[0], list[len(list)-1]
	if rec, _ := m.Get(lastRec.ID); !bytes.HasPrefix(rec.Body, fmt.Appendf(nil, "%08d", i-1)) {
		t.Fatalf("newest kept record is not the last one added")
	}
	rec, _ := m.Get(first.ID)
	var n int
	fmt.Sscanf(string(rec.Body[:8]), "%d", &n)
	if n != i-len(list) {
		t.Fatalf("oldest kept is record %d, want %d (the %d newest)", n, i-len(list), len(list))
	}
}

func TestKeepExpires(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	m := open(t, dir, clock, map[string]Settings{"c": {MaxSize: 1 << 20, Keep: time.Hour}})
	m.Add(sample("c", 0, clock.now(), 10))
	clock.add(40 * time.Minute)
	keep, _ := m.Add(sample("c", 1, clock.now(), 10))
	clock.add(30 * time.Minute)
	// The first is past keep: invisible at once, gone from disk at the sweep.
	if l, _ := m.List("c", 0); len(l) != 1 || l[0].ID != keep {
		t.Fatalf("list: %+v", l)
	}
	if st := m.Stats()[0]; st.Callbacks != 2 {
		t.Fatalf("before sweep: %+v", st)
	}
	m.Sweep()
	if st := m.Stats()[0]; st.Callbacks != 1 {
		t.Fatalf("after sweep: %+v", st)
	}
	clock.add(time.Hour)
	m.Sweep()
	if st := m.Stats()[0]; st.Callbacks != 0 || st.Bytes != 0 {
		t.Fatalf("after second sweep: %+v", st)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "c", "*")); len(segs) != 0 {
		t.Fatalf("files left: %v", segs)
	}
}

func TestRelease(t *testing.T) {
	m := open(t, t.TempDir(), nil, map[string]Settings{"c": {MaxSize: 256 << 10}})
	var want []string
	for i := range 600 { // several segments
		m.Add(sample("c", i, time.Now(), 1000))
	}
	list, _ := m.List("c", 0)
	var seen []string
	rel, still, err := m.Release(context.Background(), "c", func(r *Record) (bool, error) {
		seen = append(seen, r.ID)
		var n int
		fmt.Sscanf(string(r.Body[:8]), "%d", &n)
		if n%3 == 0 {
			return false, nil
		}
		want = append(want, r.ID)
		return true, nil
	})
	if err != nil || rel+still != len(list) || still != len(list)-len(want) {
		t.Fatalf("release: %d %d %v (of %d)", rel, still, err, len(list))
	}
	for i := range list {
		if seen[i] != list[i].ID {
			t.Fatal("release not in order")
		}
	}
	left, _ := m.List("c", 0)
	if len(left) != still {
		t.Fatalf("left %d, want %d", len(left), still)
	}
	// An error stops the release: what went before is gone, the rest stays.
	boom := errors.New("queue full")
	calls := 0
	rel, _, err = m.Release(context.Background(), "c", func(r *Record) (bool, error) {
		calls++
		if calls > 10 {
			return false, boom
		}
		return true, nil
	})
	if !errors.Is(err, boom) || rel != 10 {
		t.Fatalf("release with error: %d %v", rel, err)
	}
	if l, _ := m.List("c", 0); len(l) != still-10 || l[0].ID != left[10].ID {
		t.Fatalf("after stopped release: %d left", len(l))
	}
}

// Configure closes channels that lost their block (files stay) and
// applies a smaller max_size at once.
func TestConfigure(t *testing.T) {
	dir := t.TempDir()
	m := open(t, dir, nil, map[string]Settings{"c": {MaxSize: 1 << 20}})
	for i := range 100 {
		m.Add(sample("c", i, time.Now(), 5000))
	}
	if err := m.Configure(map[string]Settings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.List("c", 0); !errors.Is(err, ErrNoQuarantine) {
		t.Fatalf("closed channel: %v", err)
	}
	if _, ok := m.Add(sample("c", 0, time.Now(), 1)); ok {
		t.Fatal("kept without a block")
	}
	m.Configure(map[string]Settings{"c": {MaxSize: 128 << 10}})
	st := m.Stats()[0]
	if st.Bytes > 128<<10 || st.Callbacks == 0 {
		t.Fatalf("smaller bound: %+v", st)
	}
	if dirSize(t, filepath.Join(dir, "c")) > 128<<10 {
		t.Fatal("files over the new bound")
	}
}

// Appends from many goroutines while releases, deletes, lists and sweeps
// run: nothing is lost or counted twice, and the files stay within the
// bound.
func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	const maxSize = 256 << 10
	m := open(t, dir, nil, map[string]Settings{"c": {MaxSize: maxSize}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	added, released, deleted := 0, 0, 0
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				if _, ok := m.Add(sample("c", w*1000+i, time.Now(), 300)); ok {
					mu.Lock()
					added++
					mu.Unlock()
				}
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := m.Release(context.Background(), "c", func(r *Record) (bool, error) { return r.Body[7]%2 == 0, nil })
			if err != nil {
				t.Error(err)
				return
			}
			if l, err := m.List("c", 3); err == nil && len(l) > 0 {
				if m.Delete(l[0].ID) == nil {
					mu.Lock()
					deleted++
					mu.Unlock()
				}
			}
			m.Sweep()
			mu.Lock()
			released += n
			mu.Unlock()
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	st := m.Stats()[0]
	list, _ := m.List("c", 0)
	if len(list) != st.Callbacks || st.Bytes > maxSize || dirSize(t, filepath.Join(dir, "c")) != st.Bytes {
		t.Fatalf("stats %+v, listed %d, files %d", st, len(list), dirSize(t, filepath.Join(dir, "c")))
	}
	if added != released+deleted+int(st.Dropped)+st.Callbacks {
		t.Fatalf("added %d != released %d + deleted %d + dropped %d + kept %d", added, released, deleted, st.Dropped, st.Callbacks)
	}
}
