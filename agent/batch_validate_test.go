package agent_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// brokenInside returns a copy of a valid uncompressed batch of three
// three-letter records with one thing inside broken and the CRC-32C
// recomputed, so that only a walk of the records can tell: the ways a
// newcomer found to make a partition unreadable (issue 12).
func brokenInside(t *testing.T) map[string]struct {
	raw  []byte
	says string
} {
	t.Helper()
	good := clientBatch(t, objectlog.NoProducer, valueRecords(1, "aaa", "bbb", "ccc")...)
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
		return b
	}
	return map[string]struct {
		raw  []byte
		says string
	}{
		"gzip over plain records": {edit(func(b []byte) { b[22] |= 1 }), "gzip records"},
		"record length varint":    {edit(func(b []byte) { b[61] = 0x7f }), "record length"},
		"record count below the records": {edit(func(b []byte) {
			binary.BigEndian.PutUint32(b[57:], 2)
		}), "record count 2 but last offset delta 2"},
		"record count and offsets below the records": {edit(func(b []byte) {
			binary.BigEndian.PutUint32(b[23:], 1)
			binary.BigEndian.PutUint32(b[57:], 2)
		}), "bytes after the last of 2 records"},
		"record count above the records": {edit(func(b []byte) {
			binary.BigEndian.PutUint32(b[23:], 3)
			binary.BigEndian.PutUint32(b[57:], 4)
		}), "record"},
	}
}

// A batch whose CRC-32C holds but whose records do not parse is refused as
// Kafka's LogValidator refuses it (CORRUPT_MESSAGE; here InvalidArgument
// with that reason), nothing of it is stored, and the partition stays
// readable; valid batches in every codec are still taken.
func TestProduceBatchesRefusesBrokenRecords(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "inside", 1, nil)
	for name, c := range brokenInside(t) {
		res := produceBatches(t, ta, &stratav1.PartitionRecordBatches{Topic: "inside", Partition: 0, RecordBatches: c.raw})
		e := res[0].GetError()
		if e.GetCode() != "invalid_argument" || e.GetInfo().GetKafkaErrorName() != "CORRUPT_MESSAGE" || len(res[0].GetBaseOffsets()) != 0 {
			t.Errorf("%s: %v, want invalid_argument with CORRUPT_MESSAGE and no offsets", name, res[0])
		}
		if msg := e.GetMessage(); !strings.Contains(msg, `topic "inside" partition 0: record batch 0`) || !strings.Contains(msg, c.says) {
			t.Errorf("%s: message %q, want it to name the topic, partition, batch and %q", name, msg, c.says)
		}
	}
	var want []string
	for codec := objectlog.CodecNone; codec <= objectlog.CodecZstd; codec++ {
		spec := objectlog.NoProducer
		spec.Codec = codec
		res := produceBatches(t, ta, &stratav1.PartitionRecordBatches{Topic: "inside", Partition: 0,
			RecordBatches: clientBatch(t, spec, valueRecords(1, codec.String(), "second")...)})
		if res[0].GetError() != nil || len(res[0].GetBaseOffsets()) != 1 || res[0].GetBaseOffsets()[0] != int64(len(want)) {
			t.Fatalf("a valid %s batch: %v, want it at offset %d", codec, res[0], len(want))
		}
		want = append(want, codec.String(), "second")
	}
	fr, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "inside", Partition: 0, Offset: 0}))
	if err != nil {
		t.Fatalf("the partition after refused batches: %v", err)
	}
	var got []string
	for _, r := range fr.Msg.GetRecords() {
		got = append(got, string(r.GetValue()))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read %v, want only the valid batches' records %v", got, want)
	}
}
