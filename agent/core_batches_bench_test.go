package agent

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// BenchmarkAppendRecordBatch is the Kafka listener's produce path through
// the core: client batches of 100 records with 1 KiB values appended to
// one partition (an in-memory store and index, so the core's own cost
// shows), uncompressed and zstd, each op one batch; at most 64 batches wait
// for their commit at a time. It prices the walk of every record (Kafka's
// LogValidator, issue 12) against the rest of the path; "checks" is that
// walk alone (checkBatchProducer and checkBatchRecords).
func BenchmarkAppendRecordBatch(b *testing.B) {
	recs := make([]objectlog.Record, 100)
	for i := range recs {
		value := make([]byte, 1024)
		for j := range value {
			value[j] = "abcdefghij klmnop"[(i*7+j*13)%17]
		}
		recs[i] = objectlog.Record{Key: fmt.Appendf(nil, "user-%011d", i*7919), Value: value, Timestamp: 1700000000000 + int64(i)}
	}
	for _, codec := range []objectlog.Codec{objectlog.CodecNone, objectlog.CodecZstd} {
		w := objectlog.NewSegmentWriter()
		spec := objectlog.NoProducer
		spec.Codec = codec
		if _, err := w.AppendRecords([16]byte{}, 0, spec, recs); err != nil {
			b.Fatal(err)
		}
		data, footer, err := w.Finish()
		if err != nil {
			b.Fatal(err)
		}
		c := footer.Chunks[0]
		batch := data[c.ByteOffset : c.ByteOffset+c.ByteLength]

		b.Run("checks/"+codec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if err := checkBatchProducer(batch, "t", 0); err != nil {
					b.Fatal(err)
				}
				if err := checkBatchRecords(batch, "t", 0, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("append/"+codec.String(), func(b *testing.B) {
			index, err := coordinator.Open(b.Context(), "memory://", coordinator.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = index.Close() })
			cfg := DefaultConfig()
			cfg.AdminListen = ""
			cfg.FlushInterval = 5 * time.Millisecond
			cfg.CompactionInterval = 0
			a, err := New(b.Context(), cfg, objectlog.NewMemBucket(), index, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = a.Close(ctx)
			})
			if _, err := index.CreateTopic(b.Context(), "bench", coordinator.TopicConfig{Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			var waits []func(context.Context) (BatchAppended, error)
			settle := func(keep int) {
				for len(waits) > keep {
					if _, err := waits[0](b.Context()); err != nil {
						b.Fatal(err)
					}
					waits = waits[1:]
				}
			}
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				wait, err := a.AppendRecordBatch(b.Context(), "bench", 0, batch)
				if err != nil {
					b.Fatal(err)
				}
				waits = append(waits, wait)
				settle(64)
			}
			settle(0)
		})
	}
}
