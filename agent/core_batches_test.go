package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// encodedBatch is one RecordBatch v2 as a Kafka client would send it: base
// offset 0, a valid CRC-32C.
func encodedBatch(t *testing.T, spec objectlog.BatchSpec, recs ...objectlog.Record) []byte {
	t.Helper()
	w := objectlog.NewSegmentWriter()
	var id [16]byte
	if _, err := w.AppendRecords(id, 0, spec, recs); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c := footer.Chunks[0]
	return bytes.Clone(data[c.ByteOffset : c.ByteOffset+c.ByteLength])
}

func appendBatch(t *testing.T, a *Agent, topic string, p int32, raw []byte) int64 {
	t.Helper()
	wait, err := a.AppendBatch(t.Context(), topic, p, raw)
	if err != nil {
		t.Fatal(err)
	}
	base, err := wait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// Batches are stored byte for byte and read back whole, only their base
// offsets set; the read starts with the batch holding the offset.
func TestAppendBatchReadBatchesWhole(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	reader, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 2)
	spec := objectlog.NoProducer
	spec.Codec = objectlog.CodecZstd
	first := encodedBatch(t, spec, values(10, "a", "b", "c")...)
	second := encodedBatch(t, objectlog.NoProducer, values(20, "d", "e")...)
	if base := appendBatch(t, writer, topic.Name, 1, bytes.Clone(first)); base != 0 {
		t.Fatalf("first batch at %d, want 0", base)
	}
	if base := appendBatch(t, writer, topic.Name, 1, bytes.Clone(second)); base != 3 {
		t.Fatalf("second batch at %d, want 3", base)
	}
	withBase := func(raw []byte, base int64) []byte {
		out := bytes.Clone(raw)
		binary.BigEndian.PutUint64(out, uint64(base))
		return out
	}
	for _, a := range []*Agent{writer, reader} {
		res, err := a.ReadBatches(t.Context(), []BatchRead{
			{Topic: topic.Name, Partition: 1, Offset: 4},
			{Topic: topic.Name, Partition: 1, Offset: 0},
			{Topic: topic.Name, Partition: 0, Offset: 0},
			{Topic: topic.Name, Partition: 1, Offset: 6},
		}, 0, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res[0].Batches, withBase(second, 3)) || res[0].HighWatermark != 5 {
			t.Fatalf("from offset 4: %x (hwm %d), want the second batch at base 3", res[0].Batches, res[0].HighWatermark)
		}
		if !bytes.Equal(res[1].Batches, append(withBase(first, 0), withBase(second, 3)...)) {
			t.Fatalf("from offset 0: not both batches whole")
		}
		if len(res[2].Batches) != 0 || res[2].Err != nil || res[2].HighWatermark != 0 {
			t.Fatalf("empty partition: %+v", res[2])
		}
		if !errors.Is(res[3].Err, coordinator.ErrOffsetOutOfRange) || res[3].HighWatermark != 5 {
			t.Fatalf("offset past the high watermark: %+v, want out of range with the bounds", res[3])
		}
		// maxBytes below the first batch still gets it (KIP-74), and no more.
		res, err = a.ReadBatches(t.Context(), []BatchRead{{Topic: topic.Name, Partition: 1, Offset: 0}}, 0, 0, 1)
		if err != nil || !bytes.Equal(res[0].Batches, withBase(first, 0)) {
			t.Fatalf("max bytes 1: %x, %v; want the first batch alone", res[0].Batches, err)
		}
	}
	// The Connect Fetch reads the same records.
	resp, err := doFetch(t.Context(), reader, fetchReq(topic, 1, 0))
	if err != nil || offsetsOf(resp.Records) != "0,1,2,3,4" || string(resp.Records[3].Value) != "d" {
		t.Fatalf("Connect Fetch: %v, %v", resp, err)
	}
}

func TestAppendBatchRefusesBadBatches(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	good := encodedBatch(t, objectlog.NoProducer, values(1, "x")...)

	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 0xff
	if _, err := a.AppendBatch(t.Context(), topic.Name, 0, corrupt); !errors.Is(err, objectlog.ErrCorrupt) {
		t.Fatalf("a batch with a bad CRC: %v, want ErrCorrupt", err)
	}
	if _, err := a.AppendBatch(t.Context(), topic.Name, 1, bytes.Clone(good)); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("partition 1 of a 1-partition topic: %v", err)
	}
	if _, err := a.AppendBatch(t.Context(), "nope", 0, bytes.Clone(good)); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("an unknown topic: %v", err)
	}
	if _, err := env.index.UpdateTopicConfig(t.Context(), topic.Name, map[string]string{coordinator.ConfigMaxMessageBytes: "40"}); err != nil {
		t.Fatal(err)
	}
	a.topics.invalidate(topic.Name)
	if _, err := a.AppendBatch(t.Context(), topic.Name, 0, bytes.Clone(good)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a batch over max.message.bytes 40: %v, want ErrTooLarge", err)
	}
	st, err := env.index.PartitionState(t.Context(), topic.ID, 0)
	if err != nil || st.HighWatermark != 0 {
		t.Fatalf("after refused batches the partition holds %d offsets (%v), want 0", st.HighWatermark, err)
	}
}

// A duplicate of an idempotent batch gets the offset the first copy got
// (KIP-98), and takes none of its own.
func TestAppendBatchIdempotentDuplicate(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	id, epoch, err := a.NewProducerEpoch(t.Context(), -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	spec := objectlog.BatchSpec{ProducerID: id, ProducerEpoch: epoch, BaseSequence: 0}
	raw := encodedBatch(t, spec, values(1, "a", "b")...)
	if base := appendBatch(t, a, topic.Name, 0, bytes.Clone(raw)); base != 0 {
		t.Fatalf("first copy at %d", base)
	}
	if base := appendBatch(t, a, topic.Name, 0, bytes.Clone(raw)); base != 0 {
		t.Fatalf("duplicate at %d, want the first copy's 0", base)
	}
	spec.BaseSequence = 5 // a gap
	wait, err := a.AppendBatch(t.Context(), topic.Name, 0, encodedBatch(t, spec, values(1, "c")...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t.Context()); !errors.Is(err, coordinator.ErrOutOfOrderSequence) {
		t.Fatalf("a sequence gap: %v, want ErrOutOfOrderSequence", err)
	}
	st, err := env.index.PartitionState(t.Context(), topic.ID, 0)
	if err != nil || st.HighWatermark != 2 {
		t.Fatalf("high watermark %d (%v), want 2", st.HighWatermark, err)
	}
	// A bump fences the old epoch.
	if _, e2, err := a.NewProducerEpoch(t.Context(), id, epoch); err != nil || e2 != epoch+1 {
		t.Fatalf("bump: epoch %d, %v", e2, err)
	}
}

// A read at the high watermark waits for a commit on any agent, over any of
// its partitions.
func TestReadBatchesLongPoll(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	reader, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 2)
	done := make(chan []BatchReadResult, 1)
	go func() {
		res, err := reader.ReadBatches(t.Context(), []BatchRead{
			{Topic: topic.Name, Partition: 0, Offset: 0},
			{Topic: topic.Name, Partition: 1, Offset: 0},
		}, 10*time.Second, 1, 1<<20)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case r := <-done:
		t.Fatalf("the read at the high watermark answered at once: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	raw := encodedBatch(t, objectlog.NoProducer, values(1, "late")...)
	appendBatch(t, writer, topic.Name, 1, raw)
	select {
	case r := <-done:
		if len(r) != 2 || len(r[0].Batches) != 0 || len(r[1].Batches) != len(raw) || r[1].HighWatermark != 1 {
			t.Fatalf("woken read: %+v", r)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("the read did not wake on the commit")
	}
}

// A batch with a producer id but a negative epoch or base sequence is
// malformed (Kafka's INVALID_RECORD): refused before it joins a segment,
// naming the fields, and no neighbour in the segment fails with it.
func TestAppendBatchRefusesMalformedProducer(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	id, epoch, err := a.NewProducerEpoch(t.Context(), -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		spec  objectlog.BatchSpec
		words string
	}{
		{"epoch -1", objectlog.BatchSpec{ProducerID: id, ProducerEpoch: -1, BaseSequence: 2}, "producer epoch -1"},
		{"sequence -1", objectlog.BatchSpec{ProducerID: id, ProducerEpoch: epoch, BaseSequence: -1}, "invalid sequence number -1"},
	} {
		raw := encodedBatch(t, c.spec, values(1, "x")...)
		_, err := a.AppendBatch(t.Context(), topic.Name, 0, raw)
		if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), c.words) {
			t.Errorf("%s: %v, want ErrInvalidRecord saying %q", c.name, err, c.words)
		}
		if err != nil && strings.Contains(err.Error(), "segment") {
			t.Errorf("%s: %v names a segment", c.name, err)
		}
	}
	good := objectlog.BatchSpec{ProducerID: id, ProducerEpoch: epoch, BaseSequence: 0}
	if base := appendBatch(t, a, topic.Name, 0, encodedBatch(t, good, values(1, "a")...)); base != 0 {
		t.Fatalf("a well-formed idempotent batch at %d, want 0", base)
	}
}

// Once a read's byte budget is spent, the partitions after it answer their
// bounds only (read together): high watermark, log start offset, or their
// error, and no batch.
func TestReadBatchesPartitionsPastTheBudgetAnswerTheirBounds(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	reader, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 4)
	for p := range int32(4) {
		for i := range int(p) + 1 {
			appendBatch(t, writer, topic.Name, p, encodedBatch(t, objectlog.NoProducer, values(int64(i), "a", "b")...))
		}
	}
	res, err := reader.ReadBatches(t.Context(), []BatchRead{
		{Topic: topic.Name, Partition: 0, Offset: 0},
		{Topic: topic.Name, Partition: 1, Offset: 0},
		{Topic: topic.Name, Partition: 2, Offset: 9},
		{Topic: topic.Name, Partition: 3, Offset: 2},
	}, 0, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || len(res[0].Batches) == 0 || res[0].HighWatermark != 2 {
		t.Fatalf("partition 0: %+v, want its one batch", res[0])
	}
	if res[1].Err != nil || len(res[1].Batches) != 0 || res[1].HighWatermark != 4 || res[1].LogStartOffset != 0 {
		t.Fatalf("partition 1: %+v, want no batch, high watermark 4", res[1])
	}
	if !errors.Is(res[2].Err, coordinator.ErrOffsetOutOfRange) || res[2].HighWatermark != 6 {
		t.Fatalf("partition 2 at offset 9: %+v, want out of range with high watermark 6", res[2])
	}
	if res[3].Err != nil || len(res[3].Batches) != 0 || res[3].HighWatermark != 8 {
		t.Fatalf("partition 3: %+v, want no batch, high watermark 8", res[3])
	}
}
