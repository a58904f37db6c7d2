package agentcore

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratabroker/strata/objectlog"
)

// recordsBatch is one RecordBatch v2 of the values, as a Kafka client
// sends it.
func recordsBatch(t *testing.T, spec objectlog.BatchSpec, values ...string) []byte {
	t.Helper()
	recs := make([]objectlog.Record, len(values))
	for i, v := range values {
		recs[i] = objectlog.Record{Value: []byte(v), Timestamp: 1}
	}
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendRecords([16]byte{}, 0, spec, recs); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	ch := footer.Chunks[0]
	return slices.Clone(data[ch.ByteOffset : ch.ByteOffset+ch.ByteLength])
}

// issue 12: over the Kafka API, a batch whose CRC-32C holds but whose
// records do not parse is CORRUPT_MESSAGE, as Kafka's LogValidator answers,
// and is never stored: the partition stays readable by a plain Fetch, and
// valid batches in every codec are still taken.
func TestProduceRefusesBrokenRecords(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	const topic = "inside"
	if _, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produce := func(raw []byte) kmsg.ProduceResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 30000
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = raw
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{rp}}}
		resp, err := req.RequestWith(t.Context(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}

	good := recordsBatch(t, objectlog.NoProducer, "aaa", "bbb", "ccc")
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
		return b
	}
	for name, c := range map[string]struct {
		raw  []byte
		says string
	}{
		"gzip over plain records":        {edit(func(b []byte) { b[22] |= 1 }), "gzip records"},
		"record length varint 0x7f":      {edit(func(b []byte) { b[61] = 0x7f }), "record length -64"},
		"record count below the records": {edit(func(b []byte) { binary.BigEndian.PutUint32(b[57:], 2) }), "record count 2 but last offset delta 2"},
		"record count and offsets below the records": {edit(func(b []byte) {
			binary.BigEndian.PutUint32(b[23:], 1)
			binary.BigEndian.PutUint32(b[57:], 2)
		}), "bytes after the last of 2 records"},
	} {
		p := produce(c.raw)
		if p.ErrorCode != kerr.CorruptMessage.Code || p.BaseOffset != -1 {
			t.Errorf("%s: %v at %d, want CORRUPT_MESSAGE", name, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
		if p.ErrorMessage != nil {
			if msg := *p.ErrorMessage; !strings.Contains(msg, `topic "inside" partition 0: record batch 0`) || !strings.Contains(msg, c.says) {
				t.Errorf("%s: message %q, want the topic, partition, batch and %q named", name, msg, c.says)
			}
		} else {
			t.Errorf("%s: no error message at Produce v9", name)
		}
	}

	var want []string
	for codec := objectlog.CodecNone; codec <= objectlog.CodecZstd; codec++ {
		spec := objectlog.NoProducer
		spec.Codec = codec
		if p := produce(recordsBatch(t, spec, codec.String(), "second")); p.ErrorCode != 0 || p.BaseOffset != int64(len(want)) {
			t.Fatalf("a valid %s batch: %v at %d, want it at offset %d", codec, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset, len(want))
		}
		want = append(want, codec.String(), "second")
	}

	// What a consumer reads: only the valid batches, from offset 0 on.
	consumer, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(consumer.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < len(want) && ctx.Err() == nil {
		fetches := consumer.PollFetches(ctx)
		for _, fe := range fetches.Errors() {
			if ctx.Err() == nil {
				t.Fatalf("fetch after %d records: %v", len(got), fe.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read %v, want only the valid batches' records %v", got, want)
	}
}
