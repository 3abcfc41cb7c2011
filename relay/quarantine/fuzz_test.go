package quarantine

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzSegmentFile: whatever bytes a segment file holds (a torn write, a
// disk error, a hand edit), opening the quarantine neither panics nor
// allocates without bound, keeps only records whose CRC and encoding are
// whole, and leaves a file that appends continue after.
func FuzzSegmentFile(f *testing.F) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 0, time.UTC)
	one := encode(1, sample("c", 1, at, 40))
	two := append(bytes.Clone(one), encode(2, sample("c", 2, at, 0))...)
	f.Add(one)
	f.Add(two)
	f.Add(two[:len(two)-3])
	f.Add([]byte{})
	f.Add([]byte{'Q', 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "c"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, "c", "0000000000000001.seg"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := Open(dir, Options{SweepInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Configure(map[string]Settings{"c": {MaxSize: 1 << 20, Keep: 100 * 365 * 24 * time.Hour}}); err != nil {
			t.Fatal(err)
		}
		list, err := m.List("c", 0)
		if err != nil {
			t.Fatalf("list after repair: %v", err)
		}
		for _, s := range list {
			rec, err := m.Get(s.ID)
			if err != nil {
				t.Fatalf("get %s: %v", s.ID, err)
			}
			// A kept record encodes back to the bytes it was read from.
			seq, _ := ParseID(rec.ID)
			if !bytes.Contains(data, encode(seq, rec)) {
				t.Fatalf("record %s does not come from the file", s.ID)
			}
		}
		if _, ok := m.Add(sample("c", 9, time.Now(), 10)); !ok {
			t.Fatal("append after repair failed")
		}
		if l, _ := m.List("c", 0); len(l) != len(list)+1 {
			t.Fatalf("after append: %d records, want %d", len(l), len(list)+1)
		}
	})
}
