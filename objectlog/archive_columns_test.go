package objectlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// randomArchiveRows makes rows with every shape a column can take: null,
// empty and filled keys, values and header values, no headers and several,
// both timestamp types, transactional or not.
func randomArchiveRows(r *rand.Rand, n int) []archiveRow {
	optional := func() *[]byte {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			b := []byte{}
			return &b
		}
		b := fmt.Appendf(nil, "%x", r.Uint64()>>r.IntN(64))
		return &b
	}
	rows := make([]archiveRow, n)
	for i := range rows {
		row := &rows[i]
		row.Offset = int64(i)
		row.Timestamp = r.Int64N(1<<40) - 1<<39
		row.Key, row.Value = optional(), optional()
		for range r.IntN(4) {
			row.Headers = append(row.Headers, archiveHeader{Key: []string{"", "trace-id", "h"}[r.IntN(3)], Value: optional()})
		}
		row.BatchBaseOffset = int64(i - r.IntN(3))
		row.BatchLastOffsetDelta = r.Int32N(100)
		row.BatchFirstTimestamp, row.BatchMaxTimestamp = r.Int64(), r.Int64()
		row.PartitionLeaderEpoch = r.Int32() - 1<<30
		row.ProducerID = r.Int64() - 1<<62
		row.ProducerEpoch = int16(r.IntN(1<<16) - 1<<15)
		row.BaseSequence = r.Int32() - 1<<30
		row.TimestampType = []string{TimestampTypeCreate, TimestampTypeLogAppend}[r.IntN(2)]
		row.Transactional = r.IntN(2) == 0
	}
	return rows
}

// The column decoder reads exactly the rows parquet-go's row reader reads,
// over pages of a few values (so runs of headers cross pages) and several
// row groups.
func TestReadArchiveColumnsMatchesRowReader(t *testing.T) {
	t.Parallel()
	for _, pageBytes := range []int{64, 1 << 10, 1 << 20} {
		t.Run(fmt.Sprint(pageBytes), func(t *testing.T) {
			t.Parallel()
			rows := randomArchiveRows(rand.New(rand.NewPCG(uint64(pageBytes), 3)), 3000)
			var buf bytes.Buffer
			w := parquet.NewGenericWriter[archiveRow](&buf, parquet.Compression(&zstd.Codec{}), parquet.PageBufferSize(pageBytes),
				parquet.MaxRowsPerRowGroup(1200))
			if _, err := w.Write(rows); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			leaves, err := archiveLeaves()
			if err != nil {
				t.Fatal(err)
			}
			f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.RowGroups()) != 3 {
				t.Fatalf("%d row groups", len(f.RowGroups()))
			}
			start := 0
			for gi, g := range f.RowGroups() {
				want := make([]archiveRow, g.NumRows())
				pr := parquet.NewGenericRowGroupReader[archiveRow](g)
				if n, err := pr.Read(want); (err != nil && !errors.Is(err, io.EOF)) || n != len(want) {
					t.Fatalf("row reader: %d rows, %v", n, err)
				}
				pr.Close()
				got := make([]archiveRow, g.NumRows())
				if err := readArchiveColumns(f.Schema(), g, leaves, got, 0); err != nil {
					t.Fatalf("row group %d: %v", gi, err)
				}
				for i := range got {
					w, g := want[i], got[i]
					// An empty headers list is nil or empty, as it comes.
					if len(w.Headers) == 0 && len(g.Headers) == 0 {
						w.Headers, g.Headers = nil, nil
					}
					if !reflect.DeepEqual(w, g) {
						t.Fatalf("row %d:\n got %s\nwant %s", i, showRow(g), showRow(w))
					}
					// And both are what was written.
					orig := rows[start+i]
					if len(orig.Headers) == 0 {
						orig.Headers = nil
					}
					if !reflect.DeepEqual(orig, g) {
						t.Fatalf("row %d:\n got %s\nwrote %s", i, showRow(g), showRow(orig))
					}
				}
				start += len(got)
			}
		})
	}
}

// A row group with fewer rows than its columns hold values is corrupt, not
// a panic or a short read.
func TestReadArchiveColumnsCountsRows(t *testing.T) {
	t.Parallel()
	rows := randomArchiveRows(rand.New(rand.NewPCG(1, 1)), 50)
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[archiveRow](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	leaves, err := archiveLeaves()
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{49, 51} {
		err := readArchiveColumns(f.Schema(), f.RowGroups()[0], leaves, make([]archiveRow, n), 0)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d rows for 50 values: %v, want ErrCorrupt", n, err)
		}
	}
}

func showRow(r archiveRow) string {
	opt := func(p *[]byte) string {
		if p == nil {
			return "null"
		}
		if *p == nil {
			return "nil-slice"
		}
		return fmt.Sprintf("%q", *p)
	}
	s := fmt.Sprintf("%+v key=%s value=%s headers=[", r, opt(r.Key), opt(r.Value))
	for _, h := range r.Headers {
		s += fmt.Sprintf("%q:%s ", h.Key, opt(h.Value))
	}
	return s + "]"
}
