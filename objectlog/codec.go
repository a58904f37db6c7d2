package objectlog

// Compression of record batches: the five Kafka codecs, as a Kafka client
// writes and reads them. The writer keeps one compressor per SegmentWriter so
// the produce path reuses its state; readers share pooled decompressors, and
// every decompression stops at a caller-given limit so that a small batch
// cannot claim gigabytes (a "compression bomb").

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec is the compression of a record batch, as Kafka numbers it in bits
// 0-2 of the batch attributes.
type Codec int8

// The codecs Kafka defines. Values 5-7 are unassigned and rejected.
const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLZ4    Codec = 3
	CodecZstd   Codec = 4
)

// DefaultMaxBatchBytes bounds what one batch may decompress to when the caller
// does not say otherwise. Kafka's default max.message.bytes is about 1 MiB;
// 64 MiB leaves room for generous topic configs while keeping a hostile batch
// from exhausting memory.
const DefaultMaxBatchBytes = 64 << 20

// ParseCodec reads a codec name as Kafka's compression.type spells it
// ("none" or "uncompressed", "gzip", "snappy", "lz4", "zstd"), ignoring case.
func ParseCodec(s string) (Codec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none", "uncompressed":
		return CodecNone, nil
	case "gzip":
		return CodecGzip, nil
	case "snappy":
		return CodecSnappy, nil
	case "lz4":
		return CodecLZ4, nil
	case "zstd":
		return CodecZstd, nil
	}
	return CodecNone, fmt.Errorf("objectlog: unknown codec %q (want none, gzip, snappy, lz4 or zstd)", s)
}

// String returns the name ParseCodec reads.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// Valid reports whether c is one of the five codecs.
func (c Codec) Valid() bool { return c >= CodecNone && c <= CodecZstd }

// appendWriter is an io.Writer appending to a slice, so that streaming
// compressors write straight into the segment buffer.
type appendWriter struct{ buf []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// compressor holds the streaming encoders of one SegmentWriter. It is not
// safe for concurrent use; neither is the writer.
type compressor struct {
	sink appendWriter
	gz   *gzip.Writer
	lz   *lz4.Writer
}

// zstdEncoder is shared: EncodeAll is safe for concurrent use and keeps one
// encoder state per CPU, which is cheaper than one per SegmentWriter.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderLevel(zstd.SpeedDefault),
	)
})

// compress appends src compressed with codec to dst.
func (c *compressor) compress(codec Codec, dst, src []byte) ([]byte, error) {
	switch codec {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		if c.gz == nil {
			c.gz = gzip.NewWriter(nil)
		}
		return c.stream(c.gz, dst, src)
	case CodecSnappy:
		// Raw snappy block format, as franz-go writes it; Kafka's Java client
		// reads it as well as its own xerial framing.
		n := snappy.MaxEncodedLen(len(src))
		if n < 0 {
			return dst, fmt.Errorf("objectlog: %d bytes too large for snappy", len(src))
		}
		dst = ensureCap(dst, n)
		out := snappy.Encode(dst[len(dst):len(dst)+n], src)
		return dst[:len(dst)+len(out)], nil
	case CodecLZ4:
		if c.lz == nil {
			c.lz = lz4.NewWriter(nil)
			// 64 KiB blocks are what Kafka's Java client writes, and keep
			// the encoder's buffers small.
			if err := c.lz.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
				return dst, fmt.Errorf("objectlog: lz4 options: %w", err)
			}
		}
		return c.stream(c.lz, dst, src)
	case CodecZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return dst, fmt.Errorf("objectlog: zstd encoder: %w", err)
		}
		return enc.EncodeAll(src, dst), nil
	}
	return dst, fmt.Errorf("objectlog: cannot compress with %v", codec)
}

type resettableWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

func (c *compressor) stream(w resettableWriter, dst, src []byte) ([]byte, error) {
	c.sink.buf = dst
	w.Reset(&c.sink)
	_, err := w.Write(src)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	out := c.sink.buf
	c.sink.buf = nil
	if err != nil {
		return dst, fmt.Errorf("objectlog: compress: %w", err)
	}
	return out, nil
}

// ensureCap returns b with room for n more bytes, at least doubling.
func ensureCap(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+max(n, cap(b)))
	copy(nb, b)
	return nb
}

// errDecompressedTooLarge is what a decompression returns when the output passes its limit.
var errDecompressedTooLarge = errors.New("decompressed size exceeds limit")

// limitWriter collects decompressed bytes and fails past limit.
type limitWriter struct {
	buf   []byte
	limit int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.limit {
		return 0, errDecompressedTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

var (
	gzipReaders sync.Pool // *gzip.Reader
	lz4Readers            = sync.Pool{New: func() any { return lz4.NewReader(nil) }}

	zstdMinDecoderCap uint64 = 8 << 20

	zstdDecodersMu sync.Mutex
	zstdDecoders   = map[uint64]*zstd.Decoder{}
)

// zstdDecoder returns a shared decoder whose memory cap is limit rounded up
// to a power of two, and at least zstdMinDecoderCap. A decoder's cap is
// fixed when it is made, and one with a much bigger cap would let a bomb
// allocate far past the caller's limit; rounding keeps the number of
// decoders small (one per power of two in use) while bounding the
// allocation. Callers re-check the exact limit on the result.
//
// The floor exists because the decoder also refuses frames whose window is
// larger than its cap, however little they hold: Kafka's Java client
// streams zstd with a 2 MiB window (level 3) and higher levels use up to
// 8 MiB, so a 1 MiB max.message.bytes must not turn those away.
func zstdDecoder(limit int) (*zstd.Decoder, error) {
	capacity := max(uint64(1)<<bits.Len64(uint64(limit-1)), zstdMinDecoderCap)
	zstdDecodersMu.Lock()
	defer zstdDecodersMu.Unlock()
	if d, ok := zstdDecoders[capacity]; ok {
		return d, nil
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(capacity),
	)
	if err != nil {
		return nil, err
	}
	zstdDecoders[capacity] = d
	return d, nil
}

// decompress returns src decompressed with codec, failing if the result
// would exceed limit bytes. For CodecNone it returns src itself.
func decompress(codec Codec, src []byte, limit int) ([]byte, error) {
	return decompressTo(codec, nil, src, limit)
}

// decompressTo is decompress writing into dst's backing array when it is
// big enough (its contents are overwritten), so that a caller with a pooled
// buffer decompresses without allocating. For CodecNone it returns src.
func decompressTo(codec Codec, dst, src []byte, limit int) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBatchBytes
	}
	switch codec {
	case CodecNone:
		if len(src) > limit {
			return nil, errDecompressedTooLarge
		}
		return src, nil
	case CodecGzip:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return nil, err
		}
		defer gzipReaders.Put(zr)
		return drainLimited(zr, dst, len(src), limit)
	case CodecSnappy:
		return decodeSnappy(dst, src, limit)
	case CodecLZ4:
		zr := lz4Readers.Get().(*lz4.Reader)
		zr.Reset(bytes.NewReader(src))
		defer func() {
			zr.Reset(nil)
			lz4Readers.Put(zr)
		}()
		return drainLimited(zr, dst, len(src), limit)
	case CodecZstd:
		d, err := zstdDecoder(limit)
		if err != nil {
			return nil, err
		}
		out, err := d.DecodeAll(src, dst[:0])
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out) > limit {
			return nil, errDecompressedTooLarge
		}
		return out, err
	}
	return nil, fmt.Errorf("unknown codec %d", codec)
}

// drainLimited reads r to the end into a buffer of at most limit bytes:
// dst's backing array if it has room, else a new one.
func drainLimited(r io.Reader, dst []byte, srcLen, limit int) ([]byte, error) {
	w := limitWriter{limit: limit, buf: dst[:0]}
	if want := min(limit, max(4*srcLen, 512)); cap(w.buf) < want {
		w.buf = make([]byte, 0, want)
	}
	if _, err := io.Copy(&w, r); err != nil {
		return nil, err
	}
	return w.buf, nil
}

// xerialHeader opens snappy data framed the way Kafka's Java client (via
// xerial snappy-java) writes it: this magic, a version and a compatible
// version (int32 each), then blocks of [int32 length][raw snappy block].
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

// decodeSnappy reads raw snappy or xerial-framed snappy. Each block's
// decoded length is checked against the limit before anything is allocated.
func decodeSnappy(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < len(xerialHeader) || !bytes.Equal(src[:len(xerialHeader)], xerialHeader) {
		n, err := s2.DecodedLen(src)
		if err != nil {
			return nil, err
		}
		if n > limit {
			return nil, errDecompressedTooLarge
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		return s2.Decode(dst[:n], src)
	}
	if len(src) < xerialHeaderLen {
		return nil, errors.New("xerial snappy header truncated")
	}
	// First pass: sizes only, so the output is allocated once and bounded.
	total := 0
	for pos := xerialHeaderLen; pos < len(src); {
		block, next, err := xerialBlock(src, pos)
		if err != nil {
			return nil, err
		}
		n, err := s2.DecodedLen(block)
		if err != nil {
			return nil, fmt.Errorf("xerial block at %d: %w", pos, err)
		}
		if total += n; total > limit {
			return nil, errDecompressedTooLarge
		}
		pos = next
	}
	out := dst[:0]
	if cap(out) < total {
		out = make([]byte, 0, total)
	}
	for pos := xerialHeaderLen; pos < len(src); {
		block, next, _ := xerialBlock(src, pos)
		n, _ := s2.DecodedLen(block)
		if _, err := s2.Decode(out[len(out):len(out)+n], block); err != nil {
			return nil, fmt.Errorf("xerial block at %d: %w", pos, err)
		}
		out = out[:len(out)+n]
		pos = next
	}
	return out, nil
}

func xerialBlock(src []byte, pos int) (block []byte, next int, err error) {
	if len(src)-pos < 4 {
		return nil, 0, fmt.Errorf("xerial block length at %d truncated", pos)
	}
	n := int(uint32(src[pos])<<24 | uint32(src[pos+1])<<16 | uint32(src[pos+2])<<8 | uint32(src[pos+3]))
	pos += 4
	if n > len(src)-pos {
		return nil, 0, fmt.Errorf("xerial block at %d: length %d exceeds remaining %d", pos-4, n, len(src)-pos)
	}
	return src[pos : pos+n], pos + n, nil
}
