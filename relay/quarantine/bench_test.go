package quarantine

import (
	"testing"
	"time"
)

// BenchmarkAdd is what keeping one refused 1 KiB callback costs the request
// that carried it (encoding and one write; the bound keeps the files at
// 8 MiB, so the benchmark also measures dropping old segments).
func BenchmarkAdd(b *testing.B) {
	m, err := Open(b.TempDir(), Options{SweepInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.Configure(map[string]Settings{"c": {MaxSize: 8 << 20}})
	rec := sample("c", 1, time.Now(), 1024)
	b.SetBytes(int64(len(encode(1, rec))))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := m.Add(rec); !ok {
			b.Fatal("not kept")
		}
	}
}
