package objectlog_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratabroker/strata/objectlog"
)

// Independent codecs for the interop tests: the standard library's gzip,
// snappy with and without Kafka's Java (xerial) framing, lz4 frames with
// the library defaults, and a streaming zstd encoder.
func compressIndependently(t testing.TB, codec string, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case "none":
		return bytes.Clone(src)
	case "gzip":
		zw := stdgzip.NewWriter(&buf)
		zw.Write(src)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case "snappy":
		return snappy.Encode(nil, src)
	case "snappy-xerial":
		return xerial.Encode(nil, src)
	case "lz4":
		zw := lz4.NewWriter(&buf)
		zw.Write(src)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(src)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("codec %q", codec)
	}
	return buf.Bytes()
}

func decompressIndependently(t testing.TB, c objectlog.Codec, src []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case objectlog.CodecNone:
		return src
	case objectlog.CodecGzip:
		zr, err := stdgzip.NewReader(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case objectlog.CodecSnappy:
		out, err := xerial.Decode(src)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case objectlog.CodecLZ4:
		r = lz4.NewReader(bytes.NewReader(src))
	case objectlog.CodecZstd:
		zr, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	return out
}

// kmsgRecords encodes records the way a Kafka client does, with kmsg.
func kmsgRecords(recs []objectlog.Record, first int64) []byte {
	var out []byte
	for i, r := range recs {
		kr := kmsg.Record{TimestampDelta64: r.Timestamp - first, OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		// kmsg writes the length it is given: measure with a one-byte
		// zero length, then encode for real.
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		out = kr.AppendTo(out)
	}
	return out
}

// kmsgBatch frames records as a RecordBatch v2 with kmsg and seals it.
func kmsgBatch(kb kmsg.RecordBatch, records []byte) []byte {
	kb.Magic = 2
	kb.Records = records
	kb.Length = int32(49 + len(records))
	raw := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

func TestRecordBatchInteropWithKmsg(t *testing.T) {
	t.Parallel()
	recs := []objectlog.Record{
		{Key: []byte("k0"), Value: []byte("hello"), Timestamp: baseTime + 10, Headers: []objectlog.Header{{Key: "a", Value: []byte("1")}, {Key: "null", Value: nil}}},
		{Key: nil, Value: []byte{}, Timestamp: baseTime},
		{Key: []byte{}, Value: nil, Timestamp: baseTime + 99},
		{Key: []byte("k3"), Value: bytes.Repeat([]byte("compress me "), 500), Timestamp: baseTime + 5},
	}
	bspec := objectlog.BatchSpec{ProducerID: 4242, ProducerEpoch: 3, BaseSequence: 17, Transactional: true}
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			s := bspec
			s.Codec = codec
			w := objectlog.NewSegmentWriter()
			if _, err := w.AppendRecords(topicA, 0, s, recs); err != nil {
				t.Fatal(err)
			}
			data, footer := mustFinish(t, w)
			raw := chunkBytes(data, footer.Chunks[0])

			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(raw); err != nil {
				t.Fatalf("kmsg.RecordBatch.ReadFrom: %v", err)
			}
			if kb.FirstOffset != 0 || kb.PartitionLeaderEpoch != -1 || kb.Magic != 2 || int(kb.Length) != len(raw)-12 {
				t.Errorf("framing: offset %d epoch %d magic %d length %d (batch %d bytes)", kb.FirstOffset, kb.PartitionLeaderEpoch, kb.Magic, kb.Length, len(raw))
			}
			if uint32(kb.CRC) != crc32.Checksum(raw[21:], castagnoli) {
				t.Errorf("crc %#x is not CRC32C of attributes..end", uint32(kb.CRC))
			}
			// Attribute bits as Kafka numbers them: codec 0-2, transactional 4.
			if kb.Attributes&0x07 != int16(codec) || kb.Attributes&0x10 == 0 || kb.Attributes&0x28 != 0 {
				t.Errorf("attributes %#x for codec %v, transactional", kb.Attributes, codec)
			}
			if kb.LastOffsetDelta != 3 || kb.NumRecords != 4 || kb.FirstTimestamp != baseTime+10 || kb.MaxTimestamp != baseTime+99 ||
				kb.ProducerID != 4242 || kb.ProducerEpoch != 3 || kb.FirstSequence != 17 {
				t.Errorf("header %+v", kb)
			}

			records := decompressIndependently(t, codec, kb.Records)
			for i, want := range recs {
				length, n := binary.Varint(records)
				if n <= 0 || int(length)+n > len(records) {
					t.Fatalf("record %d: bad length varint", i)
				}
				var kr kmsg.Record
				if err := kr.ReadFrom(records[:n+int(length)]); err != nil {
					t.Fatalf("record %d: kmsg.Record.ReadFrom: %v", i, err)
				}
				records = records[n+int(length):]
				if kr.OffsetDelta != int32(i) || kb.FirstTimestamp+kr.TimestampDelta64 != want.Timestamp ||
					!sameBytes(kr.Key, want.Key) || !sameBytes(kr.Value, want.Value) || len(kr.Headers) != len(want.Headers) {
					t.Errorf("record %d: %+v, want %+v", i, kr, want)
					continue
				}
				for j, h := range want.Headers {
					if kr.Headers[j].Key != h.Key || !sameBytes(kr.Headers[j].Value, h.Value) {
						t.Errorf("record %d header %d: %+v, want %+v", i, j, kr.Headers[j], h)
					}
				}
			}
			if len(records) != 0 {
				t.Errorf("%d bytes after the last record", len(records))
			}
		})
	}
}

func TestSegmentEncodedBatchKeptByteForByte(t *testing.T) {
	t.Parallel()
	recs := []objectlog.Record{
		{Key: []byte("java"), Value: []byte("client"), Timestamp: baseTime + 7, Headers: []objectlog.Header{{Key: "h", Value: nil}}},
		{Key: nil, Value: bytes.Repeat([]byte("abc"), 300), Timestamp: baseTime + 3},
	}
	for _, name := range []string{"none", "gzip", "snappy", "snappy-xerial", "lz4", "zstd"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			codec, err := objectlog.ParseCodec(strings.TrimSuffix(name, "-xerial"))
			if err != nil {
				t.Fatal(err)
			}
			raw := kmsgBatch(kmsg.RecordBatch{
				FirstOffset:          1234, // whatever the client had; readers rewrite it
				PartitionLeaderEpoch: 9,
				Attributes:           int16(codec),
				LastOffsetDelta:      1,
				FirstTimestamp:       baseTime + 7,
				MaxTimestamp:         baseTime + 7,
				ProducerID:           55,
				ProducerEpoch:        2,
				FirstSequence:        1000,
				NumRecords:           2,
			}, compressIndependently(t, name, kmsgRecords(recs, baseTime+7)))

			w := objectlog.NewSegmentWriter()
			// A batch of ours first, so the encoded one is not at chunk byte 0.
			if _, err := w.AppendRecords(topicB, 4, spec(objectlog.CodecNone), recs[:1]); err != nil {
				t.Fatal(err)
			}
			info, err := w.AppendEncodedBatch(topicB, 4, raw)
			if err != nil {
				t.Fatalf("AppendEncodedBatch: %v", err)
			}
			if info.ByteOffset == 0 || int(info.ByteLength) != len(raw) || info.Records != 2 || info.ProducerID != 55 ||
				info.ProducerEpoch != 2 || info.BaseSequence != 1000 || info.Attrs.Codec() != codec {
				t.Errorf("BatchInfo %+v", info)
			}
			data, footer := mustFinish(t, w)
			c := footer.Chunks[0]
			stored := data[c.Batches[1].ByteOffset : c.Batches[1].ByteOffset+int64(c.Batches[1].ByteLength)]
			if !bytes.Equal(stored, raw) {
				t.Fatalf("stored batch differs from the one appended")
			}
			if c.Records != 3 || !slicesEqual(c.ProducerIDs, []int64{55}) {
				t.Errorf("chunk %+v", c)
			}
			batches, err := objectlog.DecodeChunk(chunkBytes(data, c), -1)
			if err != nil {
				t.Fatal(err)
			}
			if batches[1].BaseOffset != 1234 || batches[1].PartitionLeaderEpoch != 9 {
				t.Errorf("as stored: base %d epoch %d", batches[1].BaseOffset, batches[1].PartitionLeaderEpoch)
			}
			got, err := batches[1].Records()
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			checkRecords(t, got, recs, 1234)
		})
	}
}

func slicesEqual(a, b []int64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestSegmentEncodedBatchRejects(t *testing.T) {
	t.Parallel()
	good := kmsgBatch(kmsg.RecordBatch{Attributes: 0, LastOffsetDelta: 0, NumRecords: 1, ProducerID: -1, FirstSequence: -1},
		kmsgRecords([]objectlog.Record{{Value: []byte("v")}}, 0))
	reseal := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
		return b
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		reason string
	}{
		{"crc", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, "batch crc"},
		{"magic 1", func(b []byte) []byte { b[16] = 1; return b }, "magic 1"},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }, "after the batch"},
		{"two batches", func(b []byte) []byte { return append(b, b...) }, "after the batch"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "exceeds"},
		{"header only", func(b []byte) []byte { return b[:40] }, "header truncated"},
		{"length too small", func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 10); return b }, "below the minimum"},
		{"codec 6", func(b []byte) []byte { b[22] |= 6; return reseal(b) }, "codec 6"},
		{"negative last offset delta", func(b []byte) []byte { binary.BigEndian.PutUint32(b[23:], 0xffffffff); return reseal(b) }, "last offset delta"},
		{"record count above offsets", func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 2); return reseal(b) }, "record count"},
		{"empty", func([]byte) []byte { return nil }, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := objectlog.NewSegmentWriter()
			before := w.Len()
			_, err := w.AppendEncodedBatch(topicA, 0, tt.mutate(bytes.Clone(good)))
			if !errors.Is(err, objectlog.ErrCorrupt) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("AppendEncodedBatch: %v, want ErrCorrupt saying %q", err, tt.reason)
			}
			if w.Len() != before || w.Chunks() != 0 {
				t.Errorf("a rejected batch changed the writer")
			}
		})
	}
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendEncodedBatch(topicA, 0, good); err != nil {
		t.Errorf("the unmutated batch: %v", err)
	}
}

// sealed frames hand-made record bytes in an uncompressed batch with a
// valid CRC, to reach the record decoder past the checksum.
func sealed(lastOffsetDelta, numRecords int32, records []byte) objectlog.Batch {
	raw := kmsgBatch(kmsg.RecordBatch{LastOffsetDelta: lastOffsetDelta, NumRecords: numRecords, ProducerID: -1, FirstSequence: -1}, records)
	return objectlog.Batch{LastOffsetDelta: lastOffsetDelta, NumRecords: numRecords, Raw: raw}
}

func TestRecordsMalformed(t *testing.T) {
	t.Parallel()
	one := kmsgRecords([]objectlog.Record{{Key: []byte("k"), Value: []byte("value"), Headers: []objectlog.Header{{Key: "h", Value: []byte("x")}}}}, 0)
	two := kmsgRecords([]objectlog.Record{{Value: []byte("a")}, {Value: []byte("b")}}, 0)
	varint := func(v int64) []byte { return binary.AppendVarint(nil, v) }
	record := func(parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return append(varint(int64(len(body))), body...)
	}
	tests := []struct {
		name    string
		batch   objectlog.Batch
		reason  string
		atBytes int64
	}{
		{"more records than bytes", sealed(5, 6, one), "cannot fit", 0},
		{"trailing bytes", sealed(0, 1, append(bytes.Clone(one), 0, 0)), "after the last", int64(len(one))},
		{"record length past end", sealed(0, 1, append(varint(100), one[1:]...)), "record length 100", 0},
		{"key length past record", sealed(0, 1, record([]byte{0}, varint(0), varint(0), varint(50), varint(0), varint(0))), "key length 50", 4},
		{"key length -2", sealed(0, 1, record([]byte{0}, varint(0), varint(0), varint(-2), varint(0), varint(0))), "key length -2", 4},
		{"header count huge", sealed(0, 1, record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(1000))), "header count 1000", 6},
		{"null header key", sealed(0, 1, record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(1), varint(-1), varint(-1))), "header key length -1", 7},
		{"fields shorter than length", sealed(0, 1, record([]byte{0}, varint(0), varint(0), varint(-1), varint(-1), varint(0), []byte{9, 9})), "fields take 6 bytes", 0},
		{"offset deltas repeat", sealed(1, 2, append(bytes.Clone(two[:len(two)/2]), two[:len(two)/2]...)), "offset delta 0", int64(len(two) / 2)},
		{"offset delta past last", sealed(0, 1, two[len(two)/2:]), "offset delta 1 not in 0..0", 0},
		{"varint overflow", sealed(0, 1, bytes.Repeat([]byte{0xff}, 12)), "overflows", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Through DecodeChunk when the header is valid, directly otherwise.
			b := tt.batch
			if bs, err := objectlog.DecodeChunk(bytes.Clone(b.Raw), 0); err == nil {
				b = bs[0]
			} else if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("DecodeChunk: %v", err)
			} else {
				return // rejected at the header, which is as good
			}
			_, err := b.Records()
			var fe *objectlog.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("Records: %v, want a FormatError", err)
			}
			if !strings.Contains(fe.Reason, tt.reason) || !strings.Contains(fe.Where, "records of batch") || fe.Offset != tt.atBytes {
				t.Errorf("error %q: want %q at records byte %d", err, tt.reason, tt.atBytes)
			}
		})
	}

	// Every truncation of a valid record stream, resealed so the CRC
	// passes, fails cleanly.
	recs := kmsgRecords([]objectlog.Record{
		{Key: []byte("key"), Value: []byte("value"), Headers: []objectlog.Header{{Key: "h1", Value: []byte("v1")}, {Key: "h2"}}, Timestamp: 5},
		{Key: nil, Value: bytes.Repeat([]byte{'x'}, 200), Timestamp: -300},
	}, 0)
	for n := range len(recs) {
		bs, err := objectlog.DecodeChunk(sealed(1, 2, recs[:n]).Raw, 0)
		if err == nil {
			_, err = bs[0].Records()
		}
		if !errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("records truncated to %d of %d bytes: %v, want ErrCorrupt", n, len(recs), err)
		}
	}
}

func TestRecordsDecompressionBounded(t *testing.T) {
	t.Parallel()
	big := []objectlog.Record{{Value: make([]byte, 8<<20)}} // compresses to almost nothing
	for _, codec := range allCodecs {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			w := objectlog.NewSegmentWriter()
			if _, err := w.AppendRecords(topicA, 0, spec(codec), big); err != nil {
				t.Fatal(err)
			}
			data, footer := mustFinish(t, w)
			bs, err := objectlog.DecodeChunk(chunkBytes(data, footer.Chunks[0]), 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = bs[0].AppendRecords(nil, 1<<20)
			if !errors.Is(err, objectlog.ErrCorrupt) || !strings.Contains(err.Error(), "limit") {
				t.Errorf("8 MiB batch under a 1 MiB limit: %v, want ErrCorrupt about the limit", err)
			}
			got, err := bs[0].AppendRecords(nil, 16<<20)
			if err != nil || len(got) != 1 || len(got[0].Value) != 8<<20 {
				t.Errorf("under a 16 MiB limit: %d records, %v", len(got), err)
			}
		})
	}
}

func TestRecordsLogAppendTimeAndControl(t *testing.T) {
	t.Parallel()
	w := objectlog.NewSegmentWriter()
	s := objectlog.BatchSpec{Codec: objectlog.CodecLZ4, ProducerID: 1, BaseSequence: -1, LogAppendTime: true, Transactional: true, Control: true}
	info, err := w.AppendRecords(topicA, 0, s, []objectlog.Record{{Value: []byte("a"), Timestamp: baseTime}, {Value: []byte("b"), Timestamp: baseTime + 50}})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Attrs.LogAppendTime() || !info.Attrs.Control() || !info.Attrs.Transactional() || info.Attrs.Codec() != objectlog.CodecLZ4 {
		t.Errorf("attrs %#x", info.Attrs)
	}
	data, footer := mustFinish(t, w)
	bs, err := objectlog.DecodeChunk(chunkBytes(data, footer.Chunks[0]), 10)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := bs[0].Records()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Timestamp != baseTime+50 {
			t.Errorf("offset %d: timestamp %d, want the batch's max %d under LogAppendTime", r.Offset, r.Timestamp, baseTime+50)
		}
	}
	if bs[0].NextOffset() != 12 {
		t.Errorf("NextOffset %d, want 12", bs[0].NextOffset())
	}
}

// CheckRecords is the produce path's walk (Kafka's LogValidator): it takes
// what a producer sends in every codec, and refuses, as ErrCorrupt naming
// the byte, every record that does not parse, offset deltas other than
// 0..n-1 in order, a record count other than the records or the offsets,
// bytes after the last record, and a codec over records it never
// compressed.
func TestCheckRecords(t *testing.T) {
	t.Parallel()
	rich := []objectlog.Record{
		{Key: []byte("k"), Value: []byte("v"), Headers: []objectlog.Header{{Key: "h", Value: nil}}, Timestamp: 3},
		{Key: []byte{}, Value: nil, Timestamp: 4},
		{Key: nil, Value: bytes.Repeat([]byte("x"), 300), Timestamp: 5},
	}
	for codec := objectlog.CodecNone; codec <= objectlog.CodecZstd; codec++ {
		w := objectlog.NewSegmentWriter()
		spec := objectlog.NoProducer
		spec.Codec = codec
		if _, err := w.AppendRecords([16]byte{}, 0, spec, rich); err != nil {
			t.Fatal(err)
		}
		data, footer, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		c := footer.Chunks[0]
		bs, err := objectlog.DecodeChunk(data[c.ByteOffset:c.ByteOffset+c.ByteLength], -1)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time from a pooled buffer
			if check, err := bs[0].CheckRecords(0); err != nil || check.NullKeyDelta != 2 {
				t.Fatalf("%s: %+v, %v; want it taken, first null key at delta 2", codec, check, err)
			}
		}
	}

	one := kmsgRecords([]objectlog.Record{{Key: []byte("k"), Value: []byte("value")}}, 0)
	three := kmsgRecords([]objectlog.Record{{Key: []byte("a")}, {Key: []byte("b")}, {Key: []byte("c")}}, 0)
	n := len(three) / 3 // each record's length
	// Records 1 and 2 swapped: deltas 0, 2, 1.
	swapped := slices.Concat(three[:n], three[2*n:], three[n:2*n])
	gzipped := sealed(0, 1, one)
	binary.BigEndian.PutUint16(gzipped.Raw[21:], uint16(objectlog.CodecGzip))
	binary.BigEndian.PutUint32(gzipped.Raw[17:], crc32.Checksum(gzipped.Raw[21:], castagnoli))
	tests := []struct {
		name    string
		batch   objectlog.Batch
		reason  string
		where   string
		atBytes int64
	}{
		{"gzip over plain records", gzipped, "gzip records", "chunk", 61},
		{"record length 0x7f", sealed(0, 1, append([]byte{0x7f}, one[1:]...)), "record length -64", "records of batch", 0},
		{"record count below the records", sealed(2, 2, three), "record count 2 but last offset delta 2", "chunk", 57},
		{"records after the count", sealed(1, 2, three), "bytes after the last of 2 records", "records of batch", int64(2 * n)},
		{"record count above the records", sealed(3, 4, append(bytes.Clone(three), 0, 0, 0, 0)), "record length 0 outside", "records of batch", int64(3 * n)},
		{"offsets with a gap (as compaction leaves them)", sealed(2, 2, three[:2*n]), "record count 2 but last offset delta 2", "chunk", 57},
		{"offset deltas out of order", sealed(2, 3, swapped), "record 1 has offset delta 2", "records of batch", int64(n)},
		{"key length past record", sealed(0, 1, append([]byte{one[0]}, append([]byte{0, 0, 0, 100}, one[5:]...)...)), "key length 50", "records of batch", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.batch
			if bs, err := objectlog.DecodeChunk(bytes.Clone(b.Raw), -1); err != nil {
				t.Fatalf("the header must pass for CheckRecords to matter: %v", err)
			} else {
				b = bs[0]
			}
			check, err := b.CheckRecords(0)
			var fe *objectlog.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("CheckRecords: %+v, %v; want a FormatError", check, err)
			}
			if !strings.Contains(fe.Reason, tt.reason) || !strings.HasPrefix(fe.Where, tt.where) || fe.Offset != tt.atBytes {
				t.Errorf("error %q (where %q byte %d): want %q in %q at byte %d", err, fe.Where, fe.Offset, tt.reason, tt.where, tt.atBytes)
			}
		})
	}

	// Every truncation of a valid record stream, resealed so the CRC
	// passes, is refused.
	for k := range len(three) {
		bs, err := objectlog.DecodeChunk(sealed(2, 3, three[:k]).Raw, -1)
		if err == nil {
			_, err = bs[0].CheckRecords(0)
		}
		if !errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("records truncated to %d of %d bytes: %v, want ErrCorrupt", k, len(three), err)
		}
	}
}
