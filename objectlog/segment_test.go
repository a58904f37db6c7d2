package objectlog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/objectlog"
)

var allCodecs = []objectlog.Codec{
	objectlog.CodecNone, objectlog.CodecGzip, objectlog.CodecSnappy, objectlog.CodecLZ4, objectlog.CodecZstd,
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	topicA = uuid.MustParse("0191e7a4-0000-7000-8000-00000000000a")
	topicB = uuid.MustParse("0191e7a4-0000-7000-8000-00000000000b")
)

const baseTime = int64(1_700_000_000_000)

// words makes semi-compressible text: random words from a small vocabulary.
func words(r *rand.Rand, n int) []byte {
	vocab := []string{"strata", "segment", "offset", "chunk", "broker", "object", "record", "batch",
		"partition", "topic", "footer", "trailer", "commit", "flush", "index", "fetch", "lorem", "ipsum"}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, vocab[r.IntN(len(vocab))]...)
		b = append(b, ' ')
		if r.IntN(8) == 0 {
			b = fmt.Appendf(b, "%d ", r.Uint32())
		}
	}
	return b[:n]
}

// recordShapes are the kinds of records every codec must round-trip.
var recordShapes = []struct {
	name string
	make func(r *rand.Rand) []objectlog.Record
}{
	{"plain", func(r *rand.Rand) []objectlog.Record {
		recs := make([]objectlog.Record, 50)
		for i := range recs {
			recs[i] = objectlog.Record{Key: fmt.Appendf(nil, "key-%d", i), Value: words(r, 100), Timestamp: baseTime + int64(i)}
		}
		return recs
	}},
	{"headers", func(r *rand.Rand) []objectlog.Record {
		recs := make([]objectlog.Record, 20)
		for i := range recs {
			recs[i] = objectlog.Record{
				Key:   []byte("k"),
				Value: words(r, 30),
				Headers: []objectlog.Header{
					{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)},
					{Key: "null-value", Value: nil},
					{Key: "empty-value", Value: []byte{}},
					{Key: "", Value: []byte("empty key")},
				}[:i%5],
				Timestamp: baseTime + int64(i*10),
			}
		}
		return recs
	}},
	{"null-keys", func(r *rand.Rand) []objectlog.Record {
		recs := make([]objectlog.Record, 10)
		for i := range recs {
			recs[i] = objectlog.Record{Key: nil, Value: words(r, 40), Timestamp: baseTime}
		}
		return recs
	}},
	{"empty-and-null-values", func(r *rand.Rand) []objectlog.Record {
		return []objectlog.Record{
			{Key: []byte{}, Value: []byte{}, Timestamp: baseTime},
			{Key: []byte("tombstone"), Value: nil, Timestamp: baseTime + 1},
			{Key: nil, Value: nil, Timestamp: baseTime + 2},
			{Key: []byte("x"), Value: []byte{}, Timestamp: baseTime + 3},
		}
	}},
	{"large-values", func(r *rand.Rand) []objectlog.Record {
		random := make([]byte, 1<<20)
		for i := range random {
			random[i] = byte(r.Uint32())
		}
		return []objectlog.Record{
			{Key: []byte("random"), Value: random, Timestamp: baseTime},
			{Key: []byte("words"), Value: words(r, 3<<20), Timestamp: baseTime + 5},
			{Key: []byte("small"), Value: []byte("v"), Timestamp: baseTime + 6},
		}
	}},
	{"unordered-timestamps", func(r *rand.Rand) []objectlog.Record {
		return []objectlog.Record{
			{Value: []byte("a"), Timestamp: baseTime + 1000},
			{Value: []byte("b"), Timestamp: baseTime - 5000},
			{Value: []byte("c"), Timestamp: baseTime + 90_000},
			{Value: []byte("d"), Timestamp: 0},
		}
	}},
}

func spec(c objectlog.Codec) objectlog.BatchSpec {
	s := objectlog.NoProducer
	s.Codec = c
	return s
}

// sameBytes compares with null-ness: nil and empty differ in Kafka.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func checkRecords(t *testing.T, got []objectlog.DecodedRecord, want []objectlog.Record, firstOffset int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("decoded %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != firstOffset+int64(i) {
			t.Errorf("record %d: offset %d, want %d", i, g.Offset, firstOffset+int64(i))
		}
		if g.Timestamp != w.Timestamp {
			t.Errorf("record %d: timestamp %d, want %d", i, g.Timestamp, w.Timestamp)
		}
		if !sameBytes(g.Key, w.Key) {
			t.Errorf("record %d: key %q (nil %v), want %q (nil %v)", i, g.Key, g.Key == nil, w.Key, w.Key == nil)
		}
		if !sameBytes(g.Value, w.Value) {
			t.Errorf("record %d: value of %d bytes (nil %v), want %d (nil %v)", i, len(g.Value), g.Value == nil, len(w.Value), w.Value == nil)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Errorf("record %d header %d: %q=%q, want %q=%q", i, j, g.Headers[j].Key, g.Headers[j].Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
}

func mustFinish(t testing.TB, w *objectlog.SegmentWriter) ([]byte, objectlog.Footer) {
	t.Helper()
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return bytes.Clone(data), footer
}

func chunkBytes(data []byte, c objectlog.ChunkInfo) []byte {
	return bytes.Clone(data[c.ByteOffset : c.ByteOffset+c.ByteLength])
}

func TestCodecParseAndString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    objectlog.Codec
		wantErr bool
	}{
		{"none", objectlog.CodecNone, false},
		{"uncompressed", objectlog.CodecNone, false},
		{"GZIP", objectlog.CodecGzip, false},
		{"snappy", objectlog.CodecSnappy, false},
		{" lz4 ", objectlog.CodecLZ4, false},
		{"zstd", objectlog.CodecZstd, false},
		{"brotli", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := objectlog.ParseCodec(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseCodec(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
	for _, c := range allCodecs {
		back, err := objectlog.ParseCodec(c.String())
		if err != nil || back != c {
			t.Errorf("ParseCodec(%v.String()) = %v, %v", c, back, err)
		}
	}
	if s := objectlog.Codec(6).String(); !strings.Contains(s, "6") || objectlog.Codec(6).Valid() {
		t.Errorf("Codec(6): String %q Valid %v", s, objectlog.Codec(6).Valid())
	}
}

func TestSegmentRoundTripCodecsAndShapes(t *testing.T) {
	t.Parallel()
	for _, codec := range allCodecs {
		for _, shape := range recordShapes {
			t.Run(codec.String()+"/"+shape.name, func(t *testing.T) {
				t.Parallel()
				recs := shape.make(rand.New(rand.NewPCG(1, uint64(len(shape.name)))))
				w := objectlog.NewSegmentWriter()
				info, err := w.AppendRecords(topicA, 3, spec(codec), recs)
				if err != nil {
					t.Fatalf("AppendRecords: %v", err)
				}
				if info.Records != int32(len(recs)) || info.ByteOffset != 0 || info.Attrs.Codec() != codec {
					t.Errorf("BatchInfo %+v: want %d records at chunk byte 0, codec %v", info, len(recs), codec)
				}
				wantLen := w.Len()
				data, footer := mustFinish(t, w)
				if len(data) != wantLen {
					t.Errorf("Len before Finish %d, segment is %d bytes", wantLen, len(data))
				}
				if _, err := objectlog.VerifySegment(data); err != nil {
					t.Fatalf("VerifySegment: %v", err)
				}
				parsed, err := objectlog.ParseFooter(data, int64(len(data)))
				if err != nil {
					t.Fatalf("ParseFooter: %v", err)
				}
				if len(parsed.Chunks) != 1 {
					t.Fatalf("%d chunks, want 1", len(parsed.Chunks))
				}
				c := parsed.Chunks[0]
				if c.TopicID != topicA || c.Partition != 3 || c.Records != int64(len(recs)) || c.BatchCount != 1 {
					t.Errorf("chunk %+v", c)
				}
				if c.ByteOffset != footer.Chunks[0].Batches[0].ByteOffset || c.ByteLength != int64(info.ByteLength) {
					t.Errorf("chunk at %d+%d, batch info at %d+%d", c.ByteOffset, c.ByteLength, footer.Chunks[0].Batches[0].ByteOffset, info.ByteLength)
				}
				batches, err := objectlog.DecodeChunk(chunkBytes(data, c), 42)
				if err != nil {
					t.Fatalf("DecodeChunk: %v", err)
				}
				if len(batches) != 1 || batches[0].BaseOffset != 42 || batches[0].Attrs.Codec() != codec {
					t.Fatalf("batches %+v", batches)
				}
				got, err := batches[0].Records()
				if err != nil {
					t.Fatalf("Records: %v", err)
				}
				checkRecords(t, got, recs, 42)
			})
		}
	}
}

// interleave appends batches for several partitions of two topics, in an
// order that switches partitions between batches.
type appendStep struct {
	topic     uuid.UUID
	partition int32
	spec      objectlog.BatchSpec
	n         int
}

var interleavedSteps = []appendStep{
	{topicA, 0, objectlog.BatchSpec{Codec: objectlog.CodecZstd, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 0}, 3},
	{topicB, 0, objectlog.BatchSpec{Codec: objectlog.CodecNone, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, 1},
	{topicA, 1, objectlog.BatchSpec{Codec: objectlog.CodecGzip, ProducerID: 9, ProducerEpoch: 0, BaseSequence: 100, Transactional: true}, 4},
	{topicA, 0, objectlog.BatchSpec{Codec: objectlog.CodecSnappy, ProducerID: 3, ProducerEpoch: 2, BaseSequence: 5}, 2},
	{topicB, 0, objectlog.BatchSpec{Codec: objectlog.CodecLZ4, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 3}, 5},
	{topicA, 0, objectlog.BatchSpec{Codec: objectlog.CodecNone, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 3}, 1},
	{topicA, 1, objectlog.BatchSpec{Codec: objectlog.CodecNone, ProducerID: 9, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}, 1},
}

func stepRecords(s appendStep, i int) []objectlog.Record {
	recs := make([]objectlog.Record, s.n)
	for j := range recs {
		recs[j] = objectlog.Record{
			Key:       fmt.Appendf(nil, "%s/%d/%d", s.topic.String()[:4], s.partition, j),
			Value:     fmt.Appendf(nil, "step %d record %d", i, j),
			Timestamp: baseTime + int64(i*100+j),
		}
	}
	return recs
}

func TestSegmentManyPartitions(t *testing.T) {
	t.Parallel()
	w := objectlog.NewSegmentWriter()
	var infos []objectlog.BatchInfo
	for i, s := range interleavedSteps {
		info, err := w.AppendRecords(s.topic, s.partition, s.spec, stepRecords(s, i))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		infos = append(infos, info)
	}
	if w.Chunks() != 3 {
		t.Errorf("Chunks() = %d, want 3", w.Chunks())
	}
	wantLen := w.Len()
	data, footer := mustFinish(t, w)
	if len(data) != wantLen {
		t.Errorf("Len %d, segment %d bytes", wantLen, len(data))
	}
	parsed, err := objectlog.VerifySegment(data)
	if err != nil {
		t.Fatalf("VerifySegment: %v", err)
	}

	type want struct {
		topic           uuid.UUID
		partition       int32
		steps           []int
		pids            []int64
		txn, ctrl       bool
		first, maxStamp int64
	}
	wants := []want{
		{topicA, 0, []int{0, 3, 5}, []int64{3, 7}, false, false, baseTime, baseTime + 500},
		{topicB, 0, []int{1, 4}, []int64{7}, false, false, baseTime + 100, baseTime + 404},
		{topicA, 1, []int{2, 6}, []int64{9}, true, true, baseTime + 200, baseTime + 600},
	}
	if len(parsed.Chunks) != len(wants) {
		t.Fatalf("%d chunks, want %d", len(parsed.Chunks), len(wants))
	}
	for ci, wc := range wants {
		pc, fc := parsed.Chunks[ci], footer.Chunks[ci]
		var records int64
		for _, s := range wc.steps {
			records += int64(interleavedSteps[s].n)
		}
		if pc.TopicID != wc.topic || pc.Partition != wc.partition || pc.Records != records ||
			pc.BatchCount != int32(len(wc.steps)) || !slices.Equal(pc.ProducerIDs, wc.pids) ||
			pc.Transactional != wc.txn || pc.Control != wc.ctrl || pc.FirstTimestamp != wc.first || pc.MaxTimestamp != wc.maxStamp {
			t.Errorf("chunk %d: %+v, want %+v with %d records", ci, pc, wc, records)
		}
		if pc.Batches != nil {
			t.Errorf("chunk %d: a parsed footer has batch infos", ci)
		}
		fcNoBatches := fc
		fcNoBatches.Batches = nil
		if fmt.Sprint(fcNoBatches) != fmt.Sprint(pc) {
			t.Errorf("chunk %d: Finish footer %+v, parsed %+v", ci, fcNoBatches, pc)
		}
		if p, ok := parsed.Chunk(wc.topic, wc.partition); !ok || p.ByteOffset != pc.ByteOffset {
			t.Errorf("Footer.Chunk(%v, %d) = %+v, %v", wc.topic, wc.partition, p, ok)
		}

		// Per-batch infos: object offsets, and the fields the index needs.
		if len(fc.Batches) != len(wc.steps) {
			t.Fatalf("chunk %d: %d batch infos, want %d", ci, len(fc.Batches), len(wc.steps))
		}
		next := int64(1000 * ci)
		batches, err := objectlog.DecodeChunk(chunkBytes(data, pc), next)
		if err != nil {
			t.Fatalf("chunk %d: %v", ci, err)
		}
		for bi, s := range wc.steps {
			st, bInfo, appendInfo := interleavedSteps[s], fc.Batches[bi], infos[s]
			if bInfo.ByteOffset != pc.ByteOffset+appendInfo.ByteOffset {
				t.Errorf("chunk %d batch %d: object offset %d, want chunk %d + %d", ci, bi, bInfo.ByteOffset, pc.ByteOffset, appendInfo.ByteOffset)
			}
			one, err := objectlog.DecodeChunk(bytes.Clone(data[bInfo.ByteOffset:bInfo.ByteOffset+int64(bInfo.ByteLength)]), -1)
			if err != nil || len(one) != 1 {
				t.Fatalf("chunk %d batch %d at its BatchInfo range: %v", ci, bi, err)
			}
			if got := one[0].Info(); got.ProducerID != st.spec.ProducerID || got.ProducerEpoch != st.spec.ProducerEpoch ||
				got.BaseSequence != st.spec.BaseSequence || got.Records != int32(st.n) ||
				got.Attrs.Transactional() != st.spec.Transactional || got.Attrs.Control() != st.spec.Control ||
				got.Attrs.Codec() != st.spec.Codec || got.FirstTimestamp != bInfo.FirstTimestamp || got.MaxTimestamp != bInfo.MaxTimestamp {
				t.Errorf("chunk %d batch %d: decoded %+v, writer said %+v, step %+v", ci, bi, got, bInfo, st)
			}
			if batches[bi].BaseOffset != next {
				t.Errorf("chunk %d batch %d: base offset %d, want %d", ci, bi, batches[bi].BaseOffset, next)
			}
			recs, err := batches[bi].Records()
			if err != nil {
				t.Fatalf("chunk %d batch %d: %v", ci, bi, err)
			}
			checkRecords(t, recs, stepRecords(st, s), next)
			next += int64(st.n)
		}
	}

	// The same batches appended grouped by partition make the same object:
	// interleaving changes how the writer gets there, not what it writes.
	g := objectlog.NewSegmentWriter()
	for _, wc := range wants {
		for _, s := range wc.steps {
			if _, err := g.AppendRecords(interleavedSteps[s].topic, interleavedSteps[s].partition, interleavedSteps[s].spec, stepRecords(interleavedSteps[s], s)); err != nil {
				t.Fatal(err)
			}
		}
	}
	grouped, _ := mustFinish(t, g)
	if !bytes.Equal(grouped, data) {
		t.Errorf("grouped appends made a different segment (%d vs %d bytes)", len(grouped), len(data))
	}
}

func TestSegmentWriterReuse(t *testing.T) {
	t.Parallel()
	w := objectlog.NewSegmentWriter()
	build := func() []byte {
		w.Reset()
		for i, s := range interleavedSteps {
			if _, err := w.AppendRecords(s.topic, s.partition, s.spec, stepRecords(s, i)); err != nil {
				t.Fatal(err)
			}
		}
		data, _ := mustFinish(t, w)
		return data
	}
	first := build()
	if _, err := w.AppendRecords(topicA, 0, spec(objectlog.CodecNone), stepRecords(interleavedSteps[0], 0)); !errors.Is(err, objectlog.ErrWriterFinished) {
		t.Errorf("append after Finish: %v, want ErrWriterFinished", err)
	}
	if _, _, err := w.Finish(); !errors.Is(err, objectlog.ErrWriterFinished) {
		t.Errorf("second Finish: %v, want ErrWriterFinished", err)
	}
	if second := build(); !bytes.Equal(first, second) {
		t.Errorf("reused writer made different bytes")
	}

	// An empty segment is valid and holds no chunks.
	w.Reset()
	empty, footer := mustFinish(t, w)
	if f, err := objectlog.VerifySegment(empty); err != nil || len(f.Chunks) != 0 || len(footer.Chunks) != 0 {
		t.Errorf("empty segment: %+v, %v", f, err)
	}

	// The zero value works too.
	var z objectlog.SegmentWriter
	if _, err := z.AppendRecords(topicB, 1, spec(objectlog.CodecNone), []objectlog.Record{{Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	zd, _ := mustFinish(t, &z)
	if _, err := objectlog.VerifySegment(zd); err != nil {
		t.Errorf("zero-value writer: %v", err)
	}
}

// Not parallel: testing.AllocsPerRun refuses to run in a parallel test.
func TestSegmentWriterSteadyStateAllocations(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	recs := make([]objectlog.Record, 100)
	for i := range recs {
		recs[i] = objectlog.Record{Key: []byte("k"), Value: words(r, 200), Headers: []objectlog.Header{{Key: "h", Value: []byte("v")}}, Timestamp: baseTime}
	}
	// Not gzip and lz4: their encoders keep buffers in sync.Pools, which the
	// race detector empties at random.
	for _, codec := range []objectlog.Codec{objectlog.CodecNone, objectlog.CodecSnappy, objectlog.CodecZstd} {
		w := objectlog.NewSegmentWriter()
		run := func() {
			w.Reset()
			for p := range int32(4) {
				if _, err := w.AppendRecords(topicA, p, spec(codec), recs); err != nil {
					t.Fatal(err)
				}
			}
		}
		run() // warm up buffers
		if allocs := testing.AllocsPerRun(20, run); allocs > 1 {
			t.Errorf("%v: %.1f allocations per 4 batches of 100 records once warm, want at most 1", codec, allocs)
		}
	}
}

func TestSegmentWriterRejectsBadInput(t *testing.T) {
	t.Parallel()
	one := []objectlog.Record{{Value: []byte("v")}}
	tests := []struct {
		name string
		spec objectlog.BatchSpec
		recs []objectlog.Record
	}{
		{"no records", spec(objectlog.CodecNone), nil},
		{"unknown codec", objectlog.BatchSpec{Codec: 5, ProducerID: -1, BaseSequence: -1}, one},
		{"transactional without producer", objectlog.BatchSpec{Transactional: true, ProducerID: -1, BaseSequence: -1}, one},
		{"producer id below -1", objectlog.BatchSpec{ProducerID: -2, BaseSequence: -1}, one},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := objectlog.NewSegmentWriter()
			_, err := w.AppendRecords(topicA, 0, tt.spec, tt.recs)
			if err == nil || errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("AppendRecords: %v, want a non-corruption error", err)
			}
			if w.Chunks() != 0 || w.Len() != len(mustEmpty(t)) {
				t.Errorf("a rejected batch left state: %d chunks, Len %d", w.Chunks(), w.Len())
			}
		})
	}
}

func mustEmpty(t *testing.T) []byte {
	t.Helper()
	data, _ := mustFinish(t, objectlog.NewSegmentWriter())
	return data
}

// smallSegment is a segment of two chunks, one compressed, small enough to
// damage byte by byte.
func smallSegment(t testing.TB) []byte {
	t.Helper()
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendRecords(topicA, 0, spec(objectlog.CodecNone), []objectlog.Record{
		{Key: []byte("a"), Value: []byte("one"), Headers: []objectlog.Header{{Key: "h", Value: []byte("x")}}, Timestamp: baseTime},
		{Key: nil, Value: []byte("two"), Timestamp: baseTime + 1},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AppendRecords(topicB, 2, objectlog.BatchSpec{Codec: objectlog.CodecSnappy, ProducerID: 5, BaseSequence: 0}, []objectlog.Record{
		{Value: []byte("three three three"), Timestamp: baseTime + 2},
	}); err != nil {
		t.Fatal(err)
	}
	data, _ := mustFinish(t, w)
	return data
}

// unprotected lists the bytes no checksum covers: each batch's base offset
// (rewritten by readers on purpose) and partition leader epoch. Kafka's CRC
// starts after them too.
func unprotected(t *testing.T, data []byte) map[int]bool {
	t.Helper()
	f, err := objectlog.VerifySegment(data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for _, c := range f.Chunks {
		batches, err := objectlog.DecodeChunk(chunkBytes(data, c), -1)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			start := int(c.ByteOffset) + b.ChunkOffset
			for i := start; i < start+8; i++ {
				out[i] = true
			}
			for i := start + 12; i < start+16; i++ {
				out[i] = true
			}
		}
	}
	return out
}

func TestSegmentEveryByteFlipDetected(t *testing.T) {
	t.Parallel()
	data := smallSegment(t)
	skip := unprotected(t, data)
	for i := range data {
		for _, mask := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			_, err := objectlog.VerifySegment(bad)
			if skip[i] {
				if err != nil {
					t.Errorf("byte %d (base offset or leader epoch) flipped: %v, want no error", i, err)
				}
				continue
			}
			if !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("byte %d ^ %#x: VerifySegment = %v, want ErrCorrupt", i, mask, err)
			}
		}
	}
}

func TestSegmentCorruptionNamesRegion(t *testing.T) {
	t.Parallel()
	data := smallSegment(t)
	f, err := objectlog.ParseFooter(data, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	c0 := f.Chunks[0]
	tests := []struct {
		name   string
		at     int64
		reason string
		atByte int64 // where the error must point, in the segment
	}{
		{"header magic", 0, "header magic", 0},
		{"header version", 8, "major version", 8},
		{"header flags", 10, "header crc", 12},
		{"batch crc field", c0.ByteOffset + 17, "batch crc", c0.ByteOffset + 17},
		{"batch attributes", c0.ByteOffset + 21, "batch crc", c0.ByteOffset + 17},
		{"batch record bytes", c0.ByteOffset + 70, "batch crc", c0.ByteOffset + 17},
		{"batch magic", c0.ByteOffset + 16, "magic", c0.ByteOffset + 16},
		{"footer chunk count", f.FooterOffset + 3, "footer crc", f.FooterOffset},
		{"footer entry", f.FooterOffset + 30, "footer crc", f.FooterOffset},
		{"trailer footer offset", int64(len(data)) - 32 + 7, "trailer crc", int64(len(data)) - 12},
		{"trailer crc", int64(len(data)) - 10, "trailer crc", int64(len(data)) - 12},
		{"trailer magic", int64(len(data)) - 1, "trailer magic", int64(len(data)) - 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad := bytes.Clone(data)
			bad[tt.at] ^= 0x40
			_, err := objectlog.VerifySegment(bad)
			var fe *objectlog.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("VerifySegment = %v, want a FormatError", err)
			}
			if !strings.Contains(fe.Reason, tt.reason) || fe.Where != "segment" || fe.Offset != tt.atByte {
				t.Errorf("error %q: want reason containing %q at segment byte %d", err, tt.reason, tt.atByte)
			}
		})
	}
}

func TestSegmentUnknownMajorVersionRejected(t *testing.T) {
	t.Parallel()
	data := smallSegment(t)
	tr := data[len(data)-32:]
	tr[16] = 2 // major version 2
	binary.BigEndian.PutUint32(tr[20:24], crc32.Checksum(tr[:20], castagnoli))
	_, err := objectlog.ParseFooter(data, int64(len(data)))
	if !errors.Is(err, objectlog.ErrCorrupt) || !strings.Contains(err.Error(), "major version 2") {
		t.Fatalf("ParseFooter of a v2 segment: %v, want ErrCorrupt naming the version", err)
	}
}

// rewriteFooter re-encodes a segment's footer as a later minor version
// might: extra bytes at the end of every entry and after the last entry.
func rewriteFooter(data []byte, f objectlog.Footer, minor byte, entryExtra, footerExtra int) []byte {
	out := bytes.Clone(data[:f.FooterOffset])
	foot := binary.BigEndian.AppendUint32(nil, uint32(len(f.Chunks)))
	for _, c := range f.Chunks {
		var e []byte
		e = append(e, c.TopicID[:]...)
		e = binary.BigEndian.AppendUint32(e, uint32(c.Partition))
		e = binary.BigEndian.AppendUint64(e, uint64(c.ByteOffset))
		e = binary.BigEndian.AppendUint64(e, uint64(c.ByteLength))
		e = binary.BigEndian.AppendUint64(e, uint64(c.Records))
		e = binary.BigEndian.AppendUint32(e, uint32(c.BatchCount))
		e = binary.BigEndian.AppendUint64(e, uint64(c.FirstTimestamp))
		e = binary.BigEndian.AppendUint64(e, uint64(c.MaxTimestamp))
		var flags uint16
		if c.Transactional {
			flags |= 1
		}
		if c.Control {
			flags |= 2
		}
		e = binary.BigEndian.AppendUint16(e, flags)
		e = binary.BigEndian.AppendUint32(e, uint32(len(c.ProducerIDs)))
		for _, id := range c.ProducerIDs {
			e = binary.BigEndian.AppendUint64(e, uint64(id))
		}
		e = append(e, make([]byte, entryExtra)...)
		foot = binary.BigEndian.AppendUint32(foot, uint32(len(e)))
		foot = append(foot, e...)
	}
	foot = append(foot, bytes.Repeat([]byte{0xEE}, footerExtra)...)
	out = append(out, foot...)
	tr := binary.BigEndian.AppendUint64(nil, uint64(f.FooterOffset))
	tr = binary.BigEndian.AppendUint32(tr, uint32(len(foot)))
	tr = binary.BigEndian.AppendUint32(tr, crc32.Checksum(foot, castagnoli))
	tr = append(tr, 1, minor, 0, 0)
	tr = binary.BigEndian.AppendUint32(tr, crc32.Checksum(tr, castagnoli))
	tr = append(tr, "STRATSEG"...)
	return append(out, tr...)
}

func TestSegmentMinorVersionExtensionsIgnored(t *testing.T) {
	t.Parallel()
	data := smallSegment(t)
	f, err := objectlog.ParseFooter(data, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if same := rewriteFooter(data, f, 0, 0, 0); !bytes.Equal(same, data) {
		t.Fatalf("the test's footer encoder disagrees with the writer; its layout is what FORMAT.md says")
	}
	later := rewriteFooter(data, f, 3, 24, 40)
	g, err := objectlog.VerifySegment(later)
	if err != nil {
		t.Fatalf("v1.3 segment: %v", err)
	}
	if g.MinorVersion != 3 || len(g.Chunks) != len(f.Chunks) {
		t.Fatalf("v1.3 footer %+v", g)
	}
	for i := range f.Chunks {
		if fmt.Sprint(g.Chunks[i]) != fmt.Sprint(f.Chunks[i]) {
			t.Errorf("chunk %d: %+v, want %+v", i, g.Chunks[i], f.Chunks[i])
		}
	}
}

func TestSegmentTruncatedAtEveryByte(t *testing.T) {
	t.Parallel()
	data := smallSegment(t)
	for n := range len(data) {
		prefix := data[:n]
		if _, err := objectlog.ParseFooter(prefix, int64(n)); !errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("ParseFooter of the first %d bytes: %v, want ErrCorrupt", n, err)
		}
		if _, err := objectlog.VerifySegment(prefix); !errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("VerifySegment of the first %d bytes: %v, want ErrCorrupt", n, err)
		}
		// The same bytes as the tail of a longer object (the footer as seen
		// from a truncated upload).
		if n >= 32 {
			if _, err := objectlog.ParseFooter(data[len(data)-n:], int64(len(data))+5); !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("ParseFooter of the last %d bytes claiming a longer object: %v", n, err)
			}
		}
	}
	f, _ := objectlog.ParseFooter(data, int64(len(data)))
	for _, c := range f.Chunks {
		chunk := chunkBytes(data, c)
		for n := range len(chunk) {
			if _, err := objectlog.DecodeChunk(bytes.Clone(chunk[:n]), 0); !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("DecodeChunk of %d of %d bytes: %v, want ErrCorrupt", n, len(chunk), err)
			}
			if err := objectlog.RewriteBaseOffsets(bytes.Clone(chunk[:n]), 0); !errors.Is(err, objectlog.ErrCorrupt) {
				t.Fatalf("RewriteBaseOffsets of %d of %d bytes: %v, want ErrCorrupt", n, len(chunk), err)
			}
		}
	}
}

func TestSegmentRewriteBaseOffsets(t *testing.T) {
	t.Parallel()
	w := objectlog.NewSegmentWriter()
	sizes := []int{3, 1, 5}
	for _, n := range sizes {
		recs := make([]objectlog.Record, n)
		for i := range recs {
			recs[i] = objectlog.Record{Value: fmt.Appendf(nil, "v%d", i), Timestamp: baseTime}
		}
		if _, err := w.AppendRecords(topicA, 0, spec(objectlog.CodecGzip), recs); err != nil {
			t.Fatal(err)
		}
	}
	data, footer := mustFinish(t, w)
	chunk := chunkBytes(data, footer.Chunks[0])

	tests := []struct {
		name string
		base int64
		want []int64
	}{
		{"from zero", 0, []int64{0, 3, 4}},
		{"from 100", 100, []int64{100, 103, 104}},
		{"large", 1 << 40, []int64{1 << 40, 1<<40 + 3, 1<<40 + 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := bytes.Clone(chunk)
			if err := objectlog.RewriteBaseOffsets(c, tt.base); err != nil {
				t.Fatal(err)
			}
			// The rewritten bytes are still valid batches, as a Kafka client
			// would check them, with the new base offsets.
			batches, err := objectlog.DecodeChunk(c, -1)
			if err != nil {
				t.Fatalf("rewritten chunk: %v", err)
			}
			for i, b := range batches {
				if b.BaseOffset != tt.want[i] || int64(binary.BigEndian.Uint64(b.Raw)) != tt.want[i] {
					t.Errorf("batch %d: base %d, want %d", i, b.BaseOffset, tt.want[i])
				}
				if crc := crc32.Checksum(b.Raw[21:], castagnoli); crc != binary.BigEndian.Uint32(b.Raw[17:]) {
					t.Errorf("batch %d: crc no longer matches", i)
				}
				recs, err := b.Records()
				if err != nil || len(recs) != sizes[i] || recs[0].Offset != tt.want[i] || recs[len(recs)-1].Offset != tt.want[i]+int64(sizes[i])-1 {
					t.Errorf("batch %d records: %v, %v", i, recs, err)
				}
			}
			// Nothing but the base offsets changed.
			for _, b := range batches {
				copy(b.Raw[:8], chunk[b.ChunkOffset:b.ChunkOffset+8])
			}
			if !bytes.Equal(c, chunk) {
				t.Errorf("rewriting changed bytes other than the base offsets")
			}
			if err := objectlog.RewriteBaseOffsets(c, tt.base); err != nil {
				t.Fatal(err)
			}
			// DecodeChunk with a base does the same rewrite.
			d := bytes.Clone(chunk)
			if _, err := objectlog.DecodeChunk(d, tt.base); err != nil || !bytes.Equal(c, d) {
				t.Errorf("DecodeChunk(base %d) bytes differ from RewriteBaseOffsets: %v", tt.base, err)
			}
			// The iterator does too.
			e := bytes.Clone(chunk)
			i := 0
			for b, err := range objectlog.ChunkBatches(e, tt.base) {
				if err != nil || b.BaseOffset != tt.want[i] {
					t.Errorf("ChunkBatches batch %d: %d, %v", i, b.BaseOffset, err)
				}
				i++
			}
			if i != len(sizes) || !bytes.Equal(c, e) {
				t.Errorf("ChunkBatches yielded %d batches; bytes equal %v", i, bytes.Equal(c, e))
			}
		})
	}

	t.Run("negative base", func(t *testing.T) {
		t.Parallel()
		if err := objectlog.RewriteBaseOffsets(bytes.Clone(chunk), -1); err == nil || errors.Is(err, objectlog.ErrCorrupt) {
			t.Errorf("RewriteBaseOffsets(-1) = %v, want an argument error", err)
		}
	})
	t.Run("corrupt chunk untouched", func(t *testing.T) {
		t.Parallel()
		c := bytes.Clone(chunk)
		c[len(c)-1] ^= 1 // last batch's CRC fails
		before := bytes.Clone(c)
		if err := objectlog.RewriteBaseOffsets(c, 77); !errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("RewriteBaseOffsets = %v, want ErrCorrupt", err)
		}
		if !bytes.Equal(c, before) {
			t.Errorf("a chunk that failed verification was modified")
		}
	})
	t.Run("offset overflow", func(t *testing.T) {
		t.Parallel()
		if err := objectlog.RewriteBaseOffsets(bytes.Clone(chunk), 1<<63-2); err == nil {
			t.Errorf("rewriting past the int64 range succeeded")
		}
	})
}

// memReader is an in-memory BucketReader that counts requests.
type memReader struct {
	mu      sync.Mutex
	objects map[string][]byte
	ranges  [][2]int64
	heads   int
}

func (m *memReader) obj(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, objectlog.ErrNotFound)
	}
	return b, nil
}

func (m *memReader) Get(_ context.Context, key string) (io.ReadCloser, error) {
	b, err := m.obj(key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memReader) GetRange(_ context.Context, key string, off, length int64) (io.ReadCloser, error) {
	b, err := m.obj(key)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.ranges = append(m.ranges, [2]int64{off, length})
	m.mu.Unlock()
	if off >= int64(len(b)) {
		return nil, objectlog.ErrInvalidRange
	}
	end := int64(len(b))
	if length >= 0 && off+length < end {
		end = off + length
	}
	return io.NopCloser(bytes.NewReader(b[off:end])), nil
}

func (m *memReader) Attributes(_ context.Context, key string) (objectlog.Attributes, error) {
	b, err := m.obj(key)
	if err != nil {
		return objectlog.Attributes{}, err
	}
	m.mu.Lock()
	m.heads++
	m.mu.Unlock()
	return objectlog.Attributes{Size: int64(len(b))}, nil
}

func (m *memReader) List(context.Context, string) iter.Seq2[objectlog.ObjectInfo, error] {
	return func(func(objectlog.ObjectInfo, error) bool) {}
}

func TestReadFooterFromBucket(t *testing.T) {
	t.Parallel()
	small := smallSegment(t)

	// Enough partitions that the footer outgrows the first tail read.
	w := objectlog.NewSegmentWriter()
	for p := range int32(1500) {
		if _, err := w.AppendRecords(topicA, p, objectlog.BatchSpec{ProducerID: int64(p), BaseSequence: 0}, []objectlog.Record{{Value: []byte{byte(p)}, Timestamp: baseTime}}); err != nil {
			t.Fatal(err)
		}
	}
	large, largeFooter := mustFinish(t, w)
	if largeFooter.FooterLength <= 64<<10 {
		t.Fatalf("large footer only %d bytes; the test needs one above the first guess", largeFooter.FooterLength)
	}
	truncated := large[:len(large)-1]

	tests := []struct {
		name       string
		data       []byte
		wantRanges int
		wantChunks int
		wantErr    error
	}{
		{"small footer, one GET", small, 1, 2, nil},
		{"large footer, two GETs", large, 2, 1500, nil},
		{"truncated object", truncated, 1, 0, objectlog.ErrCorrupt},
		{"tiny object", []byte("short"), 0, 0, objectlog.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &memReader{objects: map[string][]byte{"seg": tt.data}}
			f, err := objectlog.ReadFooter(t.Context(), b, "seg")
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("ReadFooter: %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "seg") {
				t.Errorf("error %q does not name the object", err)
			}
			if len(b.ranges) != tt.wantRanges || b.heads != 1 {
				t.Errorf("%d HEADs and ranged GETs %v, want 1 and %d", b.heads, b.ranges, tt.wantRanges)
			}
			if len(f.Chunks) != tt.wantChunks {
				t.Fatalf("%d chunks, want %d", len(f.Chunks), tt.wantChunks)
			}
			for _, c := range f.Chunks[:min(len(f.Chunks), 5)] {
				chunk, err := objectlog.ReadChunk(t.Context(), b, "seg", c)
				if err != nil || !bytes.Equal(chunk, chunkBytes(tt.data, c)) {
					t.Fatalf("ReadChunk(%+v): %v", c, err)
				}
				if _, err := objectlog.DecodeChunk(chunk, 0); err != nil {
					t.Errorf("chunk read from the bucket: %v", err)
				}
			}
		})
	}

	t.Run("missing object", func(t *testing.T) {
		t.Parallel()
		b := &memReader{objects: map[string][]byte{}}
		if _, err := objectlog.ReadFooter(t.Context(), b, "nope"); !errors.Is(err, objectlog.ErrNotFound) {
			t.Errorf("ReadFooter of a missing key: %v, want ErrNotFound", err)
		}
	})

	t.Run("short tail", func(t *testing.T) {
		t.Parallel()
		tail := large[len(large)-1000:]
		_, err := objectlog.ParseFooter(tail, int64(len(large)))
		if !errors.Is(err, objectlog.ErrShortTail) || errors.Is(err, objectlog.ErrCorrupt) {
			t.Fatalf("ParseFooter of a short tail: %v, want ErrShortTail", err)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(int64(len(large))-largeFooter.FooterOffset)) {
			t.Errorf("error %q does not say how many bytes are needed (%d)", err, int64(len(large))-largeFooter.FooterOffset)
		}
	})
}
