package client

// Kafka RecordBatch v2 (magic 2) on the client side, for the API's batch
// path (ProduceBatches, FetchBatches): the producer encodes and compresses
// each partition's batch itself, as a Kafka producer does, and the consumer
// decodes the batches it fetches. Both use franz-go, a Kafka client any
// outside program could use: kmsg and kbin for the encoding, kgo's
// compressor and its ProcessFetchPartition for the decoding (CRC checks,
// every codec, control batches and aborted transactions dropped).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// BatchCodec is how the Producer compresses its record batches (Kafka's
// compression.type): the agent stores the batches as they come, so a
// topic's own compression.type does not apply to them.
type BatchCodec int8

// The codecs, numbered as Kafka numbers them in a batch's attributes.
const (
	BatchCodecNone   BatchCodec = 0
	BatchCodecGzip   BatchCodec = 1
	BatchCodecSnappy BatchCodec = 2
	BatchCodecLZ4    BatchCodec = 3
	BatchCodecZstd   BatchCodec = 4
)

func (c BatchCodec) String() string {
	switch c {
	case BatchCodecNone:
		return "none"
	case BatchCodecGzip:
		return "gzip"
	case BatchCodecSnappy:
		return "snappy"
	case BatchCodecLZ4:
		return "lz4"
	case BatchCodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// compressor returns kgo's compressor for c; nil for none.
func (c BatchCodec) compressor() (kgo.Compressor, error) {
	switch c {
	case BatchCodecNone:
		return nil, nil
	case BatchCodecGzip:
		return kgo.DefaultCompressor(kgo.GzipCompression())
	case BatchCodecSnappy:
		return kgo.DefaultCompressor(kgo.SnappyCompression())
	case BatchCodecLZ4:
		return kgo.DefaultCompressor(kgo.Lz4Compression())
	case BatchCodecZstd:
		return kgo.DefaultCompressor(kgo.ZstdCompression())
	}
	return nil, fmt.Errorf("BatchCompression %d: unknown codec (want 0 to 4)", int8(c))
}

// Batch header layout (Kafka's DefaultRecordBatch), byte offsets.
const (
	batchHeaderLen    = 61
	batchLengthOffset = 8
	batchCRCOffset    = 17
	batchCRCStart     = 21
	batchLengthBase   = 12 // base offset and length, not counted in length
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodedBody is a batch's records, encoded and compressed once: a retry in
// another epoch or at another sequence only frames it again.
type encodedBody struct {
	records        []byte
	codec          BatchCodec
	firstTimestamp int64
	maxTimestamp   int64
	count          int32
}

// encodeBody encodes the records of a batch (offset deltas from 0,
// timestamp deltas from the first record's) and compresses them with comp.
// A codec that would not shrink them leaves them uncompressed, as Kafka's
// producers do.
func encodeBody(recs []pendingRecord, comp kgo.Compressor, codec BatchCodec) encodedBody {
	body := encodedBody{firstTimestamp: recs[0].ts, maxTimestamp: recs[0].ts, count: int32(len(recs))}
	var raw, rec []byte
	for i := range recs {
		r := recs[i].r
		body.maxTimestamp = max(body.maxTimestamp, recs[i].ts)
		rec = rec[:0]
		rec = kbin.AppendInt8(rec, 0) // record attributes: unused in v2
		rec = kbin.AppendVarlong(rec, recs[i].ts-body.firstTimestamp)
		rec = kbin.AppendVarint(rec, int32(i))
		rec = kbin.AppendVarintBytes(rec, r.Key)
		rec = kbin.AppendVarintBytes(rec, r.Value)
		rec = kbin.AppendVarint(rec, int32(len(r.Headers)))
		for _, h := range r.Headers {
			rec = kbin.AppendVarintString(rec, h.Key)
			rec = kbin.AppendVarintBytes(rec, h.Value)
		}
		raw = kbin.AppendVarint(raw, int32(len(rec)))
		raw = append(raw, rec...)
	}
	body.records = raw
	if comp != nil {
		var buf bytes.Buffer
		if out, used := comp.Compress(&buf, raw); used != kgo.CodecNone && len(out) < len(raw) {
			body.records, body.codec = bytes.Clone(out), codec
		}
	}
	return body
}

// frame appends the whole batch: the header with the producer fields of
// this attempt (-1s without idempotence), the body, its length and CRC-32C.
func (b *encodedBody) frame(dst []byte, pid int64, epoch int16, seq int32) []byte {
	hdr := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(b.codec),
		LastOffsetDelta:      b.count - 1,
		FirstTimestamp:       b.firstTimestamp,
		MaxTimestamp:         b.maxTimestamp,
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		FirstSequence:        seq,
		NumRecords:           b.count,
	}
	start := len(dst)
	dst = hdr.AppendTo(dst) // no Records: the 61-byte header
	dst = append(dst, b.records...)
	batch := dst[start:]
	binary.BigEndian.PutUint32(batch[batchLengthOffset:], uint32(len(batch)-batchLengthBase))
	binary.BigEndian.PutUint32(batch[batchCRCOffset:], crc32.Checksum(batch[batchCRCStart:], castagnoli))
	return dst
}

// decodeFetched decodes one partition of a FetchBatches answer into
// records from offset on: CRCs checked, every codec, control batches
// dropped, and under read_committed the batches of aborted transactions
// too (KIP-98). It returns the records and the offset after the last batch
// read (where the next fetch starts: past control batches and aborted
// ones too).
func decodeFetched(p *stratav1.FetchBatchesPartitionResult, offset int64, readCommitted bool) ([]Record, int64, error) {
	if len(p.GetRecordBatches()) == 0 {
		return nil, offset, nil
	}
	rp := &kmsg.FetchResponseTopicPartition{
		Partition:        p.GetPartition(),
		HighWatermark:    p.GetHighWatermark(),
		LastStableOffset: p.GetLastStableOffset(),
		LogStartOffset:   p.GetLogStartOffset(),
		RecordBatches:    p.GetRecordBatches(),
	}
	for _, t := range p.GetAbortedTransactions() {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = t.GetProducerId(), t.GetFirstOffset()
		rp.AbortedTransactions = append(rp.AbortedTransactions, at)
	}
	level := kgo.ReadUncommitted()
	if readCommitted {
		level = kgo.ReadCommitted()
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset: offset, IsolationLevel: level, Topic: p.GetTopic(), Partition: p.GetPartition(),
	}, rp, decompressor, nil)
	if fp.Err != nil {
		return nil, offset, fmt.Errorf("topic %q partition %d: record batches from offset %d: %w", p.GetTopic(), p.GetPartition(), offset, fp.Err)
	}
	out := make([]Record, len(fp.Records))
	for i, r := range fp.Records {
		out[i] = Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.In(time.UTC)}
		for _, h := range r.Headers {
			out[i].Headers = append(out[i].Headers, Header{Key: h.Key, Value: h.Value})
		}
	}
	return out, next, nil
}

// decompressor is kgo's, shared: it pools its readers.
var decompressor = kgo.DefaultDecompressor()
