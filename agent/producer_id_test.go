package agent_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/agent"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func initProducer(t *testing.T, ta *testAgent, req *stratav1.InitProducerIdRequest) (int64, int32) {
	t.Helper()
	resp, err := ta.producer.InitProducerId(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("InitProducerId(%v): %v", req, err)
	}
	return resp.Msg.GetProducerId(), resp.Msg.GetProducerEpoch()
}

// idemRequest is one batch of n records for partition p with the given
// producer fields; values are "<tag>-<i>".
func idemRequest(topic string, p int32, pid int64, epoch, seq int32, n int, tag string) *stratav1.ProduceRequest {
	recs := make([]*stratav1.Record, n)
	for i := range recs {
		recs[i] = &stratav1.Record{Partition: &p, Value: fmt.Appendf(nil, "%s-%d", tag, i)}
	}
	return &stratav1.ProduceRequest{
		ProducerId:    pid,
		ProducerEpoch: epoch,
		Topics:        []*stratav1.TopicRecords{{Topic: topic, Records: recs, BaseSequences: map[int32]int32{p: seq}}},
	}
}

func firstOffset(resp *stratav1.ProduceResponse) int64 {
	return resp.GetTopics()[0].GetResults()[0].GetOffset()
}

func (ta *testAgent) highWatermark(t *testing.T, topic string, p int32) int64 {
	t.Helper()
	tp, err := ta.index.DescribeTopic(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ta.index.PartitionState(t.Context(), tp.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	return st.HighWatermark
}

func wantConnectCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error %v: code %v, want %v", err, connect.CodeOf(err), code)
	}
}

// TestIdempotentRetriesGetFirstOffsets: five batches in flight on one
// stream, then all five sent again on another (a client whose connection
// broke before the answers came): the second copies are answered with the
// first copies' offsets and the log holds each batch once.
func TestIdempotentRetriesGetFirstOffsets(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "idem", 2, nil)
	pid, epoch := initProducer(t, ta, &stratav1.InitProducerIdRequest{})
	if pid < 1 || epoch != 0 {
		t.Fatalf("InitProducerId = %d, %d", pid, epoch)
	}
	send := func() []int64 {
		stream := ta.producer.ProduceStream(t.Context())
		for i := range 5 {
			req := idemRequest("idem", 1, pid, epoch, int32(3*i), 3, fmt.Sprint(i))
			if err := stream.Send(&stratav1.ProduceStreamRequest{RequestId: uint64(i), Request: req}); err != nil {
				t.Fatal(err)
			}
		}
		_ = stream.CloseRequest()
		var offsets []int64
		for range 5 {
			resp, err := stream.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if e := resp.GetError(); e != nil {
				t.Fatalf("request %d: %s: %s", resp.GetRequestId(), e.GetCode(), e.GetMessage())
			}
			offsets = append(offsets, firstOffset(resp.GetResponse()))
		}
		_ = stream.CloseResponse()
		return offsets
	}
	first := send()
	if fmt.Sprint(first) != "[0 3 6 9 12]" {
		t.Fatalf("first offsets %v", first)
	}
	if again := send(); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("retried batches got %v, first time %v", again, first)
	}
	if hwm := ta.highWatermark(t, "idem", 1); hwm != 15 {
		t.Fatalf("high watermark %d after 15 records sent twice, want 15", hwm)
	}
	// The next batch goes on after them.
	resp, err := ta.producer.Produce(t.Context(), connect.NewRequest(idemRequest("idem", 1, pid, epoch, 15, 1, "next")))
	if err != nil || firstOffset(resp.Msg) != 15 {
		t.Fatalf("next batch: %v %v", resp, err)
	}
}

// TestIdempotentDuplicateInOpenSegment: a copy sent while the first is
// still in the agent's open segment gets the first copy's offsets, and the
// log holds the records once.
func TestIdempotentDuplicateInOpenSegment(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.FlushInterval = 300 * time.Millisecond })
	ta.createTopic(t, "dup", 1, nil)
	pid, epoch := initProducer(t, ta, &stratav1.InitProducerIdRequest{})
	req := idemRequest("dup", 0, pid, epoch, 0, 4, "a")
	var wg sync.WaitGroup
	offsets := make([]int64, 3)
	errs := make([]error, 3)
	for i := range offsets {
		wg.Go(func() {
			resp, err := ta.producer.Produce(t.Context(), connect.NewRequest(req))
			errs[i] = err
			if err == nil {
				offsets[i] = firstOffset(resp.Msg)
			}
		})
	}
	wg.Wait()
	for i := range offsets {
		if errs[i] != nil || offsets[i] != 0 {
			t.Fatalf("copy %d: offset %d, err %v; want 0", i, offsets[i], errs[i])
		}
	}
	if hwm := ta.highWatermark(t, "dup", 0); hwm != 4 {
		t.Fatalf("high watermark %d after three copies of 4 records, want 4", hwm)
	}
	t.Logf("%d segment(s) for three copies", ta.segments(t))
}

// TestIdempotentErrors: a gap is OUT_OF_RANGE; an older epoch, after the
// newer one wrote, is FAILED_PRECONDITION; a transactional id's new
// epoch fences the old one.
func TestIdempotentErrors(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "errs", 1, nil)
	ctx := t.Context()
	produceReq := func(req *stratav1.ProduceRequest) error {
		_, err := ta.producer.Produce(ctx, connect.NewRequest(req))
		return err
	}
	pid, e0 := initProducer(t, ta, &stratav1.InitProducerIdRequest{})
	if err := produceReq(idemRequest("errs", 0, pid, e0, 0, 2, "a")); err != nil {
		t.Fatal(err)
	}
	err := produceReq(idemRequest("errs", 0, pid, e0, 5, 1, "gap"))
	wantConnectCode(t, err, connect.CodeOutOfRange)
	if hwm := ta.highWatermark(t, "errs", 0); hwm != 2 {
		t.Fatalf("the gap moved the high watermark to %d", hwm)
	}

	// A bump (KIP-360) keeps the id; the new epoch starts at sequence 0.
	pid2, e1 := initProducer(t, ta, &stratav1.InitProducerIdRequest{ProducerId: pid})
	if pid2 != pid || e1 != e0+1 {
		t.Fatalf("bump: %d/%d, want %d/%d", pid2, e1, pid, e0+1)
	}
	wantConnectCode(t, produceReq(idemRequest("errs", 0, pid, e1, 2, 1, "b")), connect.CodeOutOfRange)
	if err := produceReq(idemRequest("errs", 0, pid, e1, 0, 1, "b")); err != nil {
		t.Fatal(err)
	}
	err = produceReq(idemRequest("errs", 0, pid, e0, 2, 1, "zombie"))
	wantConnectCode(t, err, connect.CodeFailedPrecondition)

	// Transactional ids: every init fences the ones before.
	tid := &stratav1.InitProducerIdRequest{TransactionalId: "app-1", TransactionTimeout: durationpb.New(30 * time.Second)}
	tpid, te0 := initProducer(t, ta, tid)
	if err := produceReq(idemRequest("errs", 0, tpid, te0, 0, 1, "t0")); err != nil {
		t.Fatal(err)
	}
	tpid2, te1 := initProducer(t, ta, tid)
	if tpid2 != tpid || te1 != te0+1 {
		t.Fatalf("second init of app-1: %d/%d, want %d/%d", tpid2, te1, tpid, te0+1)
	}
	if err := produceReq(idemRequest("errs", 0, tpid, te1, 0, 1, "t1")); err != nil {
		t.Fatal(err)
	}
	wantConnectCode(t, produceReq(idemRequest("errs", 0, tpid, te0, 1, 1, "t0-zombie")), connect.CodeFailedPrecondition)

	// An unknown (expired) producer id gets a new one.
	fresh, fe := initProducer(t, ta, &stratav1.InitProducerIdRequest{ProducerId: 1 << 40})
	if fresh == 1<<40 || fe != 0 {
		t.Fatalf("bump of an unknown id: %d/%d", fresh, fe)
	}
}

// TestIdempotentProducerStateExpiry: when a partition forgot a producer
// (its state key expired), the producer's next batch is taken at whatever
// sequence it has (KIP-360), and the sequence checks go on from there.
func TestIdempotentProducerStateExpiry(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "exp", 1, nil)
	ctx := t.Context()
	pid, e := initProducer(t, ta, &stratav1.InitProducerIdRequest{})
	if _, err := ta.producer.Produce(ctx, connect.NewRequest(idemRequest("exp", 0, pid, e, 0, 2, "a"))); err != nil {
		t.Fatal(err)
	}
	keys, err := ta.index.Client().Keys(ctx, fmt.Sprintf("*:prod:%d", pid)).Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("producer state keys %v (%v)", keys, err)
	}
	ttl, err := ta.index.Client().PTTL(ctx, keys[0]).Result()
	if err != nil || ttl <= 0 || ttl > 7*24*time.Hour {
		t.Fatalf("producer state TTL %v (%v), want at most 7 days", ttl, err)
	}
	if err := ta.index.Client().Del(ctx, keys[0]).Err(); err != nil {
		t.Fatal(err)
	}
	resp, err := ta.producer.Produce(ctx, connect.NewRequest(idemRequest("exp", 0, pid, e, 7, 1, "b")))
	if err != nil || firstOffset(resp.Msg) != 2 {
		t.Fatalf("after expiry: %v %v", resp, err)
	}
	wantConnectCode(t, func() error {
		_, err := ta.producer.Produce(ctx, connect.NewRequest(idemRequest("exp", 0, pid, e, 9, 1, "gap")))
		return err
	}(), connect.CodeOutOfRange)
}

func TestIdempotentRequestValidation(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "val", 2, nil)
	pid, e := initProducer(t, ta, &stratav1.InitProducerIdRequest{})
	p0 := int32(0)
	good := func() *stratav1.ProduceRequest { return idemRequest("val", 0, pid, e, 0, 1, "x") }
	cases := map[string]func(r *stratav1.ProduceRequest){
		"no partition":           func(r *stratav1.ProduceRequest) { r.Topics[0].Records[0].Partition = nil },
		"no base sequence":       func(r *stratav1.ProduceRequest) { r.Topics[0].BaseSequences = map[int32]int32{1: 0} },
		"extra base sequence":    func(r *stratav1.ProduceRequest) { r.Topics[0].BaseSequences[1] = 0 },
		"negative sequence":      func(r *stratav1.ProduceRequest) { r.Topics[0].BaseSequences[0] = -1 },
		"topic twice":            func(r *stratav1.ProduceRequest) { r.Topics = append(r.Topics, r.Topics[0]) },
		"epoch out of range":     func(r *stratav1.ProduceRequest) { r.ProducerEpoch = 40000 },
		"negative producer":      func(r *stratav1.ProduceRequest) { r.ProducerId = -1 },
		"sequences, no producer": func(r *stratav1.ProduceRequest) { r.ProducerId, r.ProducerEpoch = 0, 0 },
		"epoch without a producer": func(r *stratav1.ProduceRequest) {
			r.ProducerId, r.ProducerEpoch = 0, 3
			r.Topics[0].BaseSequences = nil
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := good()
			req.Topics[0].Records = append(req.Topics[0].Records[:0:0], &stratav1.Record{Partition: &p0, Value: []byte("x")})
			mutate(req)
			_, err := ta.producer.Produce(t.Context(), connect.NewRequest(req))
			wantConnectCode(t, err, connect.CodeInvalidArgument)
		})
	}
	_, err := ta.producer.InitProducerId(t.Context(), connect.NewRequest(&stratav1.InitProducerIdRequest{TransactionalId: "x", TransactionTimeout: durationpb.New(time.Hour)}))
	wantConnectCode(t, err, connect.CodeInvalidArgument)
	_, err = ta.producer.InitProducerId(t.Context(), connect.NewRequest(&stratav1.InitProducerIdRequest{TransactionalId: "a{b}"}))
	wantConnectCode(t, err, connect.CodeInvalidArgument)
}
