package agent

// Whole-batch reads of hot entries copy each stored batch once (issue 12).
// A catch-up Fetch used to read a chunk out of the block cache into a
// buffer of its own (readRange: a fresh, zeroed array per chunk), decode
// it there, then append its batches to the answer: two copies and a
// clearing of every byte read, a third of the Kafka reader's CPU. Now the
// read looks at the cached blocks in place (blockCache.view), walks the
// chunk's batch headers there, and appends each batch it answers straight
// into the answer, where it verifies the batch (framing, magic, CRC-32C,
// codec) and sets its base offset, as DecodeChunk does on a copy. Batches
// before the read's offset are verified in place, read only, and left out.
// Every byte a client gets is still verified on its way out of the store's
// bytes, so a corrupt object is ErrCorrupt as before; cached blocks are
// never written.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// readChunkBatches appends to out the batches of e, a hot (not archived)
// entry, that end past next, whole, with their base offsets set from the
// entry's, while they fit in maxBytes (one at least when atLeastOne and out
// is empty). It returns out, the offset after the last batch appended (next
// if none), and whether it stopped because the next batch did not fit. On
// error out holds the batches appended before it, all verified. Errors are
// loadEntry's: objectlog.ErrCorrupt for a chunk that is missing, short,
// fails verification or holds another number of offsets than the entry
// says; the store's errors otherwise.
func (a *Agent) readChunkBatches(ctx context.Context, out []byte, e coordinator.IndexEntry, next, maxBytes int64, atLeastOne bool) ([]byte, int64, bool, error) {
	pieces, err := a.cache.view(ctx, e.SegmentKey, e.ByteOffset, e.ByteLength)
	if err != nil {
		return out, next, false, entryReadError(e, err)
	}
	chunk := chunkView{pieces: pieces}
	for _, p := range pieces {
		chunk.size += int64(len(p))
	}
	if chunk.size != e.ByteLength {
		return out, next, false, fmt.Errorf("%w: index entry at offset %d wants bytes %d+%d of %s, the object has %d of them",
			objectlog.ErrCorrupt, e.BaseOffset, e.ByteOffset, e.ByteLength, e.SegmentKey, chunk.size)
	}
	where := func(pos int64, err error) error {
		return fmt.Errorf("%s bytes %d+%d (offset %d), batch at chunk byte %d: %w", e.SegmentKey, e.ByteOffset, e.ByteLength, e.BaseOffset, pos, err)
	}
	base := e.BaseOffset // the base offset of the batch at pos
	var hdr [batchHeaderBytes]byte
	var scratch []byte
	for pos := int64(0); pos < chunk.size; {
		if left := chunk.size - pos; left < batchHeaderBytes {
			return out, next, false, where(pos, fmt.Errorf("%w: batch header truncated: %d bytes left, a header takes %d", objectlog.ErrCorrupt, left, batchHeaderBytes))
		}
		chunk.copyAt(hdr[:], pos)
		// The length and last offset delta are not verified yet: they
		// only choose what happens next, and the CRC check of the batch
		// that follows catches them if they are wrong.
		size := 12 + int64(int32(binary.BigEndian.Uint32(hdr[8:])))
		if size < batchHeaderBytes || size > chunk.size-pos {
			return out, next, false, where(pos, fmt.Errorf("%w: batch of %d bytes in the %d bytes left of the chunk", objectlog.ErrCorrupt, size, chunk.size-pos))
		}
		lastDelta := int64(int32(binary.BigEndian.Uint32(hdr[batchLastOffsetDeltaAt:])))
		if lastDelta >= 0 && base <= math.MaxInt64-lastDelta-1 && base+lastDelta+1 <= next {
			// Before the read's offset: verified where it lies (the
			// offsets after it depend on its header), not copied.
			b, err := verifyBatch(chunk.slice(pos, size, &scratch), -1)
			if err != nil {
				return out, next, false, where(pos, err)
			}
			if base > math.MaxInt64-int64(b.LastOffsetDelta)-1 {
				return out, next, false, where(pos, fmt.Errorf("%w: offset overflow: base %d + last offset delta %d", objectlog.ErrCorrupt, base, b.LastOffsetDelta))
			}
			base += int64(b.LastOffsetDelta) + 1
			pos += size
			continue
		}
		if int64(len(out))+size > maxBytes && (len(out) > 0 || !atLeastOne) {
			return out, next, true, nil
		}
		start := len(out)
		out = chunk.appendTo(out, pos, size)
		b, err := verifyBatch(out[start:], base)
		if err != nil {
			return out[:start], next, false, where(pos, err)
		}
		base = b.NextOffset()
		next = base
		pos += size
	}
	if want := e.BaseOffset + e.Records; base != want {
		return out, next, false, fmt.Errorf("%w: index entry at offset %d holds %d offsets, its batches in %s take %d",
			objectlog.ErrCorrupt, e.BaseOffset, e.Records, e.SegmentKey, base-e.BaseOffset)
	}
	return out, next, false, nil
}

// verifyBatch verifies raw, one whole batch, as DecodeChunk does, and with
// base >= 0 sets its base offset to base in raw (which must then be the
// caller's own bytes). Its error says where in raw the fault is.
func verifyBatch(raw []byte, base int64) (objectlog.Batch, error) {
	for b, err := range objectlog.ChunkBatches(raw, base) {
		if err != nil {
			return objectlog.Batch{}, err
		}
		if len(b.Raw) != len(raw) {
			return objectlog.Batch{}, fmt.Errorf("%w: batch of %d bytes where its header said %d", objectlog.ErrCorrupt, len(b.Raw), len(raw))
		}
		return b, nil
	}
	return objectlog.Batch{}, fmt.Errorf("%w: no batch in %d bytes", objectlog.ErrCorrupt, len(raw))
}

// entryReadError is the error of an entry whose chunk the block cache could
// not read: a range past the object's end or a missing object is lost
// data (ErrCorrupt), never NotFound (the index never names a missing
// object, DESIGN.md).
func entryReadError(e coordinator.IndexEntry, err error) error {
	switch {
	case errors.Is(err, objectlog.ErrInvalidRange):
		return fmt.Errorf("%w: index entry at offset %d points past the end of %s", objectlog.ErrCorrupt, e.BaseOffset, e.SegmentKey)
	case errors.Is(err, objectlog.ErrNotFound):
		return fmt.Errorf("%w: index entry at offset %d names a missing object: %v", objectlog.ErrCorrupt, e.BaseOffset, err)
	}
	return err
}

// chunkView is a chunk as the block cache's pieces (blockCache.view):
// read only.
type chunkView struct {
	pieces [][]byte
	size   int64
}

// appendTo appends the chunk's bytes [pos, pos+n) to dst.
func (c *chunkView) appendTo(dst []byte, pos, n int64) []byte {
	for _, p := range c.pieces {
		if n == 0 {
			break
		}
		if pos >= int64(len(p)) {
			pos -= int64(len(p))
			continue
		}
		m := min(n, int64(len(p))-pos)
		dst = append(dst, p[pos:pos+m]...)
		pos, n = 0, n-m
	}
	return dst
}

// copyAt fills dst with the chunk's bytes from pos.
func (c *chunkView) copyAt(dst []byte, pos int64) {
	c.appendTo(dst[:0], pos, int64(len(dst)))
}

// slice returns the chunk's bytes [pos, pos+n): the piece's own when they
// lie in one piece, else a copy in *scratch.
func (c *chunkView) slice(pos, n int64, scratch *[]byte) []byte {
	at := pos
	for _, p := range c.pieces {
		if at < int64(len(p)) {
			if at+n <= int64(len(p)) {
				return p[at : at+n : at+n]
			}
			break
		}
		at -= int64(len(p))
	}
	*scratch = c.appendTo((*scratch)[:0], pos, n)
	return *scratch
}
