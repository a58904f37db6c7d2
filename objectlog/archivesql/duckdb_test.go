package archivesql_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"

	"github.com/stratabroker/strata/objectlog"
)

// record is what a test writes and what DuckDB must read back.
type record struct {
	topic     string
	partition int32
	offset    int64
	ts        int64 // ms
	key       []byte
	value     []byte
	headers   []objectlog.Header
}

// TestDuckDBReadsArchive writes archive files for two partitions of a topic
// (one of them split over several files) into a filesystem bucket and reads
// them back with DuckDB's read_parquet over the hive layout, as ARCHIVE.md
// tells users to: topic and partition come from the path, timestamps are
// TIMESTAMP WITH TIME ZONE, keys and values keep null apart from empty.
func TestDuckDBReadsArchive(t *testing.T) {
	dir := t.TempDir()
	bucket, err := objectlog.NewFSBucket(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	ctx := t.Context()
	topicID := uuid.MustParse("0191e7a4-0000-7000-8000-0000000000aa")
	const topic = "clicks.v2"
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

	var want []record
	files := 0
	for p := range int32(2) {
		w, err := objectlog.NewArchiveWriter(objectlog.ArchivePartition{Topic: topic, TopicID: topicID, Partition: p},
			objectlog.ArchiveOptions{RowGroupRecords: 16, FileBytes: 40 << 10},
			func(f objectlog.ArchiveFile) error {
				files++
				return bucket.PutIfAbsent(ctx, f.Info.Key, bytes.NewReader(f.Data), int64(len(f.Data)))
			})
		if err != nil {
			t.Fatal(err)
		}
		offset := int64(100 * p)
		for b := range 20 + 10*int(p) {
			n := 1 + b%5
			batch := objectlog.ArchiveBatch{BaseOffset: offset, LastOffsetDelta: int32(n - 1), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
				FirstTimestamp: base + int64(b)*1000, MaxTimestamp: base + int64(b)*1000 + int64(n)}
			var recs []objectlog.DecodedRecord
			for i := range n {
				rec := objectlog.DecodedRecord{Offset: offset + int64(i)}
				rec.Timestamp = base + int64(b)*1000 + int64(i) + 1
				switch i % 3 {
				case 0:
					rec.Key, rec.Value = nil, []byte{}
				case 1:
					rec.Key, rec.Value = []byte{}, nil
					rec.Headers = []objectlog.Header{{Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}}
				default:
					rec.Key = fmt.Appendf(nil, "user-%d", b)
					rec.Value = fmt.Appendf(nil, `{"page":"/p/%d","ms":%d}`, i, b*i)
					rec.Headers = []objectlog.Header{{Key: "trace", Value: fmt.Appendf(nil, "t-%d-%d", p, offset+int64(i))}}
				}
				recs = append(recs, rec)
				want = append(want, record{topic, p, rec.Offset, rec.Timestamp, rec.Key, rec.Value, rec.Headers})
			}
			if err := w.Append(batch, recs); err != nil {
				t.Fatal(err)
			}
			offset += int64(n)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if files < 3 {
		t.Fatalf("%d files written; want partition 1 split over several", files)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	glob := filepath.ToSlash(filepath.Join(dir, "archive", "**", "*.parquet"))
	got := readArchive(t, db, `SELECT topic, partition, "offset", "timestamp", key, value, headers
		FROM read_parquet(?, hive_partitioning = true)
		ORDER BY partition, "offset"`, glob)
	if len(got) != len(want) {
		t.Fatalf("DuckDB read %d rows, %d were written", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.topic != w.topic || g.partition != w.partition || g.offset != w.offset || g.ts != w.ts ||
			!sameBytes(g.key, w.key) || !sameBytes(g.value, w.value) || !slices.EqualFunc(g.headers, w.headers, sameHeader) {
			t.Fatalf("row %d:\n got %s\nwant %s", i, show(g), show(w))
		}
	}

	// The queries docs/archive.md shows: hive_types pins the partition
	// columns' types (a topic named "42" would otherwise read as a number),
	// and a filter on them reads one partition's files only.
	n := queryOne[int64](t, db, `SELECT count(*) FROM read_parquet(?, hive_partitioning = true,
		hive_types = {'topic': VARCHAR, 'partition': INTEGER}) WHERE topic = 'clicks.v2' AND partition = 1`, glob)
	if want1 := int64(len(want) - countPartition(want, 0)); n != want1 {
		t.Errorf("partition 1 has %d rows in DuckDB, %d were written", n, want1)
	}
	// docs/archive.md's first query, on this data: a time filter and
	// decode() of keys and values.
	cutoff := time.UnixMilli(base + 10*1000).UTC()
	var wantAfter int64
	for _, r := range want {
		if r.partition == 1 && r.ts >= cutoff.UnixMilli() {
			wantAfter++
		}
	}
	after := queryOne[int64](t, db, `SELECT count(*) FROM (
		SELECT topic, partition, "offset", "timestamp", decode(key) AS key, decode(value) AS value, headers
		FROM read_parquet(?, hive_partitioning = true, hive_types = {'topic': VARCHAR, 'partition': INTEGER})
		WHERE topic = 'clicks.v2' AND partition = 1
		  AND "timestamp" >= TIMESTAMPTZ '`+cutoff.Format("2006-01-02 15:04:05")+`+00'
		ORDER BY "offset")`, glob)
	if wantAfter == 0 || after != wantAfter {
		t.Errorf("records of partition 1 from %v: DuckDB counts %d, %d were written", cutoff, after, wantAfter)
	}
	text := queryOne[string](t, db, `SELECT decode(value) FROM read_parquet(?, hive_partitioning = true)
		WHERE partition = 0 AND "offset" = 5`, glob)
	if want[5].offset != 5 || text != string(want[5].value) {
		t.Errorf("decode(value) = %q, want %q", text, want[5].value)
	}

	// The columns SQL users see, with the types ARCHIVE.md documents.
	types := map[string]string{}
	trows, err := db.QueryContext(ctx, `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = true))`, glob)
	if err != nil {
		t.Fatal(err)
	}
	defer trows.Close()
	for trows.Next() {
		var name, typ string
		if err := trows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		types[name] = typ
	}
	for name, typ := range map[string]string{
		"offset": "BIGINT", "timestamp": "TIMESTAMP WITH TIME ZONE", "key": "BLOB", "value": "BLOB",
		"headers": "STRUCT(\"key\" VARCHAR, \"value\" BLOB)[]", "topic": "VARCHAR", "partition": "BIGINT",
		"timestamp_type": "VARCHAR", "producer_id": "BIGINT", "batch_base_offset": "BIGINT",
		"batch_last_offset_delta": "INTEGER", "batch_first_timestamp": "TIMESTAMP WITH TIME ZONE",
		"batch_max_timestamp": "TIMESTAMP WITH TIME ZONE", "partition_leader_epoch": "INTEGER",
		"producer_epoch": "SMALLINT", "base_sequence": "INTEGER", "transactional": "BOOLEAN",
	} {
		if types[name] != typ {
			t.Errorf("column %s is %q, want %q (all: %v)", name, types[name], typ, types)
		}
	}
}

// queryOne runs a query returning one row of one column.
func queryOne[T any](t *testing.T, db *sql.DB, query string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func sameHeader(a, b objectlog.Header) bool { return a.Key == b.Key && sameBytes(a.Value, b.Value) }

func countPartition(recs []record, p int32) int {
	n := 0
	for _, r := range recs {
		if r.partition == p {
			n++
		}
	}
	return n
}

// show prints a record telling null (nil) from empty.
func show(r record) string {
	b := func(v []byte) string {
		if v == nil {
			return "null"
		}
		return fmt.Sprintf("%q", v)
	}
	s := fmt.Sprintf("%s/%d@%d ts=%d key=%s value=%s headers=[", r.topic, r.partition, r.offset, r.ts, b(r.key), b(r.value))
	for _, h := range r.headers {
		s += fmt.Sprintf(" %q=%s", h.Key, b(h.Value))
	}
	return s + " ]"
}
