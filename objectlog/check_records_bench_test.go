package objectlog_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratabroker/strata/objectlog"
)

// BenchmarkCheckRecords is the produce path's walk of one client batch of
// 100 records with 1 KiB values (Kafka's LogValidator, issue 12), against
// decoding the same records (AppendRecords into a reused slice), which the
// walk was written to undercut: it runs on every produced batch.
func BenchmarkCheckRecords(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 5))
	recs := make([]objectlog.Record, 100)
	for i := range recs {
		recs[i] = objectlog.Record{Key: fmt.Appendf(nil, "user-%011d", r.IntN(1e9)), Value: words(r, 1024), Timestamp: baseTime + int64(i)}
	}
	for _, codec := range []objectlog.Codec{objectlog.CodecNone, objectlog.CodecZstd} {
		w := objectlog.NewSegmentWriter()
		if _, err := w.AppendRecords(topicA, 0, spec(codec), recs); err != nil {
			b.Fatal(err)
		}
		data, footer, err := w.Finish()
		if err != nil {
			b.Fatal(err)
		}
		c := footer.Chunks[0]
		batches, err := objectlog.DecodeChunk(data[c.ByteOffset:c.ByteOffset+c.ByteLength], -1)
		if err != nil {
			b.Fatal(err)
		}
		batch := batches[0]
		b.Run("walk/"+codec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch.Raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := batch.CheckRecords(0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("decode/"+codec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch.Raw)))
			b.ReportAllocs()
			var out []objectlog.DecodedRecord
			for b.Loop() {
				if out, err = batch.AppendRecords(out[:0], 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
