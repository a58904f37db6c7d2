package objectlog

// SegmentWriter builds one segment object per flush on the produce path.
// Batches are encoded straight into one growing buffer in arrival order;
// Finish groups them by partition. When every partition's batches arrived
// together (no interleaving), the buffer already is the object and Finish
// only appends the footer; otherwise it copies the batches once, grouped.
// All buffers survive Reset, so a long-lived writer stops allocating once it
// has seen its largest flush.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrWriterFinished is returned by a SegmentWriter used after Finish without
// a Reset.
var ErrWriterFinished = errors.New("objectlog: segment writer finished; Reset it first")

type chunkKey struct {
	topic     uuid.UUID
	partition int32
}

// chunkState accumulates one partition's chunk.
type chunkState struct {
	key chunkKey
	// positions[i] is where batches[i] starts in the writer's buffer.
	positions []int
	batches   []BatchInfo
	size      int64
	records   int64
	first     int64
	max       int64
	pids      []int64
	txn, ctrl bool
}

// SegmentWriter encodes the batches of one flush into a segment. It is not
// safe for concurrent use. The zero value is ready to use.
type SegmentWriter struct {
	buf         []byte // header, then batches in append order
	out         []byte // the grouped copy, when batches interleaved
	chunks      []chunkState
	index       map[chunkKey]int
	last        int // chunk appended to last, or -1
	interleaved bool
	finished    bool
	footerLen   int

	records []byte // uncompressed records, when a codec is set
	krec    kmsg.Record
	khdrs   []kmsg.Header
	comp    compressor
}

// NewSegmentWriter returns an empty writer.
func NewSegmentWriter() *SegmentWriter {
	w := &SegmentWriter{}
	w.Reset()
	return w
}

// Reset empties the writer for the next flush, keeping its buffers. The
// bytes and footer of a previous Finish must no longer be in use.
func (w *SegmentWriter) Reset() {
	w.buf = appendHeader(w.buf[:0])
	w.out = w.out[:0]
	w.chunks = w.chunks[:0]
	if w.index == nil {
		w.index = make(map[chunkKey]int)
	}
	clear(w.index)
	w.last = -1
	w.interleaved = false
	w.finished = false
	w.footerLen = footerHeaderLen
}

// Len is the size in bytes the segment would have if finished now.
func (w *SegmentWriter) Len() int {
	if len(w.buf) == 0 {
		return segmentHeaderLen + footerHeaderLen + segmentTrailerLen
	}
	if w.finished {
		if w.interleaved {
			return len(w.out)
		}
		return len(w.buf)
	}
	return len(w.buf) + w.footerLen + segmentTrailerLen
}

// Chunks is the number of partitions appended to so far.
func (w *SegmentWriter) Chunks() int { return len(w.chunks) }

func (w *SegmentWriter) begin() error {
	if len(w.buf) == 0 {
		w.Reset()
	}
	if w.finished {
		return ErrWriterFinished
	}
	return nil
}

// chunk returns the state of a partition's chunk, adding it if new.
func (w *SegmentWriter) chunk(topicID uuid.UUID, partition int32) *chunkState {
	k := chunkKey{topicID, partition}
	if w.last >= 0 && w.chunks[w.last].key == k {
		return &w.chunks[w.last]
	}
	i, ok := w.index[k]
	if ok {
		// A batch for a partition that is not the latest one: the buffer
		// is no longer grouped by partition.
		w.interleaved = true
	} else {
		i = len(w.chunks)
		w.index[k] = i
		// Reuse the slices of a chunk from an earlier flush.
		w.chunks = slices.Grow(w.chunks, 1)[:i+1]
		c := &w.chunks[i]
		*c = chunkState{key: k, positions: c.positions[:0], batches: c.batches[:0], pids: c.pids[:0]}
		w.footerLen += footerEntryLen(0)
	}
	w.last = i
	return &w.chunks[i]
}

// add records a batch written at w.buf[pos:] in chunk c.
func (w *SegmentWriter) add(c *chunkState, pos int, info BatchInfo) BatchInfo {
	info.ByteOffset = c.size
	if len(c.batches) == 0 {
		c.first, c.max = info.FirstTimestamp, info.MaxTimestamp
	} else {
		c.max = max(c.max, info.MaxTimestamp)
	}
	c.positions = append(c.positions, pos)
	c.batches = append(c.batches, info)
	c.size += int64(info.ByteLength)
	c.records += int64(info.Records)
	c.txn = c.txn || info.Attrs.Transactional()
	c.ctrl = c.ctrl || info.Attrs.Control()
	if id := info.ProducerID; id >= 0 {
		if i, found := slices.BinarySearch(c.pids, id); !found {
			c.pids = slices.Insert(c.pids, i, id)
			w.footerLen += 8
		}
	}
	return info
}

// AppendRecords encodes recs as one RecordBatch v2 in the chunk of
// (topicID, partition). The stored base offset is 0 and the partition
// leader epoch -1: the index assigns offsets at commit, and readers rewrite
// base offsets (see RewriteBaseOffsets). The first record's timestamp is the
// batch's FirstTimestamp, offset deltas count from 0. The returned
// BatchInfo's ByteOffset is within the chunk.
func (w *SegmentWriter) AppendRecords(topicID uuid.UUID, partition int32, spec BatchSpec, recs []Record) (BatchInfo, error) {
	if err := w.begin(); err != nil {
		return BatchInfo{}, err
	}
	if len(recs) == 0 {
		return BatchInfo{}, errors.New("objectlog: a batch needs at least one record")
	}
	if len(recs) > math.MaxInt32 {
		return BatchInfo{}, fmt.Errorf("objectlog: %d records in one batch, at most %d", len(recs), math.MaxInt32)
	}
	if err := spec.validate(); err != nil {
		return BatchInfo{}, err
	}
	first, maxTS := recs[0].Timestamp, recs[0].Timestamp
	for i := range recs {
		maxTS = max(maxTS, recs[i].Timestamp)
	}
	attrs := spec.attrs()
	hdr := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                batchMagic,
		Attributes:           int16(attrs),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         maxTS,
		ProducerID:           spec.ProducerID,
		ProducerEpoch:        spec.ProducerEpoch,
		FirstSequence:        spec.BaseSequence,
		NumRecords:           int32(len(recs)),
	}
	pos := len(w.buf)
	buf := hdr.AppendTo(w.buf) // Records is empty: the 61-byte header
	var err error
	if spec.Codec == CodecNone {
		buf, err = w.appendRecords(buf, recs, first)
	} else if w.records, err = w.appendRecords(w.records[:0], recs, first); err == nil {
		buf, err = w.comp.compress(spec.Codec, buf, w.records)
	}
	if err == nil && len(buf)-pos-batchLengthBase > math.MaxInt32 {
		err = fmt.Errorf("objectlog: batch of %d bytes exceeds the RecordBatch limit", len(buf)-pos)
	}
	if err != nil {
		w.buf = buf[:pos]
		return BatchInfo{}, err
	}
	batch := buf[pos:]
	binary.BigEndian.PutUint32(batch[batchLengthOffset:], uint32(len(batch)-batchLengthBase))
	binary.BigEndian.PutUint32(batch[batchCRCOffset:], crc32.Checksum(batch[batchCRCStart:], castagnoli))
	w.buf = buf
	c := w.chunk(topicID, partition)
	return w.add(c, pos, BatchInfo{
		ByteLength:     int32(len(batch)),
		Records:        int32(len(recs)),
		FirstTimestamp: first,
		MaxTimestamp:   maxTS,
		ProducerID:     spec.ProducerID,
		ProducerEpoch:  spec.ProducerEpoch,
		BaseSequence:   spec.BaseSequence,
		Attrs:          attrs,
	}), nil
}

// appendRecords encodes recs with kmsg.Record, computing each record's
// length up front (kmsg writes the length it is given).
func (w *SegmentWriter) appendRecords(dst []byte, recs []Record, first int64) ([]byte, error) {
	kr := &w.krec
	for i := range recs {
		r := &recs[i]
		tsDelta := r.Timestamp - first
		n := 1 + varlongLen(tsDelta) + varlongLen(int64(i)) +
			nullableBytesLen(r.Key) + nullableBytesLen(r.Value) + varlongLen(int64(len(r.Headers)))
		w.khdrs = w.khdrs[:0]
		for j := range r.Headers {
			h := &r.Headers[j]
			n += varlongLen(int64(len(h.Key))) + len(h.Key) + nullableBytesLen(h.Value)
			w.khdrs = append(w.khdrs, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		if n > math.MaxInt32 {
			return dst, fmt.Errorf("objectlog: record %d of %d bytes exceeds the Kafka limit", i, n)
		}
		*kr = kmsg.Record{
			Length:           int32(n),
			TimestampDelta64: tsDelta,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
			Headers:          w.khdrs,
		}
		dst = kr.AppendTo(dst)
	}
	kr.Key, kr.Value, kr.Headers = nil, nil, nil
	clear(w.khdrs[:cap(w.khdrs)]) // drop references to the caller's bytes
	return dst, nil
}

// varlongLen is the size of v as a zigzag varint.
func varlongLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// nullableBytesLen is the size of b with its varint length, nil as -1.
func nullableBytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varlongLen(int64(len(b))) + len(b)
}

// AppendEncodedBatch stores an already-encoded RecordBatch v2 byte for byte
// in the chunk of (topicID, partition): what a Kafka client sent. raw must
// be exactly one batch with magic 2, a valid CRC32C and a known codec;
// anything else fails with ErrCorrupt. Records are not decoded. The returned
// BatchInfo's ByteOffset is within the chunk.
func (w *SegmentWriter) AppendEncodedBatch(topicID uuid.UUID, partition int32, raw []byte) (BatchInfo, error) {
	if err := w.begin(); err != nil {
		return BatchInfo{}, err
	}
	b, err := parseBatch(raw, 0)
	if err != nil {
		return BatchInfo{}, err
	}
	if len(b.Raw) != len(raw) {
		return BatchInfo{}, corruptf("chunk", int64(len(b.Raw)), "%d bytes after the batch", len(raw)-len(b.Raw))
	}
	pos := len(w.buf)
	w.buf = append(w.buf, raw...)
	c := w.chunk(topicID, partition)
	return w.add(c, pos, b.Info()), nil
}

// Finish completes the segment and returns its bytes and footer. Chunks are
// in the order their partitions were first appended to, each holding its
// batches in append order. Every chunk's Batches in the footer lists its
// batches with ByteOffset within the object: a batch's place is its
// chunk's ByteOffset plus the chunk-relative ByteOffset Append returned.
//
// The bytes belong to the writer and stay valid until Reset; the footer is
// the caller's. After Finish, appends fail with ErrWriterFinished until
// Reset.
func (w *SegmentWriter) Finish() ([]byte, Footer, error) {
	if err := w.begin(); err != nil {
		return nil, Footer{}, err
	}
	chunks := make([]ChunkInfo, len(w.chunks))
	batchInfos := make([]BatchInfo, 0, w.batchCount())
	out := w.buf
	if w.interleaved {
		out = slices.Grow(w.out[:0], len(w.buf)+w.footerLen+segmentTrailerLen)
		out = append(out, w.buf[:segmentHeaderLen]...)
	}
	next := int64(segmentHeaderLen)
	for i := range w.chunks {
		cs := &w.chunks[i]
		if w.interleaved {
			for j, p := range cs.positions {
				out = append(out, w.buf[p:p+int(cs.batches[j].ByteLength)]...)
			}
		}
		start := len(batchInfos)
		for _, b := range cs.batches {
			b.ByteOffset += next
			batchInfos = append(batchInfos, b)
		}
		chunks[i] = ChunkInfo{
			TopicID:        cs.key.topic,
			Partition:      cs.key.partition,
			ByteOffset:     next,
			ByteLength:     cs.size,
			Records:        cs.records,
			BatchCount:     int32(len(cs.batches)),
			FirstTimestamp: cs.first,
			MaxTimestamp:   cs.max,
			ProducerIDs:    slices.Clone(cs.pids),
			Transactional:  cs.txn,
			Control:        cs.ctrl,
			Batches:        batchInfos[start:len(batchInfos):len(batchInfos)],
		}
		next += cs.size
	}
	if next != int64(len(out)) {
		// Unreachable unless the bookkeeping above is wrong; never write
		// a footer that points at the wrong bytes.
		return nil, Footer{}, fmt.Errorf("objectlog: segment writer: chunks end at %d, buffer at %d", next, len(out))
	}
	footerOff := int64(len(out))
	out = appendFooterAndTrailer(out, chunks)
	if w.interleaved {
		w.out = out
	} else {
		w.buf = out
	}
	w.finished = true
	return out, Footer{
		MinorVersion: SegmentFormatMinor,
		ObjectSize:   int64(len(out)),
		FooterOffset: footerOff,
		FooterLength: int64(len(out)) - footerOff - segmentTrailerLen,
		Chunks:       chunks,
	}, nil
}

func (w *SegmentWriter) batchCount() int {
	n := 0
	for i := range w.chunks {
		n += len(w.chunks[i].batches)
	}
	return n
}
