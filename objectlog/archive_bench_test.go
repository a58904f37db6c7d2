package objectlog_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratabroker/strata/objectlog"
)

// A JSON-like workload: 40 batches of 500 click events (about 200 bytes of
// JSON each, 16-byte keys, one trace header), some 4.5 MiB of record data.
const (
	archiveBenchBatches = 40
	archiveBenchRecords = 500
)

func jsonBatches() ([]archiveBatch, int64) {
	r := rand.New(rand.NewPCG(21, 42))
	events := []string{"page_view", "click", "add_to_cart", "purchase", "search"}
	browsers := []string{"firefox", "chrome", "safari", "edge"}
	countries := []string{"DE", "FR", "US", "JP", "BR", "IN"}
	var out []archiveBatch
	var raw int64
	offset := int64(0)
	for b := range archiveBenchBatches {
		ab := archiveBatch{batch: objectlog.ArchiveBatch{BaseOffset: offset, LastOffsetDelta: archiveBenchRecords - 1,
			ProducerID: 1000 + int64(b%4), ProducerEpoch: 0, BaseSequence: int32(b * archiveBenchRecords)}}
		ts := baseTime + int64(b)*1000
		ab.batch.FirstTimestamp, ab.batch.MaxTimestamp = ts, ts+archiveBenchRecords
		for i := range archiveBenchRecords {
			user := r.IntN(100_000)
			rec := objectlog.DecodedRecord{Offset: offset + int64(i)}
			rec.Timestamp = ts + int64(i)
			rec.Key = fmt.Appendf(nil, "user-%011d", user)
			rec.Value = fmt.Appendf(nil, `{"event":%q,"user_id":%d,"session":"%016x","url":"/products/%d?ref=home","ts":%d,"props":{"browser":%q,"country":%q,"price":%d.%02d}}`,
				events[r.IntN(len(events))], user, r.Uint64(), r.IntN(5000), rec.Timestamp,
				browsers[r.IntN(len(browsers))], countries[r.IntN(len(countries))], r.IntN(500), r.IntN(100))
			rec.Headers = []objectlog.Header{{Key: "trace-id", Value: fmt.Appendf(nil, "%016x", r.Uint64())}}
			raw += int64(len(rec.Key) + len(rec.Value) + len("trace-id") + 16)
			ab.recs = append(ab.recs, rec)
		}
		out = append(out, ab)
		offset += archiveBenchRecords
	}
	return out, raw
}

// segmentBytes is what the same batches take in a flush segment.
func segmentBytes(b *testing.B, batches []archiveBatch, codec objectlog.Codec) int {
	w := objectlog.NewSegmentWriter()
	s := objectlog.BatchSpec{Codec: codec, ProducerID: 1000, BaseSequence: 0}
	for _, ab := range batches {
		recs := make([]objectlog.Record, len(ab.recs))
		for i := range ab.recs {
			recs[i] = ab.recs[i].Record
		}
		if _, err := w.AppendRecords(topicA, 0, s, recs); err != nil {
			b.Fatal(err)
		}
	}
	data, _, err := w.Finish()
	if err != nil {
		b.Fatal(err)
	}
	return len(data)
}

// BenchmarkArchiveWrite: MB/s of record data (keys, values, headers)
// written into archive files, and the archive's size against the hot
// segments' at zstd and with no compression, for the same records.
func BenchmarkArchiveWrite(b *testing.B) {
	batches, raw := jsonBatches()
	for _, tt := range []struct {
		name string
		opts objectlog.ArchiveOptions
	}{{"zstd-default", objectlog.ArchiveOptions{}}, {"zstd-better", objectlog.ArchiveOptions{BetterCompression: true}}} {
		b.Run(tt.name, func(b *testing.B) {
			size := 0
			for _, f := range writeArchive(b, archivePart, tt.opts, batches) {
				size += len(f.Data)
			}
			b.SetBytes(raw)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				writeArchive(b, archivePart, tt.opts, batches)
			}
			b.StopTimer()
			b.ReportMetric(float64(size), "archive-bytes")
			b.ReportMetric(float64(segmentBytes(b, batches, objectlog.CodecZstd)), "segment-zstd-bytes")
			b.ReportMetric(float64(segmentBytes(b, batches, objectlog.CodecNone)), "segment-none-bytes")
			b.ReportMetric(float64(raw), "record-bytes")
		})
	}
}

// BenchmarkArchiveRead: MB/s of record data read back, one row group at a
// time through the bucket (in memory), as the fetch path reads it.
func BenchmarkArchiveRead(b *testing.B) {
	batches, raw := jsonBatches()
	files := writeArchive(b, archivePart, objectlog.ArchiveOptions{}, batches)
	bucket := objectlog.NewMemBucket()
	putFiles(b, bucket, files)
	ctx := b.Context()
	readers := make([]*objectlog.ArchiveReader, len(files))
	for i, f := range files {
		var err error
		if readers[i], err = objectlog.OpenArchive(ctx, bucket, f.Info.Key); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		for _, r := range readers {
			for g := range r.Info().RowGroups {
				recs, err := r.ReadRowGroup(ctx, g)
				if err != nil {
					b.Fatal(err)
				}
				n += len(recs)
			}
		}
		if n != archiveBenchBatches*archiveBenchRecords {
			b.Fatalf("read %d records", n)
		}
	}
}
