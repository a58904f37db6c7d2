package agent_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// clientBatch is one RecordBatch v2 as a client encodes it.
func clientBatch(t *testing.T, spec objectlog.BatchSpec, recs ...objectlog.Record) []byte {
	t.Helper()
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendRecords([16]byte{}, 0, spec, recs); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c := footer.Chunks[0]
	return bytes.Clone(data[c.ByteOffset : c.ByteOffset+c.ByteLength])
}

func valueRecords(ts int64, vs ...string) []objectlog.Record {
	out := make([]objectlog.Record, len(vs))
	for i, v := range vs {
		out[i] = objectlog.Record{Value: []byte(v), Timestamp: ts}
	}
	return out
}

func produceBatches(t *testing.T, ta *testAgent, parts ...*stratav1.PartitionRecordBatches) []*stratav1.PartitionBatchesResult {
	t.Helper()
	resp, err := ta.producer.ProduceBatches(t.Context(), connect.NewRequest(&stratav1.ProduceBatchesRequest{Partitions: parts}))
	if err != nil {
		t.Fatalf("ProduceBatches: %v", err)
	}
	if len(resp.Msg.GetPartitions()) != len(parts) {
		t.Fatalf("ProduceBatches answered %d partitions, want %d", len(resp.Msg.GetPartitions()), len(parts))
	}
	return resp.Msg.GetPartitions()
}

// decodeBatches decodes fetched batches into records, skipping control
// batches (transaction markers) as consumers do.
func decodeBatches(t *testing.T, raw []byte) []objectlog.DecodedRecord {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	batches, err := objectlog.DecodeChunk(bytes.Clone(raw), -1)
	if err != nil {
		t.Fatal(err)
	}
	var out []objectlog.DecodedRecord
	for i := range batches {
		if batches[i].Attrs.Control() {
			continue
		}
		if out, err = batches[i].AppendRecords(out, 0); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Batches go in byte for byte through ProduceBatches, several per partition,
// in every codec; the per-record Fetch and FetchBatches of many partitions
// read back the same records (null and empty keys and header values kept
// apart), the latter as the very bytes sent, base offsets set.
func TestProduceBatchesFetchBatchesRoundTrip(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "batches", 3, nil)
	rich := []objectlog.Record{
		{Key: nil, Value: []byte("null key"), Timestamp: 1000},
		{Key: []byte{}, Value: []byte("empty key"), Timestamp: 1001},
		{Key: []byte("k"), Value: nil, Timestamp: 1002,
			Headers: []objectlog.Header{{Key: "a", Value: []byte("1")}, {Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}}},
	}
	var sent [][]byte
	for codec := objectlog.CodecNone; codec <= objectlog.CodecZstd; codec++ {
		spec := objectlog.NoProducer
		spec.Codec = codec
		sent = append(sent, clientBatch(t, spec, rich...))
	}
	p0 := bytes.Join(sent, nil) // five batches in one entry
	p2 := clientBatch(t, objectlog.NoProducer, valueRecords(5, "x", "y")...)
	res := produceBatches(t, ta,
		&stratav1.PartitionRecordBatches{Topic: "batches", Partition: 0, RecordBatches: p0},
		&stratav1.PartitionRecordBatches{Topic: "batches", Partition: 2, RecordBatches: p2})
	for _, r := range res {
		if r.GetError() != nil {
			t.Fatalf("partition %d: %v", r.GetPartition(), r.GetError())
		}
	}
	if got := res[0].GetBaseOffsets(); !slices.Equal(got, []int64{0, 3, 6, 9, 12}) {
		t.Fatalf("partition 0 base offsets %v, want [0 3 6 9 12]", got)
	}
	if got := res[1].GetBaseOffsets(); !slices.Equal(got, []int64{0}) || res[1].GetPartition() != 2 {
		t.Fatalf("partition 2 answer %v, want base offsets [0]", res[1])
	}

	// The per-record API reads what the batches hold.
	fr, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "batches", Partition: 0, Offset: 0}))
	if err != nil {
		t.Fatal(err)
	}
	recs := fr.Msg.GetRecords()
	if len(recs) != 15 {
		t.Fatalf("Fetch read %d records, want 15", len(recs))
	}
	for i, r := range recs {
		want := rich[i%3]
		if r.GetOffset() != int64(i) || (r.Key == nil) != (want.Key == nil) || !bytes.Equal(r.GetKey(), want.Key) ||
			(r.Value == nil) != (want.Value == nil) || r.GetTimestamp().AsTime().UnixMilli() != want.Timestamp || len(r.GetHeaders()) != len(want.Headers) {
			t.Fatalf("record %d: %v, want %+v", i, r, want)
		}
		for j, h := range r.GetHeaders() {
			if h.GetKey() != want.Headers[j].Key || (h.Value == nil) != (want.Headers[j].Value == nil) || !bytes.Equal(h.GetValue(), want.Headers[j].Value) {
				t.Fatalf("record %d header %d: %v, want %+v", i, j, h, want.Headers[j])
			}
		}
	}

	// FetchBatches answers the bytes sent, in request order, per partition.
	fb, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{
		Partitions: []*stratav1.FetchBatchesPartition{
			{Topic: "batches", Partition: 2, Offset: 1},
			{Topic: "batches", Partition: 1, Offset: 0},
			{Topic: "batches", Partition: 0, Offset: 0},
		},
		MaxBytes: 1 << 20,
	}))
	if err != nil {
		t.Fatal(err)
	}
	parts := fb.Msg.GetPartitions()
	if len(parts) != 3 || parts[0].GetPartition() != 2 || parts[1].GetPartition() != 1 || parts[2].GetPartition() != 0 {
		t.Fatalf("FetchBatches answered %v, want partitions 2, 1, 0", parts)
	}
	if !bytes.Equal(parts[0].GetRecordBatches(), p2) || parts[0].GetHighWatermark() != 2 || parts[0].GetTopicId() == "" {
		t.Fatalf("partition 2: %x hwm %d topic id %q, want the batch sent (base 0), hwm 2", parts[0].GetRecordBatches(), parts[0].GetHighWatermark(), parts[0].GetTopicId())
	}
	if len(parts[1].GetRecordBatches()) != 0 || parts[1].GetError() != nil || parts[1].GetHighWatermark() != 0 {
		t.Fatalf("empty partition 1: %v", parts[1])
	}
	var want []byte
	for i, b := range sent {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint64(b, uint64(3*i))
		want = append(want, b...)
	}
	if !bytes.Equal(parts[2].GetRecordBatches(), want) {
		t.Fatalf("partition 0: %d bytes, want the %d bytes sent with base offsets 0, 3, ...", len(parts[2].GetRecordBatches()), len(want))
	}
	if got := decodeBatches(t, parts[2].GetRecordBatches()); len(got) != 15 || got[14].Offset != 14 || got[13].Key == nil || len(got[13].Key) != 0 {
		t.Fatalf("decoded %d records, want 15 with offsets 0..14 and an empty (not null) key at 13", len(got))
	}
}

// Each partition is answered on its own: a corrupt, control, empty or
// oversized batch, or an unknown partition, fails its partition (with the
// Kafka error in ErrorInfo) and writes nothing of it, while the request's
// other partitions are written.
func TestProduceBatchesPartitionErrors(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "errs", 1, map[string]string{"max.message.bytes": "2000"})
	ta.createTopic(t, "ok", 1, nil)
	good := clientBatch(t, objectlog.NoProducer, valueRecords(1, "good")...)
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	control := objectlog.NoProducer
	control.Control = true
	txn := objectlog.BatchSpec{ProducerID: 7, ProducerEpoch: 0, BaseSequence: 0, Transactional: true}
	big := clientBatch(t, objectlog.NoProducer, objectlog.Record{Value: bytes.Repeat([]byte("v"), 3000), Timestamp: 1})
	cases := []struct {
		name      string
		topic     string
		partition int32
		raw       []byte
		code      string
		kafka     string
		limit     string
	}{
		{"crc", "errs", 0, append(bytes.Clone(good), badCRC...), "invalid_argument", "CORRUPT_MESSAGE", ""},
		{"truncated", "errs", 0, good[:len(good)-3], "invalid_argument", "CORRUPT_MESSAGE", ""},
		{"magic", "errs", 0, func() []byte { b := bytes.Clone(good); b[16] = 1; return b }(), "invalid_argument", "CORRUPT_MESSAGE", ""},
		{"empty", "errs", 0, nil, "invalid_argument", "INVALID_RECORD", ""},
		{"control", "errs", 0, clientBatch(t, control, valueRecords(1, "c")...), "invalid_argument", "INVALID_RECORD", ""},
		{"transactional", "errs", 0, clientBatch(t, txn, valueRecords(1, "t")...), "invalid_argument", "INVALID_RECORD", ""},
		{"too large", "errs", 0, big, "invalid_argument", "MESSAGE_TOO_LARGE", "max.message.bytes"},
		{"unknown partition", "errs", 5, good, "not_found", "UNKNOWN_TOPIC_OR_PARTITION", ""},
		{"unknown topic", "nope", 0, good, "not_found", "UNKNOWN_TOPIC_OR_PARTITION", ""},
	}
	for _, c := range cases {
		res := produceBatches(t, ta,
			&stratav1.PartitionRecordBatches{Topic: c.topic, Partition: c.partition, RecordBatches: c.raw},
			&stratav1.PartitionRecordBatches{Topic: "ok", Partition: 0, RecordBatches: good})
		e := res[0].GetError()
		if e.GetCode() != c.code || e.GetInfo().GetKafkaErrorName() != c.kafka || e.GetInfo().GetRetriable() || len(res[0].GetBaseOffsets()) != 0 {
			t.Errorf("%s: %v, want %s with %s and no offsets", c.name, res[0], c.code, c.kafka)
		}
		if c.limit != "" && (e.GetLimitExceeded().GetName() != c.limit || e.GetLimitExceeded().GetLimit() != 2000 || e.GetLimitExceeded().GetActual() != int64(len(c.raw))) {
			t.Errorf("%s: limit detail %v, want %s 2000 (actual %d)", c.name, e.GetLimitExceeded(), c.limit, len(c.raw))
		}
		if res[1].GetError() != nil || len(res[1].GetBaseOffsets()) != 1 {
			t.Errorf("%s: the request's good partition: %v, want written", c.name, res[1])
		}
	}
	hw, err := ta.consumer.ListOffsets(t.Context(), connect.NewRequest(&stratav1.ListOffsetsRequest{Partitions: []*stratav1.ListOffsetsPartition{
		{Topic: "errs", Partition: 0, Spec: &stratav1.ListOffsetsPartition_Latest{Latest: true}},
		{Topic: "ok", Partition: 0, Spec: &stratav1.ListOffsetsPartition_Latest{Latest: true}}}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := hw.Msg.GetPartitions(); got[0].GetOffset() != 0 || got[1].GetOffset() != int64(len(cases)) {
		t.Fatalf("high watermarks errs %d, ok %d; want 0 (nothing of a failed partition written) and %d", got[0].GetOffset(), got[1].GetOffset(), len(cases))
	}

	// Malformed requests fail whole.
	for name, req := range map[string]*stratav1.ProduceBatchesRequest{
		"no partitions": {},
		"twice": {Partitions: []*stratav1.PartitionRecordBatches{
			{Topic: "ok", Partition: 0, RecordBatches: good}, {Topic: "ok", Partition: 0, RecordBatches: good}}},
	} {
		_, err := ta.producer.ProduceBatches(t.Context(), connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

// Idempotent batches (producer id in the header, KIP-98): a retried batch
// gets its first offsets, a gap is OUT_OF_RANGE with
// OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch is FAILED_PRECONDITION.
func TestProduceBatchesIdempotent(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "idem", 1, nil)
	pid, epoch := initProducer(t, ta, &stratav1.InitProducerIdRequest{})
	batch := func(epoch int32, seq int32, vs ...string) *stratav1.PartitionRecordBatches {
		spec := objectlog.BatchSpec{ProducerID: pid, ProducerEpoch: int16(epoch), BaseSequence: seq, Codec: objectlog.CodecLZ4}
		return &stratav1.PartitionRecordBatches{Topic: "idem", Partition: 0, RecordBatches: clientBatch(t, spec, valueRecords(1, vs...)...)}
	}
	if r := produceBatches(t, ta, batch(epoch, 0, "a", "b")); r[0].GetError() != nil || !slices.Equal(r[0].GetBaseOffsets(), []int64{0}) {
		t.Fatalf("first batch: %v", r[0])
	}
	if r := produceBatches(t, ta, batch(epoch, 2, "c")); r[0].GetError() != nil || !slices.Equal(r[0].GetBaseOffsets(), []int64{2}) {
		t.Fatalf("second batch: %v", r[0])
	}
	if r := produceBatches(t, ta, batch(epoch, 0, "a", "b")); r[0].GetError() != nil || !slices.Equal(r[0].GetBaseOffsets(), []int64{0}) {
		t.Fatalf("retried first batch: %v, want its first offset 0", r[0])
	}
	r := produceBatches(t, ta, batch(epoch, 9, "gap"))
	if e := r[0].GetError(); e.GetCode() != "out_of_range" || e.GetInfo().GetKafkaErrorName() != "OUT_OF_ORDER_SEQUENCE_NUMBER" {
		t.Fatalf("batch after a gap: %v", r[0])
	}
	_, epoch2 := initProducer(t, ta, &stratav1.InitProducerIdRequest{ProducerId: pid})
	if r := produceBatches(t, ta, batch(epoch2, 0, "new")); r[0].GetError() != nil {
		t.Fatalf("batch of the bumped epoch: %v", r[0])
	}
	if r := produceBatches(t, ta, batch(epoch, 3, "old")); r[0].GetError().GetCode() != "failed_precondition" {
		t.Fatalf("batch of the fenced epoch: %v, want failed_precondition", r[0])
	}
	fr, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "idem", Partition: 0}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range fr.Msg.GetRecords() {
		got = append(got, string(rec.GetValue()))
	}
	if !slices.Equal(got, []string{"a", "b", "c", "new"}) {
		t.Fatalf("partition holds %q, want each batch once", got)
	}
}

// A stream answers its requests in order, each request's batches
// appended in the order sent.
func TestProduceBatchesStreamKeepsOrder(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "stream", 1, nil)
	s := ta.producer.ProduceBatchesStream(t.Context())
	const n = 20
	for i := range n {
		raw := clientBatch(t, objectlog.NoProducer, valueRecords(1, fmt.Sprint(i))...)
		req := &stratav1.ProduceBatchesRequest{Partitions: []*stratav1.PartitionRecordBatches{{Topic: "stream", Partition: 0, RecordBatches: raw}}}
		if i == 7 {
			req = &stratav1.ProduceBatchesRequest{}
		}
		if err := s.Send(&stratav1.ProduceBatchesStreamRequest{RequestId: uint64(100 + i), Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	next := int64(0)
	for i := range n {
		resp, err := s.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetRequestId() != uint64(100+i) {
			t.Fatalf("answer %d is for request %d", i, resp.GetRequestId())
		}
		if i == 7 {
			if resp.GetError().GetCode() != "invalid_argument" {
				t.Fatalf("empty request answered %v, want invalid_argument", resp)
			}
			continue
		}
		if got := resp.GetResponse().GetPartitions()[0].GetBaseOffsets(); !slices.Equal(got, []int64{next}) {
			t.Fatalf("request %d at %v, want [%d]", i, got, next)
		}
		next++
	}
	_ = s.CloseRequest()
	_ = s.CloseResponse()
}

// FetchBatches' own checks and per-partition errors: out of range with the
// bounds, a topic id that is not the topic's, too many partitions.
func TestFetchBatchesErrors(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "f", 2, nil)
	produceBatches(t, ta, &stratav1.PartitionRecordBatches{Topic: "f", Partition: 0, RecordBatches: clientBatch(t, objectlog.NoProducer, valueRecords(1, "a", "b")...)})
	resp, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{Partitions: []*stratav1.FetchBatchesPartition{
		{Topic: "f", Partition: 0, Offset: 9},
		{Topic: "f", Partition: 1, Offset: 0, TopicId: "00000000-0000-0000-0000-000000000001"},
		{Topic: "f", Partition: 7},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Msg.GetPartitions()
	if e := p[0].GetError(); e.GetCode() != "out_of_range" || e.GetOffsetOutOfRange().GetHighWatermark() != 2 ||
		e.GetOffsetOutOfRange().GetRequestedOffset() != 9 || p[0].GetHighWatermark() != 2 || e.GetInfo().GetKafkaErrorName() != "OFFSET_OUT_OF_RANGE" {
		t.Errorf("offset past the high watermark: %v", p[0])
	}
	if e := p[1].GetError(); e.GetCode() != "not_found" || e.GetInfo().GetKafkaErrorName() != "UNKNOWN_TOPIC_ID" {
		t.Errorf("wrong topic id: %v", p[1])
	}
	if e := p[2].GetError(); e.GetCode() != "not_found" || e.GetInfo().GetKafkaErrorName() != "UNKNOWN_TOPIC_OR_PARTITION" {
		t.Errorf("unknown partition: %v", p[2])
	}

	many := make([]*stratav1.FetchBatchesPartition, 1001)
	for i := range many {
		many[i] = &stratav1.FetchBatchesPartition{Topic: "f", Partition: int32(i)}
	}
	_, err = ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{Partitions: many}))
	if ce := new(connect.Error); !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || clientDetail[*stratav1.LimitExceeded](t, ce).GetLimit() != 1000 {
		t.Errorf("1001 partitions: %v, want InvalidArgument with a LimitExceeded of 1000", err)
	}
	for name, req := range map[string]*stratav1.FetchBatchesRequest{
		"none":           {},
		"twice":          {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f"}, {Topic: "f"}}},
		"negative max":   {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f"}}, MaxBytes: -1},
		"negative min":   {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f"}}, MinBytes: -1},
		"negative wait":  {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f"}}, MaxWait: durationpb.New(-time.Second)},
		"bad topic id":   {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f", TopicId: "x"}}},
		"bad isolation":  {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f"}}, IsolationLevel: 9},
		"negative p max": {Partitions: []*stratav1.FetchBatchesPartition{{Topic: "f", MaxBytes: -5}}},
	} {
		if _, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

// A fetch at the high watermarks of several partitions waits until any of
// them gets batches, and answers them; max_bytes per partition and per
// request bound the answer, one whole batch always going out (KIP-74).
func TestFetchBatchesWaitsAndLimits(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "w", 2, nil)
	got := make(chan *stratav1.FetchBatchesResponse, 1)
	go func() {
		resp, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{
			Partitions: []*stratav1.FetchBatchesPartition{{Topic: "w", Partition: 0}, {Topic: "w", Partition: 1}},
			MaxWait:    durationpb.New(25 * time.Second), MinBytes: 1,
		}))
		if err != nil {
			t.Error(err)
		}
		got <- resp.Msg
	}()
	raw := clientBatch(t, objectlog.NoProducer, valueRecords(1, "late")...)
	// The fetch may start after the produce: either way it answers the batch.
	produceBatches(t, ta, &stratav1.PartitionRecordBatches{Topic: "w", Partition: 1, RecordBatches: raw})
	select {
	case resp := <-got:
		if p := resp.GetPartitions(); !bytes.Equal(p[1].GetRecordBatches(), raw) || len(p[0].GetRecordBatches()) != 0 {
			t.Fatalf("long poll answered %v, want partition 1's batch", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long poll did not wake on the produce")
	}

	b1 := clientBatch(t, objectlog.NoProducer, valueRecords(1, "one")...)
	b2 := clientBatch(t, objectlog.NoProducer, valueRecords(1, "two")...)
	produceBatches(t, ta, &stratav1.PartitionRecordBatches{Topic: "w", Partition: 0, RecordBatches: append(bytes.Clone(b1), b2...)})
	resp, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{
		Partitions: []*stratav1.FetchBatchesPartition{{Topic: "w", Partition: 0, MaxBytes: 1}, {Topic: "w", Partition: 1, MaxBytes: 1}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Msg.GetPartitions(); len(decodeBatches(t, p[0].GetRecordBatches())) != 1 || len(p[1].GetRecordBatches()) != 0 {
		t.Fatalf("max_bytes 1: %d and %d bytes, want one whole batch for the first partition only", len(p[0].GetRecordBatches()), len(p[1].GetRecordBatches()))
	}
}

// read_committed: batches stop at the last stable offset, and the aborted
// transactions among them are listed for the client to drop.
func TestFetchBatchesReadCommitted(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "rc", 1, nil)
	c := newTxnClient(t, ta, "rc-txn", 0)
	must(t, c.addPartitions("rc", 0))
	first, err := c.produce("rc", 0, 2, "aborted")
	must(t, err)
	must(t, c.end(false))
	must(t, c.addPartitions("rc", 0))
	open, err := c.produce("rc", 0, 1, "open")
	must(t, err)
	fetch := func() *stratav1.FetchBatchesPartitionResult {
		resp, err := ta.consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{
			Partitions: []*stratav1.FetchBatchesPartition{{Topic: "rc", Partition: 0}}, IsolationLevel: committed}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetPartitions()[0]
	}
	p := fetch()
	if p.GetLastStableOffset() != open || p.GetHighWatermark() != open+1 {
		t.Fatalf("LSO %d, high watermark %d; want %d and %d", p.GetLastStableOffset(), p.GetHighWatermark(), open, open+1)
	}
	for _, r := range decodeBatches(t, p.GetRecordBatches()) {
		if r.Offset >= open {
			t.Fatalf("record at %d answered, past the LSO %d", r.Offset, open)
		}
	}
	if a := p.GetAbortedTransactions(); len(a) != 1 || a[0].GetProducerId() != c.id.GetProducerId() || a[0].GetFirstOffset() != first {
		t.Fatalf("aborted transactions %v, want producer %d from %d", a, c.id.GetProducerId(), first)
	}
	must(t, c.end(true))
	if p := fetch(); p.GetLastStableOffset() != p.GetHighWatermark() || len(decodeBatches(t, p.GetRecordBatches())) != 3 {
		t.Fatalf("after the commit: LSO %d, hwm %d, %d records; want LSO = hwm and the 3 data records", p.GetLastStableOffset(), p.GetHighWatermark(), len(decodeBatches(t, p.GetRecordBatches())))
	}
}
