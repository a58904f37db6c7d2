package objectlog_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratabroker/strata/objectlog"
)

// A flush as the produce path makes it: 4 partitions x 2 batches of 1000
// records with 16-byte keys and 1 KiB semi-compressible values (random
// words), about 8 MiB of record data.
const (
	benchPartitions = 4
	benchBatches    = 2
	benchRecords    = 1000
	benchValueLen   = 1024
)

func benchRecordSet() ([]objectlog.Record, int64) {
	r := rand.New(rand.NewPCG(7, 11))
	recs := make([]objectlog.Record, benchRecords)
	var n int64
	for i := range recs {
		recs[i] = objectlog.Record{
			Key:       fmt.Appendf(nil, "user-%011d", r.IntN(1e9)),
			Value:     words(r, benchValueLen),
			Timestamp: baseTime + int64(i),
		}
		n += int64(len(recs[i].Key) + len(recs[i].Value))
	}
	return recs, n * benchPartitions * benchBatches
}

func benchSegment(b *testing.B, w *objectlog.SegmentWriter, codec objectlog.Codec, recs []objectlog.Record) []byte {
	w.Reset()
	for range benchBatches {
		for p := range int32(benchPartitions) {
			if _, err := w.AppendRecords(topicA, p, spec(codec), recs); err != nil {
				b.Fatal(err)
			}
		}
	}
	data, _, err := w.Finish()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkSegmentEncode(b *testing.B) {
	recs, total := benchRecordSet()
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			w := objectlog.NewSegmentWriter()
			size := len(benchSegment(b, w, codec, recs))
			b.SetBytes(total)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				benchSegment(b, w, codec, recs)
			}
			b.ReportMetric(float64(total)/float64(size), "ratio")
		})
	}
}

func BenchmarkSegmentDecode(b *testing.B) {
	recs, total := benchRecordSet()
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			data := benchSegment(b, objectlog.NewSegmentWriter(), codec, recs)
			var out []objectlog.DecodedRecord
			b.SetBytes(total)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f, err := objectlog.ParseFooter(data, int64(len(data)))
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range f.Chunks {
					batches, err := objectlog.DecodeChunk(data[c.ByteOffset:c.ByteOffset+c.ByteLength], 1000)
					if err != nil {
						b.Fatal(err)
					}
					for i := range batches {
						if out, err = batches[i].AppendRecords(out[:0], 0); err != nil || len(out) != benchRecords {
							b.Fatalf("%d records, %v", len(out), err)
						}
					}
				}
			}
		})
	}
}

// BenchmarkSegmentRewriteBaseOffsets is the fetch path: verify CRCs and set
// offsets, no record decoding. Bytes are the chunk bytes as stored.
func BenchmarkSegmentRewriteBaseOffsets(b *testing.B) {
	recs, _ := benchRecordSet()
	for _, codec := range []objectlog.Codec{objectlog.CodecNone, objectlog.CodecZstd} {
		b.Run(codec.String(), func(b *testing.B) {
			data := benchSegment(b, objectlog.NewSegmentWriter(), codec, recs)
			f, err := objectlog.ParseFooter(data, int64(len(data)))
			if err != nil {
				b.Fatal(err)
			}
			c := f.Chunks[0]
			chunk := data[c.ByteOffset : c.ByteOffset+c.ByteLength]
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := objectlog.RewriteBaseOffsets(chunk, 12345); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
