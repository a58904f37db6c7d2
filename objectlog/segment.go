package objectlog

// Segment format v1: one object per agent flush, holding one chunk of Kafka
// RecordBatch v2 batches per (topic id, partition), a footer indexing the
// chunks, and a fixed-size trailer at the very end that locates the footer.
// A reader needs the object size, one ranged GET for the tail (footer and
// trailer) and one per chunk it wants. The layout, byte by byte, and the
// version rules are in FORMAT.md next to this file; keep the two in step.
//
// Every byte a v1.0 writer produces is covered by a CRC32C (Castagnoli): the
// header by its own, each batch by Kafka's, the footer by the one in the
// trailer, and the trailer by its own.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/google/uuid"
)

// Format versions. A reader rejects a segment whose major version it does
// not know with ErrCorrupt; it reads any minor version of its major, ignoring
// what a later minor version added (see FORMAT.md).
const (
	SegmentFormatMajor = 1
	SegmentFormatMinor = 0
)

const (
	segmentMagic = "STRATSEG"

	// Header: magic[8] major u8 minor u8 flags u16 crc u32.
	segmentHeaderLen = 16
	// Trailer: footerOffset u64 footerLength u32 footerCRC u32 major u8
	// minor u8 reserved u16 trailerCRC u32 magic[8].
	segmentTrailerLen = 32
	// Footer: chunkCount u32, then one entry per chunk.
	footerHeaderLen = 4
	// A footer entry: entryLength u32 (bytes after it), then topicID[16]
	// partition i32 byteOffset u64 byteLength u64 records i64 batches u32
	// firstTimestamp i64 maxTimestamp i64 flags u16 producerIDCount u32,
	// then producerIDCount producer ids (i64).
	footerEntryPrefixLen = 4
	footerEntryFixedLen  = 16 + 4 + 8 + 8 + 8 + 4 + 8 + 8 + 2 + 4

	minSegmentLen = segmentHeaderLen + footerHeaderLen + segmentTrailerLen

	// footerGuess is how much of the tail ReadFooter fetches first: the
	// footer of a flush touching about 800 partitions fits; beyond that it
	// takes a second GET.
	footerGuess = 64 << 10
)

// Chunk flags in a footer entry.
const (
	chunkFlagTransactional = 1 << 0
	chunkFlagControl       = 1 << 1
)

// ErrShortTail means the bytes given to ParseFooter end the object but do
// not reach back to the footer's start; the error says how many do.
var ErrShortTail = errors.New("tail does not hold the whole footer")

// Footer is the index of a segment.
type Footer struct {
	// MinorVersion is the writer's minor format version.
	MinorVersion uint8
	ObjectSize   int64
	// FooterOffset and FooterLength locate the footer in the object.
	FooterOffset int64
	FooterLength int64
	// Chunks are in object order, which is the order the writer first saw
	// each (topic, partition).
	Chunks []ChunkInfo
}

// Chunk returns the chunk of a partition, if the segment holds one.
func (f *Footer) Chunk(topicID uuid.UUID, partition int32) (ChunkInfo, bool) {
	for _, c := range f.Chunks {
		if c.TopicID == topicID && c.Partition == partition {
			return c, true
		}
	}
	return ChunkInfo{}, false
}

// ChunkInfo is one footer entry: where a partition's chunk lies and what it
// holds.
type ChunkInfo struct {
	TopicID    uuid.UUID
	Partition  int32
	ByteOffset int64
	ByteLength int64
	// Records is the number of offsets the chunk takes: the sum over its
	// batches of LastOffsetDelta+1. The index assigns that many.
	Records    int64
	BatchCount int32
	// FirstTimestamp is the first batch's FirstTimestamp; MaxTimestamp the
	// greatest MaxTimestamp of any batch.
	FirstTimestamp int64
	MaxTimestamp   int64
	// ProducerIDs are the distinct producer ids (>= 0) of the batches,
	// ascending.
	ProducerIDs []int64
	// Transactional and Control report whether any batch has the flag.
	Transactional bool
	Control       bool
	// Batches describes every batch, ByteOffset within the object. Only
	// SegmentWriter.Finish fills it: the footer does not store batches, so
	// a parsed Footer has nil here.
	Batches []BatchInfo
}

// appendHeader appends the 16-byte segment header.
func appendHeader(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, segmentMagic...)
	dst = append(dst, SegmentFormatMajor, SegmentFormatMinor, 0, 0)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func footerEntryLen(producerIDs int) int {
	return footerEntryPrefixLen + footerEntryFixedLen + 8*producerIDs
}

func appendFooterEntry(dst []byte, c *ChunkInfo) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(footerEntryLen(len(c.ProducerIDs))-footerEntryPrefixLen))
	dst = append(dst, c.TopicID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.ByteOffset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.ByteLength))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Records))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.BatchCount))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.FirstTimestamp))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.MaxTimestamp))
	var flags uint16
	if c.Transactional {
		flags |= chunkFlagTransactional
	}
	if c.Control {
		flags |= chunkFlagControl
	}
	dst = binary.BigEndian.AppendUint16(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.ProducerIDs)))
	for _, id := range c.ProducerIDs {
		dst = binary.BigEndian.AppendUint64(dst, uint64(id))
	}
	return dst
}

// appendFooterAndTrailer appends the footer of chunks and the trailer; the
// footer starts at len(dst), which must be its offset in the object.
func appendFooterAndTrailer(dst []byte, chunks []ChunkInfo) []byte {
	footerOff := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(chunks)))
	for i := range chunks {
		dst = appendFooterEntry(dst, &chunks[i])
	}
	footer := dst[footerOff:]
	trailerOff := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(footerOff))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(footer)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(footer, castagnoli))
	dst = append(dst, SegmentFormatMajor, SegmentFormatMinor, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[trailerOff:], castagnoli))
	return append(dst, segmentMagic...)
}

// segmentTrailer is the decoded fixed-size end of a segment.
type segmentTrailer struct {
	footerOffset int64
	footerLength int64
	footerCRC    uint32
	minor        uint8
}

// parseTrailer reads the last segmentTrailerLen bytes of an object of
// objectSize bytes and checks that the footer it points at fits the object.
func parseTrailer(b []byte, objectSize int64) (segmentTrailer, error) {
	at := objectSize - segmentTrailerLen
	if len(b) != segmentTrailerLen {
		return segmentTrailer{}, corruptf("segment", at, "trailer of %d bytes, want %d", len(b), segmentTrailerLen)
	}
	if string(b[24:32]) != segmentMagic {
		return segmentTrailer{}, corruptf("segment", at+24, "trailer magic %q, want %q: not a segment, or truncated", b[24:32], segmentMagic)
	}
	if got, want := crc32.Checksum(b[:20], castagnoli), binary.BigEndian.Uint32(b[20:24]); got != want {
		return segmentTrailer{}, corruptf("segment", at+20, "trailer crc 0x%08x, computed 0x%08x", want, got)
	}
	if major := b[16]; major != SegmentFormatMajor {
		return segmentTrailer{}, corruptf("segment", at+16, "format major version %d unknown (this reader knows %d)", major, SegmentFormatMajor)
	}
	t := segmentTrailer{
		footerOffset: int64(binary.BigEndian.Uint64(b[0:8])),
		footerLength: int64(binary.BigEndian.Uint32(b[8:12])),
		footerCRC:    binary.BigEndian.Uint32(b[12:16]),
		minor:        b[17],
	}
	if t.footerOffset < segmentHeaderLen || t.footerOffset > at || t.footerLength != at-t.footerOffset {
		return segmentTrailer{}, corruptf("segment", at, "footer at %d length %d does not end at the trailer (byte %d)", t.footerOffset, t.footerLength, at)
	}
	return t, nil
}

// ParseFooter reads the footer from the last len(tail) bytes of a segment
// of objectSize bytes: it checks the trailer, the footer CRC, and that every
// chunk lies between the header and the footer, in order, without overlap.
// If tail is too short to hold the footer, the error wraps ErrShortTail and
// says how many bytes are needed. Any other error wraps ErrCorrupt.
func ParseFooter(tail []byte, objectSize int64) (Footer, error) {
	if objectSize < minSegmentLen {
		return Footer{}, corruptf("segment", 0, "object of %d bytes is smaller than an empty segment (%d)", objectSize, minSegmentLen)
	}
	if int64(len(tail)) > objectSize {
		return Footer{}, fmt.Errorf("objectlog: tail of %d bytes longer than the object (%d)", len(tail), objectSize)
	}
	if len(tail) < segmentTrailerLen {
		return Footer{}, fmt.Errorf("objectlog: tail of %d bytes, need at least the %d-byte trailer: %w", len(tail), segmentTrailerLen, ErrShortTail)
	}
	t, err := parseTrailer(tail[len(tail)-segmentTrailerLen:], objectSize)
	if err != nil {
		return Footer{}, err
	}
	tailStart := objectSize - int64(len(tail))
	if t.footerOffset < tailStart {
		return Footer{}, fmt.Errorf("objectlog: footer starts at byte %d, the tail at %d; pass the last %d bytes: %w",
			t.footerOffset, tailStart, objectSize-t.footerOffset, ErrShortTail)
	}
	footer := tail[t.footerOffset-tailStart : int64(len(tail))-segmentTrailerLen]
	if got := crc32.Checksum(footer, castagnoli); got != t.footerCRC {
		return Footer{}, corruptf("segment", t.footerOffset, "footer crc 0x%08x (in trailer), computed 0x%08x over %d bytes", t.footerCRC, got, len(footer))
	}
	f := Footer{MinorVersion: t.minor, ObjectSize: objectSize, FooterOffset: t.footerOffset, FooterLength: t.footerLength}
	if f.Chunks, err = parseFooterEntries(footer, t.footerOffset); err != nil {
		return Footer{}, err
	}
	return f, nil
}

func parseFooterEntries(footer []byte, footerOff int64) ([]ChunkInfo, error) {
	if len(footer) < footerHeaderLen {
		return nil, corruptf("segment", footerOff, "footer of %d bytes has no chunk count", len(footer))
	}
	count := binary.BigEndian.Uint32(footer)
	pos := footerHeaderLen
	if int64(count) > int64(len(footer)-pos)/(footerEntryPrefixLen+footerEntryFixedLen) {
		return nil, corruptf("segment", footerOff, "footer chunk count %d cannot fit in %d bytes", count, len(footer)-pos)
	}
	chunks := make([]ChunkInfo, count)
	seen := make(map[chunkKey]struct{}, count)
	prevEnd := int64(segmentHeaderLen)
	for i := range chunks {
		at := footerOff + int64(pos)
		if len(footer)-pos < footerEntryPrefixLen+footerEntryFixedLen {
			return nil, corruptf("segment", at, "footer entry %d truncated: %d bytes left", i, len(footer)-pos)
		}
		entryLen := int64(binary.BigEndian.Uint32(footer[pos:]))
		if entryLen < footerEntryFixedLen || entryLen > int64(len(footer)-pos-footerEntryPrefixLen) {
			return nil, corruptf("segment", at, "footer entry %d length %d outside %d..%d", i, entryLen, footerEntryFixedLen, len(footer)-pos-footerEntryPrefixLen)
		}
		e := footer[pos+footerEntryPrefixLen : pos+footerEntryPrefixLen+int(entryLen)]
		c := &chunks[i]
		copy(c.TopicID[:], e[0:16])
		c.Partition = int32(binary.BigEndian.Uint32(e[16:]))
		c.ByteOffset = int64(binary.BigEndian.Uint64(e[20:]))
		c.ByteLength = int64(binary.BigEndian.Uint64(e[28:]))
		c.Records = int64(binary.BigEndian.Uint64(e[36:]))
		c.BatchCount = int32(binary.BigEndian.Uint32(e[44:]))
		c.FirstTimestamp = int64(binary.BigEndian.Uint64(e[48:]))
		c.MaxTimestamp = int64(binary.BigEndian.Uint64(e[56:]))
		flags := binary.BigEndian.Uint16(e[64:])
		c.Transactional = flags&chunkFlagTransactional != 0
		c.Control = flags&chunkFlagControl != 0
		pids := int64(binary.BigEndian.Uint32(e[66:]))
		if pids > (entryLen-footerEntryFixedLen)/8 {
			return nil, corruptf("segment", at+footerEntryPrefixLen+66, "footer entry %d: %d producer ids cannot fit in the entry's %d bytes", i, pids, entryLen)
		}
		if pids > 0 {
			c.ProducerIDs = make([]int64, pids)
			for j := range c.ProducerIDs {
				c.ProducerIDs[j] = int64(binary.BigEndian.Uint64(e[footerEntryFixedLen+8*j:]))
			}
		}
		// Bytes after the producer ids belong to a later minor version.
		switch {
		case c.ByteOffset < prevEnd || c.ByteLength < batchHeaderLen || c.ByteLength > footerOff-c.ByteOffset:
			return nil, corruptf("segment", at, "footer entry %d: chunk at %d length %d outside %d..%d (after the previous chunk, before the footer)",
				i, c.ByteOffset, c.ByteLength, prevEnd, footerOff)
		case c.BatchCount < 1 || int64(c.BatchCount) > c.ByteLength/batchHeaderLen:
			return nil, corruptf("segment", at, "footer entry %d: batch count %d impossible in %d bytes", i, c.BatchCount, c.ByteLength)
		case c.Records < int64(c.BatchCount):
			return nil, corruptf("segment", at, "footer entry %d: %d records in %d batches", i, c.Records, c.BatchCount)
		}
		k := chunkKey{c.TopicID, c.Partition}
		if _, dup := seen[k]; dup {
			return nil, corruptf("segment", at, "footer entry %d: second chunk for topic %s partition %d", i, c.TopicID, c.Partition)
		}
		seen[k] = struct{}{}
		prevEnd = c.ByteOffset + c.ByteLength
		pos += footerEntryPrefixLen + int(entryLen)
	}
	// Bytes after the last entry belong to a later minor version.
	return chunks, nil
}

// ReadFooter reads a segment's footer with a HEAD (Attributes) for the size
// and one ranged GET of the tail, plus one more GET if the footer is larger
// than the first guess.
func ReadFooter(ctx context.Context, b BucketReader, key string) (Footer, error) {
	attrs, err := b.Attributes(ctx, key)
	if err != nil {
		return Footer{}, err
	}
	size := attrs.Size
	if size < minSegmentLen {
		return Footer{}, fmt.Errorf("segment %s: %w", key, corruptf("segment", 0, "object of %d bytes is smaller than an empty segment (%d)", size, minSegmentLen))
	}
	n := min(size, footerGuess)
	tail, err := readSegmentRange(ctx, b, key, size-n, n)
	if err != nil {
		return Footer{}, err
	}
	f, err := ParseFooter(tail, size)
	if errors.Is(err, ErrShortTail) {
		var t segmentTrailer
		if t, err = parseTrailer(tail[len(tail)-segmentTrailerLen:], size); err == nil {
			if tail, err = readSegmentRange(ctx, b, key, t.footerOffset, size-t.footerOffset); err != nil {
				return Footer{}, err
			}
			f, err = ParseFooter(tail, size)
		}
	}
	if err != nil {
		return Footer{}, fmt.Errorf("segment %s: %w", key, err)
	}
	return f, nil
}

// ReadChunk fetches one chunk with a ranged GET. The bytes are not verified;
// DecodeChunk or RewriteBaseOffsets does that.
func ReadChunk(ctx context.Context, b BucketReader, key string, c ChunkInfo) ([]byte, error) {
	return readSegmentRange(ctx, b, key, c.ByteOffset, c.ByteLength)
}

func readSegmentRange(ctx context.Context, b BucketReader, key string, off, n int64) ([]byte, error) {
	rc, err := b.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("segment %s: reading bytes %d..%d: %w", key, off, off+n, err)
	}
	return buf, nil
}

// VerifySegment checks a whole segment: header, trailer, footer, every
// batch's framing and CRC, and that each chunk's batch and record counts
// match its footer entry. It decodes no records and modifies nothing.
// Errors locate the bad byte within the object.
func VerifySegment(data []byte) (Footer, error) {
	if len(data) < segmentHeaderLen {
		return Footer{}, corruptf("segment", 0, "object of %d bytes is smaller than an empty segment (%d)", len(data), minSegmentLen)
	}
	if !bytes.Equal(data[:len(segmentMagic)], []byte(segmentMagic)) {
		return Footer{}, corruptf("segment", 0, "header magic %q, want %q: not a segment", data[:len(segmentMagic)], segmentMagic)
	}
	if data[8] != SegmentFormatMajor {
		return Footer{}, corruptf("segment", 8, "format major version %d unknown (this reader knows %d)", data[8], SegmentFormatMajor)
	}
	if got, want := crc32.Checksum(data[:12], castagnoli), binary.BigEndian.Uint32(data[12:16]); got != want {
		return Footer{}, corruptf("segment", 12, "header crc 0x%08x, computed 0x%08x", want, got)
	}
	f, err := ParseFooter(data, int64(len(data)))
	if err != nil {
		return Footer{}, err
	}
	for i, c := range f.Chunks {
		chunk := data[c.ByteOffset : c.ByteOffset+c.ByteLength]
		var batches int32
		var records int64
		for b, err := range ChunkBatches(chunk, -1) {
			if err != nil {
				return Footer{}, inObject(err, c.ByteOffset)
			}
			batches++
			records += int64(b.LastOffsetDelta) + 1
		}
		if batches != c.BatchCount || records != c.Records {
			return Footer{}, corruptf("segment", c.ByteOffset, "chunk %d (topic %s partition %d) holds %d batches with %d records, its footer entry says %d and %d",
				i, c.TopicID, c.Partition, batches, records, c.BatchCount, c.Records)
		}
	}
	return f, nil
}

// inObject turns a chunk-relative FormatError into an object-relative one.
func inObject(err error, chunkOffset int64) error {
	var fe *FormatError
	if errors.As(err, &fe) && fe.Where == "chunk" {
		return &FormatError{Where: "segment", Offset: chunkOffset + fe.Offset, Reason: fe.Reason}
	}
	return err
}
