package queue

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// The queue builds Badger from third_party/badger, whose table.CreateTable writes a table with
// write(2) and fsyncs it instead of copying it into a mapping (third_party/badger/PATCHES.md).
// A table it creates must read back whole, through the table it returns and through a mapping
// of the file opened afresh (as Badger opens its tables at start), must refuse to overwrite an
// existing file, and must leave the file exactly the table's size.
func TestCreateTableWritesWholeTables(t *testing.T) {
	dir := t.TempDir()
	opts := table.Options{
		TableSize:          2 << 20,
		BlockSize:          4 << 10,
		BloomFalsePositive: 0.01,
		ChkMode:            options.OnTableAndBlockRead,
		Compression:        options.None,
	}
	const n = 20000
	key := func(i int) []byte { return y.KeyWithTs([]byte(fmt.Sprintf("e/%08d", i)), 1) }
	val := func(i int) []byte { return []byte(strings.Repeat(fmt.Sprintf("%d;", i), 8)) }
	b := table.NewTableBuilder(opts)
	for i := range n {
		b.Add(key(i), y.ValueStruct{Value: val(i)}, 0)
	}
	name := table.NewFilename(1, dir)
	tb, err := table.CreateTable(name, b)
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	readBack := func(what string, tb *table.Table) {
		t.Helper()
		it := tb.NewIterator(0)
		defer it.Close()
		i := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if !bytes.Equal(it.Key(), key(i)) || !bytes.Equal(it.Value().Value, val(i)) {
				t.Fatalf("%s: entry %d is %q = %q, want %q = %q", what, i, it.Key(), it.Value().Value, key(i), val(i))
			}
			i++
		}
		if i != n {
			t.Fatalf("%s: %d entries, want %d", what, i, n)
		}
	}
	readBack("the created table", tb)
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(tb.Data)) {
		t.Fatalf("file of %d bytes for a table of %d", st.Size(), len(tb.Data))
	}
	if err := tb.Close(-1); err != nil { // unmapped and closed; the file stays
		t.Fatal(err)
	}

	mf, err := z.OpenMmapFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open the table's file again: %v", err)
	}
	reopened, err := table.OpenTable(mf, opts)
	if err != nil {
		t.Fatalf("OpenTable on the file CreateTable wrote: %v", err)
	}
	readBack("the table opened again", reopened)
	reopened.Close(-1)

	b2 := table.NewTableBuilder(opts)
	b2.Add(key(0), y.ValueStruct{Value: val(0)}, 0)
	if _, err := table.CreateTable(name, b2); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("CreateTable over an existing file: %v, want it refused", err)
	}
	b2.Close()
}
