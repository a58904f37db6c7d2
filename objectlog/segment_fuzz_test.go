package objectlog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratabroker/strata/objectlog"
)

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false,
	"rewrite testdata/fuzz/FuzzReadSegment from fuzzSeeds")

const fuzzCorpusDir = "testdata/fuzz/FuzzReadSegment"

// fuzzSeeds are small segments, one per codec and one mixing everything,
// and truncated copies. Names starting with "valid-" verify; "truncated-"
// ones do not.
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{}
	for _, codec := range allCodecs {
		w := objectlog.NewSegmentWriter()
		for p := range int32(2) {
			recs := []objectlog.Record{
				{Key: fmt.Appendf(nil, "key-%d", p), Value: []byte("fuzz seed value, fuzz seed value"), Timestamp: baseTime},
				{Key: nil, Value: []byte{}, Timestamp: baseTime + 1, Headers: []objectlog.Header{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
				{Key: []byte("tomb"), Value: nil, Timestamp: baseTime - 1},
			}
			if _, err := w.AppendRecords(topicA, p, spec(codec), recs); err != nil {
				t.Fatal(err)
			}
		}
		data, _ := mustFinish(t, w)
		seeds["valid-"+codec.String()] = data
	}

	w := objectlog.NewSegmentWriter()
	steps := interleavedSteps
	for i, s := range steps {
		if _, err := w.AppendRecords(s.topic, s.partition, s.spec, stepRecords(s, i)); err != nil {
			t.Fatal(err)
		}
	}
	xerialBatch := kmsgBatch(kmsg.RecordBatch{
		FirstOffset: 99, Attributes: int16(objectlog.CodecSnappy), LastOffsetDelta: 1, NumRecords: 2,
		FirstTimestamp: baseTime, MaxTimestamp: baseTime, ProducerID: 1, FirstSequence: 0,
	}, compressIndependently(t, "snappy-xerial", kmsgRecords([]objectlog.Record{{Value: []byte("java")}, {Value: []byte("client")}}, baseTime)))
	if _, err := w.AppendEncodedBatch(topicB, 9, xerialBatch); err != nil {
		t.Fatal(err)
	}
	mixed, _ := mustFinish(t, w)
	seeds["valid-mixed"] = mixed

	f, err := objectlog.ParseFooter(mixed, int64(len(mixed)))
	if err != nil {
		t.Fatal(err)
	}
	seeds["truncated-mid-batch"] = mixed[:f.Chunks[0].ByteOffset+30]
	seeds["truncated-before-footer"] = mixed[:f.FooterOffset]
	seeds["truncated-mid-trailer"] = mixed[:len(mixed)-10]
	seeds["truncated-header-only"] = mixed[:16]
	return seeds
}

// FuzzReadSegment feeds arbitrary bytes to every reader: ParseFooter and
// VerifySegment on the whole input, DecodeChunk, RewriteBaseOffsets and
// record decoding on every chunk the footer names and on the input taken as
// a bare chunk, and the same again after resealing batch CRCs so that
// mutations reach the record decoder and the decompressors. Nothing may
// panic, and every error must be ErrCorrupt.
func FuzzReadSegment(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		footer, err := objectlog.ParseFooter(data, int64(len(data)))
		mustBeCorrupt(t, "ParseFooter", err)
		if err == nil {
			for i, c := range footer.Chunks {
				if c.ByteOffset < 16 || c.ByteLength <= 0 || c.ByteOffset+c.ByteLength > footer.FooterOffset {
					t.Fatalf("chunk %d at %d+%d outside the object (footer at %d)", i, c.ByteOffset, c.ByteLength, footer.FooterOffset)
				}
				chunk := data[c.ByteOffset : c.ByteOffset+c.ByteLength]
				decodeEverything(t, bytes.Clone(chunk))
				decodeEverything(t, reseal(chunk))
			}
		}
		_, err = objectlog.VerifySegment(data)
		mustBeCorrupt(t, "VerifySegment", err)
		decodeEverything(t, bytes.Clone(data))
		decodeEverything(t, reseal(data))
	})
}

func mustBeCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, objectlog.ErrCorrupt) {
		t.Fatalf("%s: %v, want nil or ErrCorrupt", what, err)
	}
}

// reseal returns a copy of chunk with the CRC of every batch it can frame
// recomputed.
func reseal(chunk []byte) []byte {
	c := bytes.Clone(chunk)
	for pos := 0; len(c)-pos >= 61; {
		length := int64(int32(binary.BigEndian.Uint32(c[pos+8:])))
		if length < 49 || length > int64(len(c)-pos-12) {
			break
		}
		end := pos + 12 + int(length)
		binary.BigEndian.PutUint32(c[pos+17:], crc32.Checksum(c[pos+21:end], castagnoli))
		pos = end
	}
	return c
}

// decodeEverything runs every chunk reader on chunk and checks what they
// promise: errors are ErrCorrupt, a failed decode leaves the bytes alone,
// offsets are assigned sequentially, records stay inside their batch.
func decodeEverything(t *testing.T, chunk []byte) {
	orig := bytes.Clone(chunk)
	if err := objectlog.RewriteBaseOffsets(bytes.Clone(chunk), 5); err != nil {
		mustBeCorrupt(t, "RewriteBaseOffsets", err)
	}
	batches, err := objectlog.DecodeChunk(chunk, 0)
	mustBeCorrupt(t, "DecodeChunk", err)
	if err != nil {
		if !bytes.Equal(chunk, orig) {
			t.Fatal("DecodeChunk modified a chunk it rejected")
		}
		return
	}
	next := int64(0)
	for _, b := range batches {
		if b.BaseOffset != next {
			t.Fatalf("batch at %d: base offset %d, want %d", b.ChunkOffset, b.BaseOffset, next)
		}
		next = b.NextOffset()
		// A small limit keeps the fuzzer fast; bombs must fail, not allocate.
		recs, err := b.AppendRecords(nil, 1<<20)
		mustBeCorrupt(t, "Records", err)
		// The produce path's walk agrees with the decoder: it passes only
		// batches that decode, with one record per offset.
		check, cerr := b.CheckRecords(1 << 20)
		mustBeCorrupt(t, "CheckRecords", cerr)
		if cerr == nil {
			if err != nil || int64(len(recs)) != int64(b.LastOffsetDelta)+1 {
				t.Fatalf("batch at %d: CheckRecords passed, but Records: %d records of %d offsets, %v", b.ChunkOffset, len(recs), int64(b.LastOffsetDelta)+1, err)
			}
			nullKey := int32(-1)
			for i, r := range recs {
				if r.Key == nil {
					nullKey = int32(i)
					break
				}
			}
			if check.NullKeyDelta != nullKey {
				t.Fatalf("batch at %d: CheckRecords says the first null key is at delta %d, Records at %d", b.ChunkOffset, check.NullKeyDelta, nullKey)
			}
		}
		if err != nil {
			continue
		}
		if len(recs) != int(b.NumRecords) {
			t.Fatalf("batch at %d: %d records, header says %d", b.ChunkOffset, len(recs), b.NumRecords)
		}
		prev := b.BaseOffset - 1
		for _, r := range recs {
			if r.Offset <= prev || r.Offset >= next {
				t.Fatalf("batch at %d: record offset %d outside %d..%d or out of order", b.ChunkOffset, r.Offset, prev+1, next-1)
			}
			prev = r.Offset
		}
	}
	// Rewriting from the same base is idempotent.
	again := bytes.Clone(chunk)
	if err := objectlog.RewriteBaseOffsets(again, 0); err != nil || !bytes.Equal(again, chunk) {
		t.Fatalf("RewriteBaseOffsets after DecodeChunk: %v, same bytes %v", err, bytes.Equal(again, chunk))
	}
}

// TestSegmentFuzzCorpus keeps the committed seed corpus honest: every file
// parses as a fuzz input, the valid ones verify and decode, the truncated
// ones fail with ErrCorrupt. With -update-fuzz-corpus it rewrites the files.
func TestSegmentFuzzCorpus(t *testing.T) {
	t.Parallel()
	seeds := fuzzSeeds(t)
	if *updateFuzzCorpus {
		if err := os.MkdirAll(fuzzCorpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
			if err := os.WriteFile(filepath.Join(fuzzCorpusDir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		raw, err := os.ReadFile(filepath.Join(fuzzCorpusDir, name))
		if err != nil {
			t.Fatalf("seed %s not committed (run go test ./objectlog -run TestSegmentFuzzCorpus -update-fuzz-corpus): %v", name, err)
		}
		data, err := parseCorpusFile(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = objectlog.VerifySegment(data)
		switch {
		case strings.HasPrefix(name, "valid-"):
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			f, _ := objectlog.ParseFooter(data, int64(len(data)))
			for _, c := range f.Chunks {
				bs, err := objectlog.DecodeChunk(bytes.Clone(data[c.ByteOffset:c.ByteOffset+c.ByteLength]), 0)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for _, b := range bs {
					if _, err := b.Records(); err != nil {
						t.Errorf("%s: batch at %d: %v", name, b.ChunkOffset, err)
					}
				}
			}
		case strings.HasPrefix(name, "truncated-"):
			if !errors.Is(err, objectlog.ErrCorrupt) {
				t.Errorf("%s: VerifySegment = %v, want ErrCorrupt", name, err)
			}
		default:
			t.Errorf("seed %s: name must start with valid- or truncated-", name)
		}
	}
}

// parseCorpusFile reads the one []byte value of a "go test fuzz v1" file.
func parseCorpusFile(raw []byte) ([]byte, error) {
	header, body, ok := strings.Cut(string(raw), "\n")
	if !ok || header != "go test fuzz v1" {
		return nil, fmt.Errorf("not a go fuzz corpus file")
	}
	body = strings.TrimSpace(body)
	inner, ok := strings.CutPrefix(body, "[]byte(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil, fmt.Errorf("want one []byte(...) value, got %.40q", body)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(inner, ")"))
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}
