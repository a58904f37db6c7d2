package objectlog

// Record batches as Kafka defines them (RecordBatch v2, "magic 2"): what a
// segment chunk is made of, what the fetch path hands to clients, and what
// Batch.Records decodes. The batch header is read with kmsg; records are
// parsed here so that every error can say at which byte it happened and so
// that decoding allocates once per batch rather than per field.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"iter"
	"math"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record to append: what a producer sends.
type Record struct {
	// Key nil is a null key; a non-nil empty slice is an empty key.
	Key []byte
	// Value nil is a null value (a tombstone for compacted topics).
	Value   []byte
	Headers []Header
	// Timestamp is milliseconds since the Unix epoch.
	Timestamp int64
}

// Header is a record header. Kafka allows a null value but not a null key.
type Header struct {
	Key   string
	Value []byte
}

// DecodedRecord is a record read back from a batch, with its offset.
type DecodedRecord struct {
	// Offset is the batch's base offset plus the record's offset delta.
	Offset int64
	Record
}

// Kafka RecordBatch v2 layout, all big-endian:
//
//	0  baseOffset int64       8  length int32 (bytes after this field)
//	12 partitionLeaderEpoch   16 magic int8 (2)
//	17 crc uint32 (CRC32C of bytes 21..end)
//	21 attributes int16       23 lastOffsetDelta int32
//	27 firstTimestamp int64   35 maxTimestamp int64
//	43 producerId int64       51 producerEpoch int16
//	53 baseSequence int32     57 recordCount int32
//	61 records (compressed as a whole when the codec is not none)
const (
	batchHeaderLen    = 61
	batchLengthOffset = 8
	batchMagicOffset  = 16
	batchCRCOffset    = 17
	batchCRCStart     = 21
	// batchRecordCountOffset is where the header's record count is.
	batchRecordCountOffset = 57
	// batchLengthBase is the bytes up to and including the length field,
	// which the length does not count.
	batchLengthBase = 12
	batchMagic      = 2

	// minRecordLen is the smallest encoded record: a one-byte varint for
	// each of length, timestamp delta, offset delta, key length, value
	// length and header count, plus the attributes byte.
	minRecordLen = 7
	// minHeaderLen is the smallest encoded header: two one-byte lengths.
	minHeaderLen = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchAttrs are a batch's attribute bits.
type BatchAttrs int16

// Attribute bits (Kafka's DefaultRecordBatch): compression in bits 0-2,
// then timestamp type, transactional, control. Bit 6 (delete horizon) and
// above are kept as they came and otherwise ignored.
const (
	attrCodecMask     BatchAttrs = 0x07
	attrLogAppendTime BatchAttrs = 0x08
	attrTransactional BatchAttrs = 0x10
	attrControl       BatchAttrs = 0x20
)

// Codec returns the compression codec (bits 0-2).
func (a BatchAttrs) Codec() Codec { return Codec(a & attrCodecMask) }

// LogAppendTime reports whether timestamps are the broker's append time
// (bit 3); then every record's timestamp is the batch's MaxTimestamp.
func (a BatchAttrs) LogAppendTime() bool { return a&attrLogAppendTime != 0 }

// Transactional reports whether the batch belongs to a transaction (bit 4).
func (a BatchAttrs) Transactional() bool { return a&attrTransactional != 0 }

// Control reports whether the batch holds a transaction marker (bit 5).
func (a BatchAttrs) Control() bool { return a&attrControl != 0 }

// BatchSpec is how AppendRecords frames one batch. Its zero value names
// producer id 0 with sequence 0, a real idempotent producer: start from
// NoProducer for batches without one.
type BatchSpec struct {
	Codec Codec
	// ProducerID is -1 for a producer that is not idempotent.
	ProducerID    int64
	ProducerEpoch int16
	// BaseSequence is -1 for a producer that is not idempotent.
	BaseSequence  int32
	Transactional bool
	Control       bool
	// LogAppendTime marks record timestamps as set by the broker.
	LogAppendTime bool
}

// NoProducer is a BatchSpec without idempotence, to set the codec on.
var NoProducer = BatchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}

func (s BatchSpec) attrs() BatchAttrs {
	a := BatchAttrs(s.Codec) & attrCodecMask
	if s.LogAppendTime {
		a |= attrLogAppendTime
	}
	if s.Transactional {
		a |= attrTransactional
	}
	if s.Control {
		a |= attrControl
	}
	return a
}

func (s BatchSpec) validate() error {
	if !s.Codec.Valid() {
		return fmt.Errorf("objectlog: unknown codec %d", s.Codec)
	}
	if s.ProducerID < -1 {
		return fmt.Errorf("objectlog: producer id %d (want >= 0, or -1 for none)", s.ProducerID)
	}
	if s.Transactional && s.ProducerID < 0 {
		return fmt.Errorf("objectlog: a transactional batch needs a producer id")
	}
	return nil
}

// BatchInfo describes one stored batch: what the index needs per batch for
// offsets, time lookups and producer idempotence.
type BatchInfo struct {
	// ByteOffset is where the batch starts: within its chunk in what the
	// Append methods return, within the object in Footer.Chunks[i].Batches
	// as SegmentWriter.Finish returns them.
	ByteOffset int64
	ByteLength int32
	// Records is the number of offsets the batch takes: LastOffsetDelta+1.
	// It equals the record count except in batches compacted by Kafka.
	Records        int32
	FirstTimestamp int64
	MaxTimestamp   int64
	ProducerID     int64
	ProducerEpoch  int16
	BaseSequence   int32
	Attrs          BatchAttrs
}

// Batch is one RecordBatch v2 found in a chunk, its header decoded and its
// CRC verified. Records stay encoded until Records is called.
type Batch struct {
	// ChunkOffset is where the batch starts in the chunk.
	ChunkOffset int
	// BaseOffset is the offset of the first record: as stored, or as
	// rewritten when the chunk was decoded with a base offset.
	BaseOffset           int64
	PartitionLeaderEpoch int32
	Attrs                BatchAttrs
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	// NumRecords is the record count the header states.
	NumRecords int32
	// Raw is the whole encoded batch. It aliases the chunk.
	Raw []byte
}

// NextOffset is the offset after the batch's last one.
func (b *Batch) NextOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) + 1 }

// Info returns the batch's BatchInfo, ByteOffset within its chunk.
func (b *Batch) Info() BatchInfo {
	return BatchInfo{
		ByteOffset:     int64(b.ChunkOffset),
		ByteLength:     int32(len(b.Raw)),
		Records:        b.LastOffsetDelta + 1,
		FirstTimestamp: b.FirstTimestamp,
		MaxTimestamp:   b.MaxTimestamp,
		ProducerID:     b.ProducerID,
		ProducerEpoch:  b.ProducerEpoch,
		BaseSequence:   b.BaseSequence,
		Attrs:          b.Attrs,
	}
}

// FormatError is how every decoder in this package reports bytes that do
// not follow the format: where, at which byte, and what was wrong. It
// matches ErrCorrupt with errors.Is.
type FormatError struct {
	// Where names the byte space Offset counts in: "segment" (the whole
	// object), "chunk", or the records of one batch.
	Where  string
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("objectlog: %s byte %d: %s: %v", e.Where, e.Offset, e.Reason, ErrCorrupt)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *FormatError) Unwrap() error { return ErrCorrupt }

// corruptf returns a *FormatError.
func corruptf(where string, off int64, format string, args ...any) error {
	return &FormatError{Where: where, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// parseBatch reads and verifies the batch starting at chunk[pos:]: framing,
// magic, CRC, codec and offset counts. It never reads past the chunk.
func parseBatch(chunk []byte, pos int) (Batch, error) {
	rem := len(chunk) - pos
	if rem < batchHeaderLen {
		return Batch{}, corruptf("chunk", int64(pos), "batch header truncated: %d bytes left, a header takes %d", rem, batchHeaderLen)
	}
	length := int32(binary.BigEndian.Uint32(chunk[pos+batchLengthOffset:]))
	if length < batchHeaderLen-batchLengthBase {
		return Batch{}, corruptf("chunk", int64(pos+batchLengthOffset), "batch length %d below the minimum %d", length, batchHeaderLen-batchLengthBase)
	}
	if int64(length) > int64(rem-batchLengthBase) {
		return Batch{}, corruptf("chunk", int64(pos+batchLengthOffset), "batch length %d exceeds the %d bytes left", length, rem-batchLengthBase)
	}
	raw := chunk[pos : pos+batchLengthBase+int(length) : pos+batchLengthBase+int(length)]
	if m := int8(raw[batchMagicOffset]); m != batchMagic {
		return Batch{}, corruptf("chunk", int64(pos+batchMagicOffset), "batch magic %d, only RecordBatch v2 (magic 2) is stored", m)
	}
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(raw); err != nil {
		return Batch{}, corruptf("chunk", int64(pos), "batch header: %v", err)
	}
	if got := crc32.Checksum(raw[batchCRCStart:], castagnoli); got != uint32(kb.CRC) {
		return Batch{}, corruptf("chunk", int64(pos+batchCRCOffset), "batch crc 0x%08x, computed 0x%08x over bytes %d..%d", uint32(kb.CRC), got, pos+batchCRCStart, pos+len(raw))
	}
	attrs := BatchAttrs(kb.Attributes)
	if !attrs.Codec().Valid() {
		return Batch{}, corruptf("chunk", int64(pos+batchCRCStart), "batch codec %d unknown", attrs.Codec())
	}
	if kb.LastOffsetDelta < 0 {
		return Batch{}, corruptf("chunk", int64(pos+23), "batch last offset delta %d negative", kb.LastOffsetDelta)
	}
	if kb.NumRecords < 0 || int64(kb.NumRecords) > int64(kb.LastOffsetDelta)+1 {
		return Batch{}, corruptf("chunk", int64(pos+57), "batch record count %d outside 0..%d (last offset delta + 1)", kb.NumRecords, int64(kb.LastOffsetDelta)+1)
	}
	if attrs.Codec() == CodecNone && int64(kb.NumRecords)*minRecordLen > int64(len(kb.Records)) {
		return Batch{}, corruptf("chunk", int64(pos+57), "batch record count %d cannot fit in %d bytes", kb.NumRecords, len(kb.Records))
	}
	return Batch{
		ChunkOffset:          pos,
		BaseOffset:           kb.FirstOffset,
		PartitionLeaderEpoch: kb.PartitionLeaderEpoch,
		Attrs:                attrs,
		LastOffsetDelta:      kb.LastOffsetDelta,
		FirstTimestamp:       kb.FirstTimestamp,
		MaxTimestamp:         kb.MaxTimestamp,
		ProducerID:           kb.ProducerID,
		ProducerEpoch:        kb.ProducerEpoch,
		BaseSequence:         kb.FirstSequence,
		NumRecords:           kb.NumRecords,
		Raw:                  raw,
	}, nil
}

// ChunkBatches yields the batches of a chunk in order, each verified as
// DecodeChunk does, stopping at the first error (yielded with a zero Batch).
// With baseOffset >= 0 it rewrites each batch's base offset in chunk as it
// goes, the first to baseOffset and each next one to the previous one's
// NextOffset; with baseOffset < 0 the bytes are left as stored.
func ChunkBatches(chunk []byte, baseOffset int64) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		if len(chunk) == 0 {
			yield(Batch{}, corruptf("chunk", 0, "empty chunk: a chunk holds at least one batch"))
			return
		}
		next := baseOffset
		for pos := 0; pos < len(chunk); {
			b, err := parseBatch(chunk, pos)
			if err != nil {
				yield(Batch{}, err)
				return
			}
			if baseOffset >= 0 {
				after, err := nextBaseOffset(next, b.LastOffsetDelta, pos)
				if err != nil {
					yield(Batch{}, err)
					return
				}
				binary.BigEndian.PutUint64(b.Raw, uint64(next))
				b.BaseOffset = next
				next = after
			}
			if !yield(b, nil) {
				return
			}
			pos += len(b.Raw)
		}
	}
}

// nextBaseOffset returns the base offset of the batch after one at base.
func nextBaseOffset(base int64, lastOffsetDelta int32, pos int) (int64, error) {
	if base > math.MaxInt64-int64(lastOffsetDelta)-1 {
		return 0, corruptf("chunk", int64(pos), "offset overflow: base %d + last offset delta %d", base, lastOffsetDelta)
	}
	return base + int64(lastOffsetDelta) + 1, nil
}

// DecodeChunk splits a chunk into its batches, verifying each one's framing,
// magic (2) and CRC32C. With baseOffset >= 0 it then rewrites the base
// offsets in chunk, sequentially from baseOffset; the base offset lies
// outside the CRC'd region, so the batches stay valid. A chunk that fails
// verification is left unmodified. Batches alias chunk.
func DecodeChunk(chunk []byte, baseOffset int64) ([]Batch, error) {
	var batches []Batch
	for b, err := range ChunkBatches(chunk, -1) {
		if err != nil {
			return nil, err
		}
		batches = append(batches, b)
	}
	if baseOffset >= 0 {
		if err := rewriteBaseOffsets(batches, baseOffset); err != nil {
			return nil, err
		}
	}
	return batches, nil
}

// RewriteBaseOffsets verifies a chunk as DecodeChunk does and sets its
// batches' base offsets in place, sequentially from baseOffset, without
// decoding records: the fetch path returns the batches to clients as they
// are. On error the chunk is left unmodified.
func RewriteBaseOffsets(chunk []byte, baseOffset int64) error {
	if baseOffset < 0 {
		return fmt.Errorf("objectlog: base offset %d is negative", baseOffset)
	}
	_, err := DecodeChunk(chunk, baseOffset)
	return err
}

// rewriteBaseOffsets sets the batches' base offsets sequentially from base,
// checking for overflow before touching any byte.
func rewriteBaseOffsets(batches []Batch, base int64) error {
	next := base
	for i := range batches {
		var err error
		if next, err = nextBaseOffset(next, batches[i].LastOffsetDelta, batches[i].ChunkOffset); err != nil {
			return err
		}
	}
	next = base
	for i := range batches {
		b := &batches[i]
		binary.BigEndian.PutUint64(b.Raw, uint64(next))
		b.BaseOffset = next
		next += int64(b.LastOffsetDelta) + 1
	}
	return nil
}

// Records decompresses and decodes the batch's records, allowing at most
// DefaultMaxBatchBytes of decompressed data. Keys and values alias the
// chunk for uncompressed batches and a fresh buffer otherwise.
func (b *Batch) Records() ([]DecodedRecord, error) {
	return b.AppendRecords(nil, DefaultMaxBatchBytes)
}

// AppendRecords appends the batch's records to dst, allowing at most
// maxBytes (DefaultMaxBatchBytes if <= 0) of decompressed data. Every
// record's offset is BaseOffset plus its delta and its timestamp
// FirstTimestamp plus its delta (MaxTimestamp for LogAppendTime batches).
func (b *Batch) AppendRecords(dst []DecodedRecord, maxBytes int) ([]DecodedRecord, error) {
	codec := b.Attrs.Codec()
	d := recordDecoder{chunkOffset: b.ChunkOffset, codec: codec}
	if len(b.Raw) < batchHeaderLen {
		return dst, d.fail(0, "batch of %d bytes has no header", len(b.Raw))
	}
	data, err := decompress(codec, b.Raw[batchHeaderLen:], maxBytes)
	if err != nil {
		return dst, corruptf("chunk", int64(b.ChunkOffset+batchHeaderLen), "%s records: %v", codec, err)
	}
	d.data = data
	n := int(b.NumRecords)
	if int64(n)*minRecordLen > int64(len(data)) {
		return dst, d.fail(0, "record count %d cannot fit in %d bytes", n, len(data))
	}
	dst = slices.Grow(dst, n)
	prevDelta := int32(-1)
	for i := range n {
		start := d.pos
		rec, delta, err := d.record()
		if err != nil {
			return dst, err
		}
		if delta <= prevDelta || delta > b.LastOffsetDelta {
			return dst, d.fail(start, "record %d offset delta %d not in %d..%d", i, delta, prevDelta+1, b.LastOffsetDelta)
		}
		prevDelta = delta
		rec.Offset = b.BaseOffset + int64(delta)
		if b.Attrs.LogAppendTime() {
			rec.Timestamp = b.MaxTimestamp
		} else {
			rec.Timestamp += b.FirstTimestamp
		}
		dst = append(dst, rec)
	}
	if d.pos != len(data) {
		return dst, d.fail(d.pos, "%d bytes after the last of %d records", len(data)-d.pos, n)
	}
	return dst, nil
}

// recordDecoder walks the records of one batch. Headers of all records
// share one growing backing array.
type recordDecoder struct {
	data    []byte
	pos     int
	headers []Header
	// chunkOffset and codec name the batch in errors; the text is only
	// built on failure, so a walk that passes allocates nothing for it.
	chunkOffset int
	codec       Codec
}

func (d *recordDecoder) fail(off int, format string, args ...any) error {
	where := fmt.Sprintf("records of batch at chunk byte %d", d.chunkOffset)
	if d.codec != CodecNone {
		where += " (" + d.codec.String() + ", decompressed)"
	}
	return corruptf(where, int64(off), format, args...)
}

// varint reads a zigzag varint; int32 ones are range-checked by the caller.
func (d *recordDecoder) varint(end int, what string) (int64, error) {
	v, n := binary.Varint(d.data[d.pos:end])
	if n <= 0 {
		if n == 0 {
			return 0, d.fail(d.pos, "%s: varint truncated", what)
		}
		return 0, d.fail(d.pos, "%s: varint overflows 64 bits", what)
	}
	d.pos += n
	return v, nil
}

func (d *recordDecoder) varint32(end int, what string) (int32, error) {
	start := d.pos
	v, err := d.varint(end, what)
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, d.fail(start, "%s: %d overflows int32", what, v)
	}
	return int32(v), nil
}

// bytes reads a varint length and that many bytes; -1 is nil when nullable.
func (d *recordDecoder) bytes(end int, what string, nullable bool) ([]byte, error) {
	start := d.pos
	v, k := binary.Varint(d.data[d.pos:end])
	if k <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
		return nil, d.fail(start, "%s length: varint truncated or outside int32", what)
	}
	d.pos += k
	n := int32(v)
	if n == -1 && nullable {
		return nil, nil
	}
	if n < 0 {
		return nil, d.fail(start, "%s length %d negative", what, n)
	}
	if int(n) > end-d.pos {
		return nil, d.fail(start, "%s length %d exceeds the %d bytes left in the record", what, n, end-d.pos)
	}
	b := d.data[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

// record decodes one record. Its Timestamp is the delta, its Offset unset.
func (d *recordDecoder) record() (DecodedRecord, int32, error) {
	start := d.pos
	length, err := d.varint32(len(d.data), "record length")
	if err != nil {
		return DecodedRecord{}, 0, err
	}
	if length < minRecordLen-1 || int(length) > len(d.data)-d.pos {
		return DecodedRecord{}, 0, d.fail(start, "record length %d outside %d..%d (bytes left)", length, minRecordLen-1, len(d.data)-d.pos)
	}
	end := d.pos + int(length)
	d.pos++ // attributes: unused by Kafka
	var rec DecodedRecord
	if rec.Timestamp, err = d.varint(end, "timestamp delta"); err != nil {
		return rec, 0, err
	}
	delta, err := d.varint32(end, "offset delta")
	if err != nil {
		return rec, 0, err
	}
	if rec.Key, err = d.bytes(end, "key", true); err != nil {
		return rec, 0, err
	}
	if rec.Value, err = d.bytes(end, "value", true); err != nil {
		return rec, 0, err
	}
	countAt := d.pos
	count, err := d.varint32(end, "header count")
	if err != nil {
		return rec, 0, err
	}
	if count < 0 || int64(count)*minHeaderLen > int64(end-d.pos) {
		return rec, 0, d.fail(countAt, "header count %d outside 0..%d (bytes left / %d)", count, (end-d.pos)/minHeaderLen, minHeaderLen)
	}
	if count > 0 {
		first := len(d.headers)
		for range count {
			key, err := d.bytes(end, "header key", false)
			if err != nil {
				return rec, 0, err
			}
			value, err := d.bytes(end, "header value", true)
			if err != nil {
				return rec, 0, err
			}
			d.headers = append(d.headers, Header{Key: string(key), Value: value})
		}
		rec.Headers = d.headers[first:len(d.headers):len(d.headers)]
	}
	if d.pos != end {
		return rec, 0, d.fail(start, "record length %d but its fields take %d bytes", length, d.pos-(end-int(length)))
	}
	return rec, delta, nil
}

// RecordsCheck is what CheckRecords learned of a batch's records besides
// their framing being sound.
type RecordsCheck struct {
	// NullKeyDelta is the offset delta of the first record without a key
	// (Kafka's null key, refused on compacted topics), -1 if every record
	// has one.
	NullKeyDelta int32
}

// recordBufs holds the buffers CheckRecords decompresses into, so that the
// produce path, which checks every batch, does not allocate one per batch.
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledRecordBuf bounds the buffers kept in recordBufs: a rare huge
// batch is not kept alive for the pool's lifetime.
const maxPooledRecordBuf = 4 << 20

// CheckRecords decompresses the batch (at most maxBytes,
// DefaultMaxBatchBytes if <= 0) and walks the framing of every record
// without keeping any of it, as Kafka's broker does on produce
// (LogValidator.validateMessagesAndAssignOffsets, whose failures are
// CorruptRecordException, CORRUPT_MESSAGE): each record's length varint,
// attributes, timestamp delta, offset delta, key, value and headers must
// parse and fill exactly the length; the i-th record's offset delta must be
// i; the header's record count must equal both the records found and the
// last offset delta + 1; no byte may follow the last record. Any failure is
// a *FormatError (ErrCorrupt) naming the byte. A batch as Kafka's log
// compaction leaves it (fewer records than offsets) fails: this is the check
// of what a producer sends, not of what a log may hold. It allocates
// nothing for a batch that passes, but for the first decompression into
// a pooled buffer.
func (b *Batch) CheckRecords(maxBytes int) (RecordsCheck, error) {
	res := RecordsCheck{NullKeyDelta: -1}
	if len(b.Raw) < batchHeaderLen {
		return res, corruptf("chunk", int64(b.ChunkOffset), "batch of %d bytes has no header", len(b.Raw))
	}
	if int64(b.NumRecords) != int64(b.LastOffsetDelta)+1 {
		return res, corruptf("chunk", int64(b.ChunkOffset+batchRecordCountOffset),
			"batch record count %d but last offset delta %d: a produced batch holds one record per offset (record count = last offset delta + 1)",
			b.NumRecords, b.LastOffsetDelta)
	}
	codec := b.Attrs.Codec()
	data := b.Raw[batchHeaderLen:]
	if codec != CodecNone {
		buf := recordBufs.Get().(*[]byte)
		defer func() {
			if cap(*buf) <= maxPooledRecordBuf {
				recordBufs.Put(buf)
			}
		}()
		var err error
		if data, err = decompressTo(codec, *buf, data, maxBytes); err != nil {
			return res, corruptf("chunk", int64(b.ChunkOffset+batchHeaderLen), "%s records: %v", codec, err)
		}
		*buf = data[:0]
	}
	d := recordDecoder{data: data, chunkOffset: b.ChunkOffset, codec: codec}
	n := int(b.NumRecords)
	if int64(n)*minRecordLen > int64(len(data)) {
		return res, d.fail(0, "record count %d cannot fit in %d bytes", n, len(data))
	}
	for i := range n {
		start := d.pos
		delta, nullKey, err := d.skipRecord()
		if err != nil {
			return res, err
		}
		if int(delta) != i {
			return res, d.fail(start, "record %d has offset delta %d; a produced batch's offset deltas are 0..%d in order", i, delta, n-1)
		}
		if nullKey && res.NullKeyDelta < 0 {
			res.NullKeyDelta = delta
		}
	}
	if d.pos != len(data) {
		return res, d.fail(d.pos, "%d bytes after the last of %d records (the header's record count)", len(data)-d.pos, n)
	}
	return res, nil
}

// skipRecord walks one record's framing as record does, keeping nothing.
func (d *recordDecoder) skipRecord() (delta int32, nullKey bool, err error) {
	start := d.pos
	length, err := d.varint32(len(d.data), "record length")
	if err != nil {
		return 0, false, err
	}
	if length < minRecordLen-1 || int(length) > len(d.data)-d.pos {
		return 0, false, d.fail(start, "record length %d outside %d..%d (bytes left)", length, minRecordLen-1, len(d.data)-d.pos)
	}
	end := d.pos + int(length)
	d.pos++ // attributes: unused by Kafka
	if _, err = d.varint(end, "timestamp delta"); err != nil {
		return 0, false, err
	}
	if delta, err = d.varint32(end, "offset delta"); err != nil {
		return 0, false, err
	}
	key, err := d.bytes(end, "key", true)
	if err != nil {
		return 0, false, err
	}
	if _, err = d.bytes(end, "value", true); err != nil {
		return 0, false, err
	}
	countAt := d.pos
	count, err := d.varint32(end, "header count")
	if err != nil {
		return 0, false, err
	}
	if count < 0 || int64(count)*minHeaderLen > int64(end-d.pos) {
		return 0, false, d.fail(countAt, "header count %d outside 0..%d (bytes left / %d)", count, (end-d.pos)/minHeaderLen, minHeaderLen)
	}
	for range count {
		if _, err = d.bytes(end, "header key", false); err != nil {
			return 0, false, err
		}
		if _, err = d.bytes(end, "header value", true); err != nil {
			return 0, false, err
		}
	}
	if d.pos != end {
		return 0, false, d.fail(start, "record length %d but its fields take %d bytes", length, d.pos-(end-int(length)))
	}
	return delta, key == nil, nil
}
