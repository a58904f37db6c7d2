package objectlog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stratabroker/strata/objectlog"
)

var archivePart = objectlog.ArchivePartition{Topic: "orders.v1_eu-west", TopicID: topicA, Partition: 3}

// archiveBatch is one batch of a test partition: its metadata and records.
type archiveBatch struct {
	batch objectlog.ArchiveBatch
	recs  []objectlog.DecodedRecord
}

// archiveWorkload makes n batches starting at offset base: null and empty
// keys and values, headers with null and empty values, idempotent and
// transactional producers, LogAppendTime batches, a batch with gaps (a
// compacted topic) and timestamps out of order, before 1970 included.
func archiveWorkload(r *rand.Rand, base int64, n int) []archiveBatch {
	var out []archiveBatch
	next := base
	for i := range n {
		size := 1 + r.IntN(20)
		b := objectlog.ArchiveBatch{
			BaseOffset: next, LastOffsetDelta: int32(size - 1), PartitionLeaderEpoch: int32(i % 3),
			ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		}
		switch i % 4 {
		case 1:
			b.ProducerID, b.ProducerEpoch, b.BaseSequence = 7000+int64(i), 2, int32(i*10)
		case 2:
			b.ProducerID, b.ProducerEpoch, b.BaseSequence, b.Transactional = 42, 5, int32(i), true
		case 3:
			b.LogAppendTime = true
		}
		ts := baseTime + int64(i)*1000
		if i == 5 {
			ts = -86_400_000 // 1969-12-31
		}
		var recs []objectlog.DecodedRecord
		for j := range size {
			if i%7 == 6 && j%3 == 1 {
				continue // dropped by compaction: the batch keeps its offsets
			}
			rec := objectlog.DecodedRecord{Offset: next + int64(j)}
			rec.Timestamp = ts + int64(r.IntN(50)) - 10
			if b.LogAppendTime {
				rec.Timestamp = ts + 99
			}
			switch j % 5 {
			case 0:
				rec.Key, rec.Value = nil, []byte{}
			case 1:
				rec.Key, rec.Value = []byte{}, nil
			case 2:
				rec.Key = fmt.Appendf(nil, "key-%d", r.IntN(100))
				rec.Value = fmt.Appendf(nil, `{"id":%d,"name":"user-%d","tags":["a","b"],"score":%d.5}`, j, r.IntN(1000), r.IntN(100))
				rec.Headers = []objectlog.Header{{Key: "trace-id", Value: fmt.Appendf(nil, "%016x", r.Uint64())}, {Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}}
			default:
				rec.Key = []byte("k")
				rec.Value = bytes.Repeat([]byte{byte(j)}, r.IntN(300))
				rec.Headers = []objectlog.Header{{Key: "", Value: []byte("empty key")}}
			}
			recs = append(recs, rec)
		}
		if len(recs) == 0 {
			recs = append(recs, objectlog.DecodedRecord{Offset: next, Record: objectlog.Record{Timestamp: ts}})
		}
		b.FirstTimestamp, b.MaxTimestamp = recs[0].Timestamp, recs[0].Timestamp
		if b.LogAppendTime {
			b.FirstTimestamp = ts - 3 // the producer's; records carry the append time
		}
		for _, rec := range recs {
			b.MaxTimestamp = max(b.MaxTimestamp, rec.Timestamp)
		}
		if i%7 == 6 {
			b.MaxTimestamp += 5 // the dropped records held the maximum
		}
		out = append(out, archiveBatch{batch: b, recs: recs})
		next += int64(size)
	}
	return out
}

// writeArchive writes the batches with opts and returns the files.
func writeArchive(t testing.TB, p objectlog.ArchivePartition, opts objectlog.ArchiveOptions, batches []archiveBatch) []objectlog.ArchiveFile {
	t.Helper()
	var files []objectlog.ArchiveFile
	w, err := objectlog.NewArchiveWriter(p, opts, func(f objectlog.ArchiveFile) error {
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := w.Append(b.batch, b.recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return files
}

func putFiles(t testing.TB, b objectlog.BucketWriter, files []objectlog.ArchiveFile) {
	t.Helper()
	for _, f := range files {
		if err := b.PutIfAbsent(context.Background(), f.Info.Key, bytes.NewReader(f.Data), int64(len(f.Data))); err != nil {
			t.Fatal(err)
		}
	}
}

// wantRecords flattens batches into the archive records they should read back as.
func wantRecords(batches []archiveBatch) []objectlog.ArchiveRecord {
	var out []objectlog.ArchiveRecord
	for _, b := range batches {
		for _, r := range b.recs {
			out = append(out, objectlog.ArchiveRecord{DecodedRecord: r, Batch: b.batch})
		}
	}
	return out
}

// sameRecords compares records, telling null from empty.
func sameRecords(t testing.TB, what string, got, want []objectlog.ArchiveRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := &got[i], &want[i]
		if g.Offset != w.Offset || g.Timestamp != w.Timestamp || g.Batch != w.Batch ||
			!sameBytes(g.Key, w.Key) || !sameBytes(g.Value, w.Value) || !sameHeaders(g.Headers, w.Headers) {
			t.Fatalf("%s: record %d:\n got %+v\nwant %+v", what, i, *g, *w)
		}
	}
}

func sameHeaders(a, b []objectlog.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !sameBytes(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func TestArchiveRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	batches := archiveWorkload(rand.New(rand.NewPCG(1, 2)), 1000, 300)
	want := wantRecords(batches)
	// Small limits: many row groups and several files.
	opts := objectlog.ArchiveOptions{RowGroupBytes: 8 << 10, RowGroupRecords: 200, FileBytes: 64 << 10}
	files := writeArchive(t, archivePart, opts, batches)
	if len(files) < 2 {
		t.Fatalf("%d files, want several with FileBytes %d", len(files), opts.FileBytes)
	}
	b := objectlog.NewMemBucket()
	putFiles(t, b, files)

	var got []objectlog.ArchiveRecord
	next := want[0].Offset
	for i, f := range files {
		info := f.Info
		if info.FirstOffset != next || len(info.RowGroups) == 0 || info.Size != int64(len(f.Data)) {
			t.Fatalf("file %d: %+v; want first offset %d, row groups, size %d", i, info, next, len(f.Data))
		}
		if info.Size > opts.FileBytes {
			t.Errorf("file %d is %d bytes, over FileBytes %d", i, info.Size, opts.FileBytes)
		}
		parts, err := objectlog.ParseArchiveKey(info.Key)
		if err != nil || parts != info.ArchiveKeyParts {
			t.Fatalf("ParseArchiveKey(%q) = %+v, %v; want %+v", info.Key, parts, err, info.ArchiveKeyParts)
		}
		r, err := objectlog.OpenArchive(ctx, b, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		if ri := r.Info(); !reflect.DeepEqual(ri, info) {
			t.Fatalf("file %d: reader sees\n%+v\nthe writer reported\n%+v", i, ri, info)
		}
		var records int64
		for g, rg := range info.RowGroups {
			if g > 0 && rg.ByteOffset != info.RowGroups[g-1].ByteOffset+info.RowGroups[g-1].ByteLength {
				t.Errorf("file %d row group %d starts at byte %d, not where the previous ends", i, g, rg.ByteOffset)
			}
			recs, err := r.ReadRowGroup(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(recs)) != rg.Records || recs[0].Offset != rg.FirstOffset || recs[len(recs)-1].Offset != rg.LastOffset {
				t.Fatalf("file %d row group %d: %d records %d..%d, info says %+v", i, g, len(recs), recs[0].Offset, recs[len(recs)-1].Offset, rg)
			}
			// Row groups end on batch boundaries: the next group's first
			// record is in another batch.
			if g+1 < len(info.RowGroups) {
				if last := recs[len(recs)-1].Batch; last.BaseOffset+int64(last.LastOffsetDelta) >= info.RowGroups[g+1].FirstOffset {
					t.Errorf("file %d: batch %d split between row groups %d and %d", i, last.BaseOffset, g, g+1)
				}
			}
			records += rg.Records
			got = append(got, recs...)
		}
		if records != info.Records {
			t.Errorf("file %d: row groups hold %d records, info says %d", i, records, info.Records)
		}
		next = info.LastOffset + 1
	}
	sameRecords(t, "read back", got, want)
}

// TestArchiveFromSegment is the compactor's path: batches read back from a
// segment chunk (as the hot path stores them) go into the archive, and the
// batches rebuilt from the archive decode to the same records and batch
// fields as the segment's.
func TestArchiveFromSegment(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	sw := objectlog.NewSegmentWriter()
	specs := []objectlog.BatchSpec{
		{Codec: objectlog.CodecZstd, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		{Codec: objectlog.CodecNone, ProducerID: 9, ProducerEpoch: 1, BaseSequence: 100},
		{Codec: objectlog.CodecLZ4, ProducerID: 10, ProducerEpoch: 0, BaseSequence: 0, Transactional: true},
		{Codec: objectlog.CodecGzip, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LogAppendTime: true},
	}
	for i, s := range specs {
		recs := []objectlog.Record{
			{Key: nil, Value: []byte{}, Timestamp: baseTime + int64(i)},
			{Key: []byte{}, Value: nil, Timestamp: baseTime - 5, Headers: []objectlog.Header{{Key: "h", Value: nil}, {Key: "e", Value: []byte{}}}},
			{Key: []byte("k"), Value: []byte(`{"a":1}`), Timestamp: baseTime + 7, Headers: []objectlog.Header{{Key: "x", Value: []byte("y")}}},
		}
		if _, err := sw.AppendRecords(topicA, 0, s, recs); err != nil {
			t.Fatal(err)
		}
	}
	data, footer := mustFinish(t, sw)
	c := footer.Chunks[0]
	const base = 5000
	segBatches, err := objectlog.DecodeChunk(slices.Clone(data[c.ByteOffset:c.ByteOffset+c.ByteLength]), base)
	if err != nil {
		t.Fatal(err)
	}
	var files []objectlog.ArchiveFile
	w, err := objectlog.NewArchiveWriter(archivePart, objectlog.ArchiveOptions{}, func(f objectlog.ArchiveFile) error {
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []objectlog.DecodedRecord
	for i := range segBatches {
		recs, err := segBatches[i].Records()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, recs...)
		if err := w.Append(objectlog.ArchiveBatchOf(&segBatches[i]), recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || len(files[0].Info.RowGroups) != 1 {
		t.Fatalf("%d files; want one file of one row group with the default limits", len(files))
	}
	b := objectlog.NewMemBucket()
	putFiles(t, b, files)
	r, err := objectlog.OpenArchive(ctx, b, files[0].Info.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, codec := range []objectlog.Codec{objectlog.CodecNone, objectlog.CodecZstd} {
		arch, err := r.ReadFrom(ctx, base, 0)
		if err != nil {
			t.Fatal(err)
		}
		chunk, err := objectlog.EncodeArchiveBatches(nil, arch, codec)
		if err != nil {
			t.Fatal(err)
		}
		// Base offsets are the archived ones: decode without rewriting.
		rebuilt, err := objectlog.DecodeChunk(chunk, -1)
		if err != nil {
			t.Fatal(err)
		}
		if len(rebuilt) != len(segBatches) {
			t.Fatalf("%v: %d batches rebuilt, want %d", codec, len(rebuilt), len(segBatches))
		}
		var got []objectlog.DecodedRecord
		for i := range rebuilt {
			g, s := rebuilt[i], segBatches[i]
			if g.BaseOffset != s.BaseOffset || g.LastOffsetDelta != s.LastOffsetDelta || g.MaxTimestamp != s.MaxTimestamp ||
				g.FirstTimestamp != s.FirstTimestamp || g.ProducerID != s.ProducerID || g.ProducerEpoch != s.ProducerEpoch ||
				g.BaseSequence != s.BaseSequence || g.Attrs.LogAppendTime() != s.Attrs.LogAppendTime() ||
				g.Attrs.Transactional() != s.Attrs.Transactional() || g.Attrs.Codec() != codec || g.NumRecords != s.NumRecords {
				t.Errorf("%v: batch %d rebuilt as %+v, was %+v", codec, i, g, s)
			}
			recs, err := g.Records()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, recs...)
		}
		if len(got) != len(want) {
			t.Fatalf("%v: %d records, want %d", codec, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Offset != w.Offset || g.Timestamp != w.Timestamp || !sameBytes(g.Key, w.Key) || !sameBytes(g.Value, w.Value) || !sameHeaders(g.Headers, w.Headers) {
				t.Fatalf("%v: record %d: got %+v, want %+v", codec, i, g, w)
			}
		}
	}
}

func TestArchiveReadFrom(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	batches := archiveWorkload(rand.New(rand.NewPCG(3, 4)), 0, 60)
	all := wantRecords(batches)
	files := writeArchive(t, archivePart, objectlog.ArchiveOptions{RowGroupRecords: 50}, batches)
	if len(files) != 1 || len(files[0].Info.RowGroups) < 3 {
		t.Fatalf("%d files; want one with several row groups", len(files))
	}
	b := &countingBucket{MemBucket: objectlog.NewMemBucket()}
	putFiles(t, b, files)
	r, err := objectlog.OpenArchive(ctx, b, files[0].Info.Key)
	if err != nil {
		t.Fatal(err)
	}
	groups := files[0].Info.RowGroups
	for _, from := range []int64{0, all[37].Offset, groups[1].FirstOffset, groups[1].LastOffset, all[len(all)-1].Offset} {
		b.ranges = nil
		got, err := r.ReadFrom(ctx, from, 0)
		if err != nil {
			t.Fatal(err)
		}
		g, ok := r.RowGroupFor(from)
		if !ok || len(b.ranges) != 1 || b.ranges[0] != [2]int64{groups[g].ByteOffset, groups[g].ByteLength} {
			t.Fatalf("ReadFrom(%d) made GETs %v; want the one range of row group %d %+v", from, b.ranges, g, groups[g])
		}
		start := sort.Search(len(all), func(i int) bool { return all[i].Offset >= from })
		end := sort.Search(len(all), func(i int) bool { return all[i].Offset > groups[g].LastOffset })
		sameRecords(t, fmt.Sprintf("ReadFrom(%d)", from), got, all[start:end])
	}
	// A gap left by compaction reads from the next record.
	for i := 1; i < len(all); i++ {
		if all[i].Offset > all[i-1].Offset+1 {
			got, err := r.ReadFrom(ctx, all[i-1].Offset+1, 0)
			if err != nil || len(got) == 0 || got[0].Offset != all[i].Offset {
				t.Fatalf("ReadFrom(gap %d): first %v, %v; want offset %d", all[i-1].Offset+1, got, err, all[i].Offset)
			}
			break
		}
	}
	// maxBytes: at least one record, then as many as fit.
	recSize := func(rec objectlog.ArchiveRecord) int {
		n := len(rec.Key) + len(rec.Value)
		for _, h := range rec.Headers {
			n += len(h.Key) + len(h.Value)
		}
		return n
	}
	big := slices.IndexFunc(all, func(r objectlog.ArchiveRecord) bool { return recSize(r) > 1 })
	got, err := r.ReadFrom(ctx, all[big].Offset, 1)
	if err != nil || len(got) != 1 || got[0].Offset != all[big].Offset {
		t.Fatalf("ReadFrom(%d, 1 byte) = %d records, %v; want exactly the one record of %d bytes", all[big].Offset, len(got), err, recSize(all[big]))
	}
	for _, limit := range []int{100, 600, 2000} {
		got, err = r.ReadFrom(ctx, 0, limit)
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, rec := range got {
			size += recSize(rec)
		}
		g0 := groups[0]
		if size > limit || int64(len(got)) < g0.Records && size+recSize(all[len(got)]) <= limit {
			t.Errorf("ReadFrom(0, %d bytes) returned %d records of %d bytes; the next has %d", limit, len(got), size, recSize(all[len(got)]))
		}
	}
	if got, err := r.ReadFrom(ctx, all[len(all)-1].Offset+1, 0); err != nil || got != nil {
		t.Errorf("ReadFrom past the end = %v, %v; want nothing", got, err)
	}
}

// countingBucket records the ranged GETs made.
type countingBucket struct {
	*objectlog.MemBucket
	ranges [][2]int64
}

func (b *countingBucket) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	b.ranges = append(b.ranges, [2]int64{off, n})
	return b.MemBucket.GetRange(ctx, key, off, n)
}

func TestArchiveKey(t *testing.T) {
	t.Parallel()
	parts := objectlog.ArchiveKeyParts{ArchivePartition: archivePart, FirstOffset: 42, LastOffset: 1_000_000}
	key, err := objectlog.ArchiveKey(parts)
	if err != nil {
		t.Fatal(err)
	}
	want := "archive/topic=orders.v1_eu-west/partition=3/0000000000000000042-0000000000001000000-" + topicA.String() + ".parquet"
	if key != want {
		t.Fatalf("ArchiveKey = %q, want %q", key, want)
	}
	if got, err := objectlog.ParseArchiveKey(key); err != nil || got != parts {
		t.Fatalf("ParseArchiveKey = %+v, %v", got, err)
	}
	// A cleaned file's key names its generation, so it differs from the
	// file it replaces even with the same offsets.
	cleaned := parts
	cleaned.Generation = 1764468000000123
	ckey, err := objectlog.ArchiveKey(cleaned)
	if want := strings.TrimSuffix(want, ".parquet") + "-c1764468000000123.parquet"; err != nil || ckey != want {
		t.Fatalf("ArchiveKey(generation) = %q, %v; want %q", ckey, err, want)
	}
	if got, err := objectlog.ParseArchiveKey(ckey); err != nil || got != cleaned {
		t.Fatalf("ParseArchiveKey(%q) = %+v, %v", ckey, got, err)
	}
	// Keys of one partition sort by offset.
	var keys []string
	for _, first := range []int64{9, 10, 100, 99, 1 << 40, 0} {
		k, err := objectlog.ArchiveKey(objectlog.ArchiveKeyParts{ArchivePartition: archivePart, FirstOffset: first, LastOffset: first})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		a, _ := objectlog.ParseArchiveKey(keys[i-1])
		b, _ := objectlog.ParseArchiveKey(keys[i])
		if a.FirstOffset >= b.FirstOffset {
			t.Fatalf("keys out of offset order: %q before %q", keys[i-1], keys[i])
		}
	}
	for _, bad := range []objectlog.ArchiveKeyParts{
		{ArchivePartition: objectlog.ArchivePartition{Topic: "a/b"}},
		{ArchivePartition: objectlog.ArchivePartition{Topic: ".."}},
		{ArchivePartition: objectlog.ArchivePartition{Topic: strings.Repeat("x", 250)}},
		{ArchivePartition: objectlog.ArchivePartition{Topic: "t=1"}},
		{ArchivePartition: objectlog.ArchivePartition{Topic: "t", Partition: -1}},
		{ArchivePartition: objectlog.ArchivePartition{Topic: "t"}, FirstOffset: 5, LastOffset: 4},
		{ArchivePartition: objectlog.ArchivePartition{Topic: "t"}, Generation: -1},
	} {
		if k, err := objectlog.ArchiveKey(bad); err == nil {
			t.Errorf("ArchiveKey(%+v) = %q, want an error", bad, k)
		}
	}
	for _, bad := range []string{
		"",
		"archive/topic=t/partition=0/0000000000000000001-0000000000000000000-" + topicA.String() + ".parquet",
		"archive/topic=t/partition=01/0000000000000000000-0000000000000000000-" + topicA.String() + ".parquet",
		"archive/topic=t/partition=0/000000000000000000a-0000000000000000000-" + topicA.String() + ".parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + ".csv",
		"archive/topic=t/partition=0/x/0000000000000000000-0000000000000000000-" + topicA.String() + ".parquet",
		"segments/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + ".parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-not-a-uuid-at-all-not-a-uuid-at-all.parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + "-c0.parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + "-c01.parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + "-c.parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + "-x5.parquet",
		"archive/topic=t/partition=0/0000000000000000000-0000000000000000000-" + topicA.String() + "-c-5.parquet",
	} {
		if p, err := objectlog.ParseArchiveKey(bad); err == nil {
			t.Errorf("ParseArchiveKey(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestArchiveWriterRejects(t *testing.T) {
	t.Parallel()
	ok := objectlog.ArchiveBatch{BaseOffset: 10, LastOffsetDelta: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	rec := func(off, ts int64) objectlog.DecodedRecord {
		return objectlog.DecodedRecord{Offset: off, Record: objectlog.Record{Timestamp: ts}}
	}
	for _, tt := range []struct {
		name  string
		batch objectlog.ArchiveBatch
		recs  []objectlog.DecodedRecord
	}{
		{"no records", ok, nil},
		{"offset before the batch", ok, []objectlog.DecodedRecord{rec(9, 0)}},
		{"offset past the batch", ok, []objectlog.DecodedRecord{rec(13, 0)}},
		{"offsets out of order", ok, []objectlog.DecodedRecord{rec(11, 0), rec(11, 0)}},
		{"timestamp beyond microseconds", ok, []objectlog.DecodedRecord{rec(10, 1<<62)}},
		{"negative base offset", objectlog.ArchiveBatch{BaseOffset: -1}, []objectlog.DecodedRecord{rec(0, 0)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := objectlog.NewArchiveWriter(archivePart, objectlog.ArchiveOptions{}, func(objectlog.ArchiveFile) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Append(tt.batch, tt.recs); err == nil {
				t.Fatal("Append succeeded, want an error")
			}
		})
	}
	// Offsets must rise across batches too.
	w, _ := objectlog.NewArchiveWriter(archivePart, objectlog.ArchiveOptions{}, func(objectlog.ArchiveFile) error { return nil })
	if err := w.Append(ok, []objectlog.DecodedRecord{rec(10, 0), rec(12, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ok, []objectlog.DecodedRecord{rec(11, 0)}); err == nil {
		t.Fatal("Append of offset 11 after 12 succeeded")
	}
	if _, err := objectlog.NewArchiveWriter(objectlog.ArchivePartition{Topic: "bad topic"}, objectlog.ArchiveOptions{}, func(objectlog.ArchiveFile) error { return nil }); err == nil {
		t.Fatal("NewArchiveWriter accepted topic \"bad topic\"")
	}
}

// TestArchiveCorrupt: every truncation of a file, and a file whose bytes
// are flipped one at a time in each region, is either read exactly as
// written (a flip Parquet does not cover, such as in the created_by
// string) or fails with ErrCorrupt; nothing panics.
func TestArchiveCorrupt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	batches := archiveWorkload(rand.New(rand.NewPCG(5, 6)), 0, 12)
	want := wantRecords(batches)
	files := writeArchive(t, archivePart, objectlog.ArchiveOptions{RowGroupRecords: 40}, batches)
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	data, key := files[0].Data, files[0].Info.Key
	readAll := func(data []byte) ([]objectlog.ArchiveRecord, error) {
		b := objectlog.NewMemBucket()
		if err := b.PutIfAbsent(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		r, err := objectlog.OpenArchive(ctx, b, key)
		if err != nil {
			return nil, err
		}
		var out []objectlog.ArchiveRecord
		for g := range r.Info().RowGroups {
			recs, err := r.ReadRowGroup(ctx, g)
			if err != nil {
				return nil, err
			}
			out = append(out, recs...)
		}
		return out, nil
	}
	got, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "intact", got, want)
	for n := 0; n < len(data); n += 1 + n/20 {
		if _, err := readAll(data[:n]); !errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(data), err)
		}
	}
	flipped, corrupt := 0, 0
	for i := 0; i < len(data); i += 1 + i%41 {
		bad := slices.Clone(data)
		bad[i] ^= 0x5a
		got, err := readAll(bad)
		flipped++
		if err != nil {
			if !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
			}
			corrupt++
			continue
		}
		sameRecords(t, fmt.Sprintf("byte %d flipped, read without error", i), got, want)
	}
	if corrupt < flipped/2 {
		t.Errorf("only %d of %d flips detected", corrupt, flipped)
	}
}

// TestArchiveNullAfterEmpty: null and empty keys and values alternating
// within and across batches keep their null-ness. parquet-go v0.32.0
// writes such a run of optional []byte wrong (a null read back as empty);
// the archive row uses *[]byte, whose nil parquet-go checks per row.
func TestArchiveNullAfterEmpty(t *testing.T) {
	t.Parallel()
	var batches []archiveBatch
	offset := int64(0)
	for b := range 30 {
		n := 1 + b%5
		ab := archiveBatch{batch: objectlog.ArchiveBatch{BaseOffset: offset, LastOffsetDelta: int32(n - 1), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}}
		for i := range n {
			rec := objectlog.DecodedRecord{Offset: offset + int64(i)}
			switch i % 3 {
			case 0:
				rec.Key, rec.Value = nil, []byte{}
			case 1:
				rec.Key, rec.Value = []byte{}, nil
				rec.Headers = []objectlog.Header{{Key: "n", Value: nil}, {Key: "e", Value: []byte{}}}
			default:
				rec.Key, rec.Value = []byte("k"), []byte("v")
				rec.Headers = []objectlog.Header{{Key: "e", Value: []byte{}}, {Key: "n", Value: nil}}
			}
			ab.recs = append(ab.recs, rec)
		}
		batches = append(batches, ab)
		offset += int64(n)
	}
	files := writeArchive(t, archivePart, objectlog.ArchiveOptions{}, batches)
	b := objectlog.NewMemBucket()
	putFiles(t, b, files)
	r, err := objectlog.OpenArchive(t.Context(), b, files[0].Info.Key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadRowGroup(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "alternating nulls", got, wantRecords(batches))
}

// TestArchiveHostileFooter: footers whose lengths would make a Parquet
// reader allocate gigabytes fail as corrupt, quickly, with the limit named.
func TestArchiveHostileFooter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	key, err := objectlog.ArchiveKey(objectlog.ArchiveKeyParts{ArchivePartition: archivePart, FirstOffset: 0, LastOffset: 9})
	if err != nil {
		t.Fatal(err)
	}
	file := func(footer []byte, footerLen uint32) []byte {
		out := append([]byte("PAR1"), footer...)
		out = binary.LittleEndian.AppendUint32(out, footerLen)
		return append(out, "PAR1"...)
	}
	// FileMetaData field 2 (schema): a list of 2^30 structs in 5 bytes.
	listBomb := []byte{0x29, 0xfc, 0x80, 0x80, 0x80, 0x80, 0x04, 0x00}
	// A binary (field 6, created_by) claiming 1 GiB.
	binaryBomb := []byte{0x68, 0x80, 0x80, 0x80, 0x80, 0x04, 0x00}
	deep := bytes.Repeat([]byte{0x1c}, 100) // structs nested 100 deep
	for _, tt := range []struct {
		name, reason string
		data         []byte
	}{
		{"footer length past the object", "footer length", file(nil, 1<<31)},
		{"footer length over the limit", "footer length", file(make([]byte, 5<<20), 5<<20)},
		{"list of 2^30 schema elements", "list of 1073741824", file(listBomb, uint32(len(listBomb)))},
		{"1 GiB created_by", "binary of 1073741824", file(binaryBomb, uint32(len(binaryBomb)))},
		{"nested 100 deep", "nested deeper", file(deep, uint32(len(deep)))},
		{"no magic", "trailing magic", bytes.Repeat([]byte("x"), 100)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := objectlog.NewMemBucket()
			if err := b.PutIfAbsent(ctx, key, bytes.NewReader(tt.data), int64(len(tt.data))); err != nil {
				t.Fatal(err)
			}
			_, err := objectlog.OpenArchive(ctx, b, key)
			if !errors.Is(err, objectlog.ErrCorrupt) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("OpenArchive: %v; want ErrCorrupt saying %q", err, tt.reason)
			}
		})
	}
}

// TestArchiveBetterCompression: files written at the better zstd level
// read back the same and are smaller.
func TestArchiveBetterCompression(t *testing.T) {
	t.Parallel()
	batches, _ := jsonBatches()
	batches = batches[:4]
	plain := writeArchive(t, archivePart, objectlog.ArchiveOptions{}, batches)
	better := writeArchive(t, archivePart, objectlog.ArchiveOptions{BetterCompression: true}, batches)
	if len(plain) != 1 || len(better) != 1 || len(better[0].Data) >= len(plain[0].Data) {
		t.Fatalf("better compression: %d files; want one smaller than the default's", len(better))
	}
	b := objectlog.NewMemBucket()
	putFiles(t, b, better)
	r, err := objectlog.OpenArchive(t.Context(), b, better[0].Info.Key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadFrom(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "better compression", got, wantRecords(batches))
}

// TestArchiveReaderConcurrent: one reader serves concurrent fetches (run
// with -race).
func TestArchiveReaderConcurrent(t *testing.T) {
	t.Parallel()
	batches := archiveWorkload(rand.New(rand.NewPCG(7, 8)), 0, 40)
	want := wantRecords(batches)
	files := writeArchive(t, archivePart, objectlog.ArchiveOptions{RowGroupRecords: 60}, batches)
	b := objectlog.NewMemBucket()
	putFiles(t, b, files)
	r, err := objectlog.OpenArchive(t.Context(), b, files[0].Info.Key)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			var got []objectlog.ArchiveRecord
			for g := range r.Info().RowGroups {
				recs, err := r.ReadRowGroup(t.Context(), g)
				if err != nil {
					errs <- err
					return
				}
				got = append(got, recs...)
			}
			if len(got) != len(want) || got[len(got)-1].Offset != want[len(want)-1].Offset {
				errs <- fmt.Errorf("read %d records, want %d", len(got), len(want))
				return
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
