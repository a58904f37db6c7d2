package bench

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// batchesAt encodes batches of n records of size bytes with codec, their
// base offsets from base on, back to back, as FetchBatches answers them.
func batchesAt(t *testing.T, values []byte, n, size int, codec string, base int64, batches int, sent time.Time) []byte {
	t.Helper()
	e, err := newBatchEncoder(values, n, size, codec)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := range batches {
		b := e.encode(sent)
		start := len(out)
		out = append(out, b...)
		// The base offset is outside the CRC: the agent sets it so.
		binary.BigEndian.PutUint64(out[start:], uint64(base+int64(i*n)))
	}
	return out
}

// The encoder's batches are what a Kafka client reads back: franz-go's own
// decoder (CRC, codec, offsets) gives every value, stamped.
func TestBatchEncoderKafkaDecodes(t *testing.T) {
	t.Parallel()
	sent := time.Unix(1700000000, 123456789)
	for _, codec := range []string{"none", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			const n, size = 5, 300
			values := make([]byte, n*size) // zeros: gzip shrinks them
			for i := range n {
				values[i*size+size-1] = byte(i)
			}
			raw := batchesAt(t, values, n, size, codec, 40, 2, sent)
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: 42, Topic: "t", Partition: 3},
				&kmsg.FetchResponseTopicPartition{Partition: 3, HighWatermark: 50, LastStableOffset: 50, RecordBatches: raw}, kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				t.Fatal(fp.Err)
			}
			if next != 50 || len(fp.Records) != 8 {
				t.Fatalf("decoded %d records from offset 42, next %d; want 8 and 50", len(fp.Records), next)
			}
			for i, r := range fp.Records {
				k := (42 + i - 40) % n
				if r.Offset != int64(42+i) || len(r.Value) != size || r.Value[size-1] != byte(k) ||
					int64(binary.BigEndian.Uint64(r.Value)) != sent.UnixNano() || !r.Timestamp.Equal(sent.Truncate(time.Millisecond)) {
					t.Fatalf("record %d: offset %d, %d bytes, last byte %d, stamp %d, time %v", i, r.Offset, len(r.Value), r.Value[size-1],
						binary.BigEndian.Uint64(r.Value), r.Timestamp)
				}
			}
			compressed := raw[batchAttrsOffset+1]&batchCodecMask != 0
			if compressed != (codec == "gzip") {
				t.Errorf("codec %s: batch compressed %v", codec, compressed)
			}
		})
	}
}

// walkBatches counts what lies in [from, to): whole batches from their
// headers, straddling ones record by record, control batches never.
func TestWalkBatches(t *testing.T) {
	t.Parallel()
	sent := time.Unix(1700000000, 0)
	const n, size = 10, 64
	values := make([]byte, n*size)
	for _, codec := range []string{"none", "gzip"} {
		raw := batchesAt(t, values, n, size, codec, 100, 3, sent) // offsets 100 to 129
		for _, tc := range []struct {
			from, to      int64
			records, next int64
		}{
			{100, 130, 30, 130},
			{0, 1 << 62, 30, 130},
			{105, 130, 25, 130}, // the first batch starts before the offset asked
			{100, 115, 15, 130}, // the backlog ends inside the second batch
			{112, 118, 6, 130},
			{130, 200, 0, 130},
		} {
			var seen int64
			records, bytes, next, err := walkBatches(raw, tc.from, tc.to, func(r batchRecord) {
				if r.offset < tc.from || r.offset >= tc.to || len(r.value) != size || r.key != nil ||
					int64(binary.BigEndian.Uint64(r.value)) != sent.UnixNano() {
					t.Errorf("%s [%d, %d): record %+v", codec, tc.from, tc.to, r)
				}
				seen++
			})
			if err != nil || records != tc.records || seen != tc.records || bytes != tc.records*size || next != tc.next {
				t.Errorf("%s [%d, %d): %d records (%d seen), %d bytes, next %d, %v; want %d records, next %d",
					codec, tc.from, tc.to, records, seen, bytes, next, err, tc.records, tc.next)
			}
		}
	}

	// A control batch (a transaction marker) moves the offset on and
	// holds no records.
	raw := batchesAt(t, values, 1, size, "none", 7, 1, sent)
	raw[batchAttrsOffset+1] |= batchControlFlag
	if records, _, next, err := walkBatches(raw, 7, 100, nil); err != nil || records != 0 || next != 8 {
		t.Errorf("control batch: %d records, next %d, %v; want 0, 8", records, next, err)
	}

	// Bytes that do not frame whole batches are an error, never a count.
	raw = batchesAt(t, values, n, size, "none", 0, 2, sent)
	for _, bad := range [][]byte{raw[:len(raw)-1], raw[:30]} {
		if _, _, _, err := walkBatches(bad, 0, 100, nil); err == nil || !strings.Contains(err.Error(), "record batch") {
			t.Errorf("%d bytes of 2 batches: %v, want an error", len(bad), err)
		}
	}
	// A header that claims more records than the batch holds.
	raw = batchesAt(t, values, n, size, "none", 0, 1, sent)
	binary.BigEndian.PutUint32(raw[batchNumRecsOffset:], n+1)
	if _, _, _, err := walkBatches(raw, 0, 100, nil); err == nil || !strings.Contains(err.Error(), "its header says 11") {
		t.Errorf("a header of 11 records over 10: %v", err)
	}
}
