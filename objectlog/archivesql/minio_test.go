package archivesql_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

// TestDuckDBReadsMinIOArchive: an agent produces to a topic of three
// partitions and compacts it on a real MinIO and redis-server; the
// archive/ objects, fetched to disk with minio-go as a user would (mc cp,
// aws s3 sync), read back in DuckDB with read_parquet over the hive layout
// as exactly the archived records: topic and partition from the path,
// offsets, millisecond timestamps, keys and values with null apart from
// empty, headers. Records still hot (younger than archive.after.ms) are not
// in the archive. (DuckDB's httpfs extension cannot be downloaded here, so
// the query runs on the copy; docs/archive.md shows it against S3.)
func TestDuckDBReadsMinIOArchive(t *testing.T) {
	ctx := t.Context()
	s3 := testenv.MinIO(t)
	name := "archivesql-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	const prefix = "strata"
	store, err := objectlog.NewMinioBucket(ctx, objectlog.MinioConfig{
		Bucket: name, Prefix: prefix, Endpoint: s3.Endpoint, Insecure: true, CreateBucket: true,
		Credentials: &objectlog.StaticCredentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	index, err := coordinator.Open(ctx, "redis://"+testenv.RedisAddr(t)+"/0", coordinator.Options{Prefix: name + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	cfg := agent.DefaultConfig()
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.AdminListen = ""
	cfg.CompactionInterval, cfg.JanitorInterval = 0, 0 // compacted below, once
	a, err := agent.New(ctx, cfg, store, index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Close(cctx)
	})
	const topic = "orders.eu"
	if _, err := a.NewTopic(ctx, topic, 3, map[string]string{coordinator.ConfigArchiveAfterMs: "600000"}, false); err != nil {
		t.Fatal(err)
	}

	// An hour old: archived. Then one batch per partition of now: hot.
	old := time.Now().Add(-time.Hour).Truncate(time.Millisecond).UnixMilli()
	var want []record
	for p := range int32(3) {
		for b := range 6 + int(p) {
			var recs []objectlog.Record
			for i := range 1 + (b+int(p))%4 {
				r := objectlog.Record{Timestamp: old + int64(1000*b+i)}
				switch i % 3 {
				case 0:
					r.Key, r.Value = nil, []byte{}
				case 1:
					r.Key, r.Value = []byte{}, nil
					r.Headers = []objectlog.Header{{Key: "null"}, {Key: "empty", Value: []byte{}}}
				default:
					r.Key = fmt.Appendf(nil, "customer-%d", b)
					r.Value = fmt.Appendf(nil, `{"order":%d,"partition":%d}`, b*10+i, p)
					r.Headers = []objectlog.Header{{Key: "trace", Value: fmt.Appendf(nil, "t-%d-%d-%d", p, b, i)}}
				}
				recs = append(recs, r)
			}
			base := appendRecords(t, a, topic, p, recs)
			for i, r := range recs {
				want = append(want, record{topic, p, base + int64(i), r.Timestamp, r.Key, r.Value, r.Headers})
			}
		}
		appendRecords(t, a, topic, p, []objectlog.Record{{Value: []byte("hot"), Timestamp: time.Now().UnixMilli()}})
	}
	rep, err := a.RunCompaction(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Partitions != 3 || rep.Records != int64(len(want)) {
		t.Fatalf("compaction %+v, want 3 partitions and %d records", rep, len(want))
	}

	// Fetch archive/ to disk, keys as they are under the prefix.
	mc, err := minio.New(s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copied := 0
	for obj := range mc.ListObjects(ctx, name, minio.ListObjectsOptions{Prefix: prefix + "/archive/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		local := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(obj.Key, prefix+"/")))
		if err := mc.FGetObject(ctx, name, obj.Key, local, minio.GetObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		copied++
	}
	if copied != rep.Files || copied < 3 {
		t.Fatalf("copied %d archive objects, compaction wrote %d files", copied, rep.Files)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	glob := filepath.ToSlash(filepath.Join(dir, "archive", "**", "*.parquet"))
	got := readArchive(t, db, `SELECT topic, partition, "offset", "timestamp", key, value, headers
		FROM read_parquet(?, hive_partitioning = true, hive_types = {'topic': VARCHAR, 'partition': INTEGER})
		ORDER BY partition, "offset"`, glob)
	if len(got) != len(want) {
		t.Fatalf("DuckDB read %d rows from the MinIO archive, %d were archived", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.topic != w.topic || g.partition != w.partition || g.offset != w.offset || g.ts != w.ts ||
			!sameBytes(g.key, w.key) || !sameBytes(g.value, w.value) || !slices.EqualFunc(g.headers, w.headers, sameHeader) {
			t.Fatalf("row %d:\n got %s\nwant %s", i, show(g), show(w))
		}
	}
	// A JSON query as docs/archive.md shows, over values some of which are
	// empty or null (json_valid keeps those out of json_extract).
	n := queryOne[int64](t, db, `SELECT count(*) FROM read_parquet(?, hive_partitioning = true)
		WHERE partition = 2 AND CASE WHEN json_valid(decode(value))
			THEN json_extract(decode(value), '$.partition')::INTEGER = 2 ELSE false END`, glob)
	var want2 int64
	for _, r := range want {
		if r.partition == 2 && bytes.HasPrefix(r.value, []byte("{")) {
			want2++
		}
	}
	if want2 == 0 || n != want2 {
		t.Errorf("JSON values of partition 2: DuckDB counts %d, %d were archived", n, want2)
	}
}

// appendRecords appends one batch through the agent's core and returns its
// base offset once it is acknowledged.
func appendRecords(t *testing.T, a *agent.Agent, topic string, p int32, recs []objectlog.Record) int64 {
	t.Helper()
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendRecords(uuid.UUID{}, 0, objectlog.NoProducer, recs); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c := footer.Chunks[0]
	wait, err := a.AppendBatch(t.Context(), topic, p, bytes.Clone(data[c.ByteOffset:c.ByteOffset+c.ByteLength]))
	if err != nil {
		t.Fatal(err)
	}
	base, err := wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// readArchive runs a query of the columns topic, partition, offset,
// timestamp, key, value, headers.
func readArchive(t *testing.T, db *sql.DB, query string, args ...any) []record {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []record
	for rows.Next() {
		var r record
		var ts time.Time
		var headers []any
		var partition int64
		if err := rows.Scan(&r.topic, &partition, &r.offset, &ts, &r.key, &r.value, &headers); err != nil {
			t.Fatal(err)
		}
		r.partition = int32(partition)
		r.ts = ts.UnixMilli()
		if ts.UnixMicro() != r.ts*1000 {
			t.Fatalf("offset %d: timestamp %v is not a whole millisecond", r.offset, ts)
		}
		for _, h := range headers {
			m := h.(map[string]any)
			hd := objectlog.Header{Key: m["key"].(string)}
			if v := m["value"]; v != nil {
				hd.Value = v.([]byte)
			}
			r.headers = append(r.headers, hd)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}
