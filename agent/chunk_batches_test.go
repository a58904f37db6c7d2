package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stratabroker/strata/objectlog"
)

// flippingBucket serves one object with one byte flipped, as a store that
// rotted would: every GET of that byte sees it changed.
type flippingBucket struct {
	objectlog.Bucket
	key string
	at  int64 // the object's byte to flip
}

func (f *flippingBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := f.Bucket.GetRange(ctx, key, off, length)
	if err != nil || key != f.key || f.at < off || (length >= 0 && f.at >= off+length) {
		return rc, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if i := f.at - off; i < int64(len(data)) {
		data[i] ^= 0x40
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// withBase is raw, one stored batch, with its base offset set.
func withBase(raw []byte, base int64) []byte {
	out := bytes.Clone(raw)
	binary.BigEndian.PutUint64(out, uint64(base))
	return out
}

// writtenBatch is a batch as appended, and the offset it got.
type writtenBatch struct {
	raw  []byte
	base int64
}

// appendSegment appends the batches to partition 0 without waiting between
// them, so they land in one segment (the writer flushes every 200 ms), and
// returns them with their offsets.
func appendSegment(t *testing.T, writer *Agent, topic string, raws [][]byte) []writtenBatch {
	t.Helper()
	var waits []func(context.Context) (int64, error)
	for _, raw := range raws {
		w, err := writer.AppendBatch(t.Context(), topic, 0, bytes.Clone(raw))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	out := make([]writtenBatch, len(raws))
	for i, w := range waits {
		base, err := w(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = writtenBatch{raws[i], base}
	}
	return out
}

// wantBatches is what a whole-batch read from offset with maxBytes answers,
// from the batches written: the one holding offset and those after it,
// while they fit (one at least).
func wantBatches(written []writtenBatch, offset, maxBytes int64) []byte {
	var out []byte
	for i, b := range written {
		end := int64(1 << 62) // the last batch holds every offset past it
		if i+1 < len(written) {
			end = written[i+1].base
		}
		if end <= offset {
			continue
		}
		if int64(len(out)+len(b.raw)) > maxBytes && len(out) > 0 {
			break
		}
		out = append(out, withBase(b.raw, b.base)...)
	}
	return out
}

// A cold agent's whole-batch reads, which copy batches from the block
// cache's blocks straight into the answer, answer exactly the writer's
// batches (byte for byte, base offsets set) from any offset and for any
// byte budget, with batches that straddle cache blocks (4 KiB in tests)
// and chunks that start mid-block.
func TestReadBatchesFromTheStoreAreTheWritersBatches(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, func(c *Config) { c.FlushInterval = 200 * time.Millisecond })
	topic := env.createTopic(t, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	var written []writtenBatch
	for seg := range 3 {
		var raws [][]byte
		for b := range 5 {
			spec := objectlog.NoProducer
			if b%3 == 1 {
				spec.Codec = objectlog.CodecZstd
			}
			var recs []objectlog.Record
			for r := range 1 + rng.IntN(4) {
				v := make([]byte, 200+rng.IntN(3000))
				for i := range v {
					v[i] = byte(rng.IntN(256))
				}
				recs = append(recs, objectlog.Record{Value: v, Timestamp: int64(seg*100 + b*10 + r)})
			}
			raws = append(raws, encodedBatch(t, spec, recs...))
		}
		written = append(written, appendSegment(t, writer, topic.Name, raws)...)
	}
	for _, maxBytes := range []int64{1, 3000, 9000, 20000, 1 << 20} {
		reader, _ := env.startAgent(t, nil)
		for offset, hwm := int64(0), int64(1); offset < hwm; offset++ {
			res, err := reader.ReadBatches(t.Context(), []BatchRead{{Topic: topic.Name, Partition: 0, Offset: offset}}, 0, 0, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil {
				t.Fatalf("offset %d max bytes %d: %v", offset, maxBytes, res[0].Err)
			}
			hwm = res[0].HighWatermark
			want := wantBatches(written, offset, maxBytes)
			if !bytes.Equal(res[0].Batches, want) {
				t.Fatalf("offset %d max bytes %d: %d bytes read differ from the %d bytes written", offset, maxBytes, len(res[0].Batches), len(want))
			}
		}
	}
}

// A byte that rots in the store is ErrCorrupt for the read that returns
// its batch, and for a read past it in the same chunk (the batch's header
// places the offsets after it); the batches before it still read, and a
// read never answers the rotten batch.
func TestReadBatchesDetectsARottenStoredByte(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, func(c *Config) { c.FlushInterval = 200 * time.Millisecond })
	topic := env.createTopic(t, 1)
	var raws [][]byte
	for i := range 4 {
		raws = append(raws, encodedBatch(t, objectlog.NoProducer,
			values(int64(i), string(bytes.Repeat([]byte{'a' + byte(i)}, 3000)), "x")...))
	}
	written := appendSegment(t, writer, topic.Name, raws)
	entries, _, err := env.index.Lookup(t.Context(), topic.ID, 0, 0, 1<<20)
	if err != nil || len(entries) != 1 || entries[0].Records != written[3].base+2 {
		t.Fatalf("lookup: %+v, %v; the test needs the four batches in one chunk", entries, err)
	}
	e := entries[0]
	// A byte of the third batch's records (its last), which its CRC covers.
	rotten := 2
	at := e.ByteOffset + int64(len(raws[0])+len(raws[1])+len(raws[2])) - 1
	read := func(t *testing.T, reader *Agent, offset, maxBytes int64) BatchReadResult {
		t.Helper()
		res, err := reader.ReadBatches(t.Context(), []BatchRead{{Topic: topic.Name, Partition: 0, Offset: offset}}, 0, 0, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	for _, tc := range []struct {
		name     string
		offset   int64
		maxBytes int64
		want     []byte // nil: ErrCorrupt
	}{
		{"from the start", 0, 1 << 20, wantBatches(written[:rotten], 0, 1<<20)},
		{"at the rotten batch", written[rotten].base, 1 << 20, nil},
		{"at the rotten batch, one batch", written[rotten].base, 1, nil},
		{"past the rotten batch", written[rotten+1].base, 1 << 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reader := env.startAgentOnBucket(t, &flippingBucket{Bucket: env.store, key: e.SegmentKey, at: at})
			res := read(t, reader, tc.offset, tc.maxBytes)
			if tc.want == nil {
				if !errors.Is(res.Err, objectlog.ErrCorrupt) || len(res.Batches) != 0 {
					t.Fatalf("read %d bytes, %v; want ErrCorrupt and nothing", len(res.Batches), res.Err)
				}
				return
			}
			if res.Err != nil || !bytes.Equal(res.Batches, tc.want) {
				t.Fatalf("read %d bytes, %v; want the %d bytes of the batches before the rotten one", len(res.Batches), res.Err, len(tc.want))
			}
		})
	}
	// The control: the same reads through the store as it is succeed.
	reader, _ := env.startAgent(t, nil)
	for _, offset := range []int64{0, written[rotten].base, written[rotten+1].base} {
		if res := read(t, reader, offset, 1<<20); res.Err != nil || !bytes.Equal(res.Batches, wantBatches(written, offset, 1<<20)) {
			t.Fatalf("offset %d through the sound store: %d bytes, %v", offset, len(res.Batches), res.Err)
		}
	}
}
