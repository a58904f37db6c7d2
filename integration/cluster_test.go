package integration

// Several agents on one deployment (MinIO + redis-server): any agent takes
// any produce and serves any read, and losing an agent loses nothing acked.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// producedRecord is a record as the test sent it and where the ack put it.
type producedRecord struct {
	key, value []byte // value nil: a tombstone
	ts         time.Time
	seq        int
	partition  int32
	offset     int64
	ackedAt    time.Time
}

func (r *producedRecord) proto() *stratav1.Record {
	rec := &stratav1.Record{
		Key:       r.key,
		Value:     r.value,
		Timestamp: timestamppb.New(r.ts),
		Headers: []*stratav1.Header{
			{Key: "seq", Value: []byte(strconv.Itoa(r.seq))},
			{Key: "null-header"}, // a header with a null value
			{Key: "seq", Value: []byte("again")},
		},
	}
	return rec
}

// matches reports how a consumed record differs from what was produced.
func (r *producedRecord) mismatch(c *stratav1.ConsumedRecord) string {
	var diffs []string
	if !bytes.Equal(c.GetKey(), r.key) || c.Key == nil {
		diffs = append(diffs, fmt.Sprintf("key %q, want %q", c.GetKey(), r.key))
	}
	if r.value == nil && c.Value != nil {
		diffs = append(diffs, fmt.Sprintf("value %q, want null", c.GetValue()))
	}
	if r.value != nil && (c.Value == nil || !bytes.Equal(c.GetValue(), r.value)) {
		diffs = append(diffs, fmt.Sprintf("value %q (null: %v), want %q", c.GetValue(), c.Value == nil, r.value))
	}
	if !c.GetTimestamp().AsTime().Equal(r.ts) {
		diffs = append(diffs, fmt.Sprintf("timestamp %s, want %s", c.GetTimestamp().AsTime(), r.ts))
	}
	h := c.GetHeaders()
	switch {
	case len(h) != 3:
		diffs = append(diffs, fmt.Sprintf("%d headers, want 3", len(h)))
	case h[0].GetKey() != "seq" || string(h[0].GetValue()) != strconv.Itoa(r.seq):
		diffs = append(diffs, fmt.Sprintf("header 0 %s=%q, want seq=%d", h[0].GetKey(), h[0].GetValue(), r.seq))
	case h[1].GetKey() != "null-header" || h[1].Value != nil:
		diffs = append(diffs, fmt.Sprintf("header 1 %s=%q (null: %v), want null-header=null", h[1].GetKey(), h[1].GetValue(), h[1].Value == nil))
	case h[2].GetKey() != "seq" || string(h[2].GetValue()) != "again":
		diffs = append(diffs, fmt.Sprintf("header 2 %s=%q, want seq=again (repeated keys keep their order)", h[2].GetKey(), h[2].GetValue()))
	}
	return strings.Join(diffs, "; ")
}

func produceRequest(topic string, recs []*producedRecord) *stratav1.ProduceRequest {
	tr := &stratav1.TopicRecords{Topic: topic}
	for _, r := range recs {
		tr.Records = append(tr.Records, r.proto())
	}
	return &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{tr}}
}

// takeResults stores a produce answer's results in recs.
func takeResults(t testing.TB, resp *stratav1.ProduceResponse, recs []*producedRecord, at time.Time) {
	t.Helper()
	if len(resp.GetTopics()) != 1 || len(resp.GetTopics()[0].GetResults()) != len(recs) {
		t.Fatalf("produce answer has %d topics / results for a request of 1 topic with %d records", len(resp.GetTopics()), len(recs))
	}
	for i, res := range resp.GetTopics()[0].GetResults() {
		recs[i].partition, recs[i].offset, recs[i].ackedAt = res.GetPartition(), res.GetOffset(), at
		if !res.GetTimestamp().AsTime().Equal(recs[i].ts) {
			t.Errorf("record seq %d: acked with timestamp %s, sent %s", recs[i].seq, res.GetTimestamp().AsTime(), recs[i].ts)
		}
	}
}

// TestThreeAgents runs three agents on one deployment: a topic created on
// agent 1, records produced through agent 1 (unary calls, then a pipelined
// stream), followed live by a subscription on agent 2 and read back with
// Fetch through agent 3. Each agent speaks another wire protocol to the
// test, and agent 3 takes its whole configuration from the environment.
func TestThreeAgents(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	a1, adminAddr := d.startAgentWithAdmin(t, "agent-1")
	a2 := d.startAgent(t, "agent-2")
	a3 := d.startAgentFromEnv(t, "agent-3")
	c1 := newClients(a1.url(), protoConnect)
	c2 := newClients(a2.url(), protoGRPC)
	c3 := newClients(a3.url(), protoGRPCWeb)
	ctx := t.Context()

	// The admin port serves Prometheus metrics.
	if resp, err := http.Get("http://" + adminAddr + "/metrics"); err != nil {
		t.Errorf("agent-1 admin port: GET /metrics: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("# TYPE")) {
			t.Errorf("agent-1 admin port: GET /metrics: HTTP %d, %d bytes without a metric family", resp.StatusCode, len(body))
		}
	}

	const partitions = 6
	topic := "orders-" + randomHex(3)
	created, err := c1.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: partitions}))
	if err != nil {
		t.Fatalf("CreateTopic on agent-1: %v", err)
	}
	if got := created.Msg.GetTopic(); got.GetName() != topic || got.GetPartitions() != partitions || got.GetId() == "" {
		t.Fatalf("CreateTopic answered %v, want %s with %d partitions and an id", got, topic, partitions)
	}
	// Any agent knows the topic at once: the index is the only state.
	desc, err := c3.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		t.Fatalf("DescribeTopic on agent-3 right after the create on agent-1: %v", err)
	}
	if desc.Msg.GetTopic().GetId() != created.Msg.GetTopic().GetId() {
		t.Fatalf("agent-3 describes topic id %s, agent-1 created %s", desc.Msg.GetTopic().GetId(), created.Msg.GetTopic().GetId())
	}

	// Follow the topic before producing: on agent 2 (gRPC) every
	// partition from the earliest offset, so that no record can slip in
	// before the stream is set up; on agent 3 (Connect over HTTP/1.1, as a
	// browser would) partitions 1 and 4 from offset 0.
	sub2 := subscribe(t, c2, &stratav1.SubscribeRequest{
		Topic: topic, Start: &stratav1.SubscribeRequest_Earliest{Earliest: true},
	})
	sub3 := subscribe(t, newClients(a3.url(), protoConnect), &stratav1.SubscribeRequest{
		Topic: topic, Partitions: []int32{1, 4}, Start: &stratav1.SubscribeRequest_Offset{Offset: 0}, MaxBytes: 2048,
	})

	const total, perRequest = 3000, 100
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	recs := make([]*producedRecord, total)
	for i := range recs {
		r := &producedRecord{
			key:   fmt.Appendf(nil, "customer-%03d", i%113),
			value: fmt.Appendf(nil, "order-%05d", i),
			ts:    base.Add(time.Duration(i) * time.Millisecond),
			seq:   i,
		}
		if i%500 == 499 {
			r.value = nil // a tombstone now and then
		}
		recs[i] = r
	}

	// The first half: unary Produce calls, one after the other.
	produceStart := time.Now()
	for lo := 0; lo < total/2; lo += perRequest {
		batch := recs[lo : lo+perRequest]
		resp, err := c1.producer.Produce(ctx, connect.NewRequest(produceRequest(topic, batch)))
		if err != nil {
			t.Fatalf("Produce records %d..%d to agent-1: %v", lo, lo+perRequest-1, err)
		}
		takeResults(t, resp.Msg, batch, time.Now())
	}
	// The second half: one ProduceStream with every request in flight at
	// once; answers come in request order and keep the produce order. A
	// bidirectional stream needs HTTP/2: Connect over h2c.
	ps := newClients(a1.url(), protoConnectH2C).producer.ProduceStream(ctx)
	var sent []uint64
	for lo := total / 2; lo < total; lo += perRequest {
		id := uint64(1000 + lo)
		if err := ps.Send(&stratav1.ProduceStreamRequest{RequestId: id, Request: produceRequest(topic, recs[lo:lo+perRequest])}); err != nil {
			t.Fatalf("ProduceStream send %d: %v", id, err)
		}
		sent = append(sent, id)
	}
	if err := ps.CloseRequest(); err != nil {
		t.Fatalf("ProduceStream close: %v", err)
	}
	for _, id := range sent {
		resp, err := ps.Receive()
		if err != nil {
			t.Fatalf("ProduceStream: answer to request %d: %v", id, err)
		}
		if resp.GetRequestId() != id {
			t.Fatalf("ProduceStream answered request %d where %d was next: answers out of request order", resp.GetRequestId(), id)
		}
		if e := resp.GetError(); e != nil {
			t.Fatalf("ProduceStream request %d failed: %s: %s", id, e.GetCode(), e.GetMessage())
		}
		lo := int(id - 1000)
		takeResults(t, resp.GetResponse(), recs[lo:lo+perRequest], time.Now())
	}
	if extra, err := ps.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("ProduceStream after the last answer: %v, %v; want io.EOF", extra, err)
	}
	if err := ps.CloseResponse(); err != nil {
		t.Fatalf("ProduceStream close response: %v", err)
	}
	lastAck := time.Now()
	t.Logf("produced %d records in %d requests through agent-1 in %s", total, total/perRequest, lastAck.Sub(produceStart).Round(time.Millisecond))

	// Acks: keyed records land where Kafka's partitioner puts them, and each
	// partition's offsets are 0, 1, 2, ... in produce order.
	byPartition := make([][]*producedRecord, partitions)
	for _, r := range recs {
		if want := kafkaPartition(r.key, partitions); r.partition != want {
			t.Fatalf("record seq %d with key %q acked in partition %d; Kafka's partitioner puts it in %d", r.seq, r.key, r.partition, want)
		}
		byPartition[r.partition] = append(byPartition[r.partition], r)
	}
	for p, rs := range byPartition {
		for i, r := range rs {
			if r.offset != int64(i) {
				t.Fatalf("partition %d: record seq %d is the partition's record #%d in produce order but was acked at offset %d", p, r.seq, i, r.offset)
			}
		}
	}
	at := func(p int32, o int64) *producedRecord { return byPartition[p][o] }

	// The subscriptions saw every record of their partitions, once, in
	// offset order per partition, within seconds of its ack.
	sub2.check(t, "subscription on agent-2", byPartition, 0, 1, 2, 3, 4, 5)
	sub3.check(t, "subscription to partitions 1 and 4 on agent-3", byPartition, 1, 4)

	// Everything reads back through agent 3, a few KiB per fetch.
	for p := range int32(partitions) {
		got := readPartition(t, c3, topic, p, 4096)
		if len(got) != len(byPartition[p]) {
			t.Fatalf("Fetch via agent-3: partition %d has %d records, %d were acked", p, len(got), len(byPartition[p]))
		}
		for o, c := range got {
			if m := at(p, int64(o)).mismatch(c); m != "" {
				t.Fatalf("Fetch via agent-3: %d/%d: %s", p, o, m)
			}
		}
	}
	desc, err = c2.admin.DescribeTopic(ctx, connect.NewRequest(&stratav1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		t.Fatalf("DescribeTopic on agent-2: %v", err)
	}
	for _, pi := range desc.Msg.GetPartitions() {
		n := int64(len(byPartition[pi.GetPartition()]))
		if pi.GetHighWatermark() != n || pi.GetRecords() != n || pi.GetLogStartOffset() != 0 || (n > 0 && pi.GetBytes() <= 0) {
			t.Errorf("DescribeTopic on agent-2: partition %d: %v; want high watermark = records = %d, log start 0, bytes > 0", pi.GetPartition(), pi, n)
		}
	}
	if len(desc.Msg.GetPartitions()) != partitions {
		t.Errorf("DescribeTopic: %d partitions, want %d", len(desc.Msg.GetPartitions()), partitions)
	}

	// One object per flush, whatever the number of partitions in it: the
	// 30 requests (each spanning all 6 partitions) make at most 30 objects.
	keys := d.objectKeys(t)
	t.Logf("bucket %s: %d objects under %s/", d.bucket, len(keys), d.prefix)
	if len(keys) == 0 || len(keys) > total/perRequest {
		t.Errorf("bucket holds %d objects under %s/ after %d produce requests; want 1..%d (one segment per flush, not per partition): %v",
			len(keys), d.prefix, total/perRequest, total/perRequest, keys)
	}

	// A fetch at the high watermark waits: empty after max_wait, or woken
	// by a commit another agent made.
	hwm0 := int64(len(byPartition[0]))
	start := time.Now()
	resp, err := c3.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{
		Topic: topic, Partition: 0, Offset: hwm0, MaxWait: durationpb.New(300 * time.Millisecond),
	}))
	if err != nil {
		t.Fatalf("Fetch at the high watermark: %v", err)
	}
	if waited := time.Since(start); len(resp.Msg.GetRecords()) != 0 || resp.Msg.GetNextOffset() != hwm0 || waited < 250*time.Millisecond {
		t.Errorf("Fetch at the high watermark %d with max_wait 300ms: %d records, next %d, after %s; want none, next %d, after ~300ms",
			hwm0, len(resp.Msg.GetRecords()), resp.Msg.GetNextOffset(), waited, hwm0)
	}
	type fetchResult struct {
		resp *connect.Response[stratav1.FetchResponse]
		err  error
		at   time.Time
	}
	polled := make(chan fetchResult, 1)
	go func() {
		resp, err := c3.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{
			Topic: topic, Partition: 0, Offset: hwm0, MaxWait: durationpb.New(20 * time.Second),
		}))
		polled <- fetchResult{resp, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := c1.producer.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{
		Topic: topic, Records: []*stratav1.Record{{Partition: ptr[int32](0), Value: []byte("wake up")}},
	}}})); err != nil {
		t.Fatalf("Produce to wake the long poll: %v", err)
	}
	acked := time.Now()
	select {
	case r := <-polled:
		if r.err != nil {
			t.Fatalf("long-polling Fetch on agent-3: %v", r.err)
		}
		if recs := r.resp.Msg.GetRecords(); len(recs) != 1 || string(recs[0].GetValue()) != "wake up" || recs[0].GetOffset() != hwm0 {
			t.Errorf("long-polling Fetch on agent-3 answered %v, want the record produced on agent-1 at offset %d", recs, hwm0)
		}
		t.Logf("long poll on agent-3 woke %s after agent-1 acked", r.at.Sub(acked).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatalf("long-polling Fetch on agent-3 did not wake within 10s of a commit through agent-1")
	}

	// SIGTERM: every agent exits 0, ending the open subscriptions.
	a1.stop()
	a3.stop()
	a2.stop()
	sub2.waitEnd(t, "subscription on agent-2")
	sub3.waitEnd(t, "subscription on agent-3")
}

// subscription collects what a Subscribe stream delivers, with arrival
// times.
type subscription struct {
	mu      sync.Mutex
	arrived []arrival
	end     chan error
}

type arrival struct {
	rec *stratav1.ConsumedRecord
	at  time.Time
}

func subscribe(t testing.TB, c clients, req *stratav1.SubscribeRequest) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := c.consumer.Subscribe(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Subscribe %v: %v", req, err)
	}
	s := &subscription{end: make(chan error, 1)}
	go func() {
		for stream.Receive() {
			now := time.Now()
			s.mu.Lock()
			for _, r := range stream.Msg().GetRecords() {
				s.arrived = append(s.arrived, arrival{r, now})
			}
			s.mu.Unlock()
		}
		s.end <- stream.Err()
	}()
	return s
}

func (s *subscription) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrived)
}

// check waits for the records of partitions, then checks the stream
// delivered each exactly once, in offset order per partition, as produced,
// and within seconds of its ack.
func (s *subscription) check(t *testing.T, name string, byPartition [][]*producedRecord, partitions ...int32) {
	t.Helper()
	want := 0
	for _, p := range partitions {
		want += len(byPartition[p])
	}
	if !waitFor(15*time.Second, func() bool { return s.count() >= want }) {
		t.Errorf("%s: %d of %d records within 15s of the last ack", name, s.count(), want)
	}
	time.Sleep(200 * time.Millisecond) // let duplicates, if any, arrive
	s.mu.Lock()
	got := slices.Clone(s.arrived)
	s.mu.Unlock()
	next := map[int32]int64{}
	var lags []time.Duration
	for _, a := range got {
		p, o := a.rec.GetPartition(), a.rec.GetOffset()
		if !slices.Contains(partitions, p) {
			t.Fatalf("%s: a record of %s/%d, want partitions %v only", name, a.rec.GetTopic(), p, partitions)
		}
		if o != next[p] {
			t.Fatalf("%s: partition %d delivered offset %d where %d was next (duplicate, gap or disorder)", name, p, o, next[p])
		}
		next[p]++
		if o >= int64(len(byPartition[p])) {
			t.Fatalf("%s: partition %d offset %d beyond the %d records produced", name, p, o, len(byPartition[p]))
		}
		r := byPartition[p][o]
		if m := r.mismatch(a.rec); m != "" {
			t.Fatalf("%s: %d/%d (seq %d): %s", name, p, o, r.seq, m)
		}
		lags = append(lags, a.at.Sub(r.ackedAt))
	}
	if len(got) != want {
		t.Fatalf("%s: %d records, want %d", name, len(got), want)
	}
	t.Logf("%s: %d records; delay after the ack: %s", name, len(got), quantiles(lags))
	if maxLag := slices.Max(lags); maxLag > 5*time.Second {
		t.Errorf("%s: a record arrived %s after its ack; want live delivery (< 5s)", name, maxLag)
	}
}

// waitEnd expects the stream to end within 5s, once its agent has stopped.
func (s *subscription) waitEnd(t *testing.T, name string) {
	t.Helper()
	select {
	case err := <-s.end:
		t.Logf("%s ended with the agent's shutdown: %v", name, err)
	case <-time.After(5 * time.Second):
		t.Errorf("%s still open 5s after its agent exited", name)
	}
}

// TestKillAgentMidStream kills an agent with SIGKILL while producers write
// through it. They fail over to a second agent, retrying the request that
// failed. Every acked record must then be at exactly its acked offset, and
// the offsets dense; unacked retries may duplicate records.
func TestKillAgentMidStream(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	victim := d.startAgent(t, "agent-a")
	survivor := d.startAgent(t, "agent-b")
	ca := newClients(victim.url(), protoConnect)
	cb := newClients(survivor.url(), protoConnect)
	ctx := t.Context()

	const partitions, producers, perRequest = 4, 4, 5
	topic := "kill-" + randomHex(3)
	if _, err := cb.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: partitions})); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}

	type ack struct {
		partition int32
		offset    int64
		value     string
	}
	var (
		mu             sync.Mutex
		acks           []ack
		killed         atomic.Bool
		ackedAfterKill = make([]atomic.Int64, producers)
		failedOver     atomic.Int64
		stopProducing  = make(chan struct{})
		wg             sync.WaitGroup
	)
	value := func(w, seq int) string { return fmt.Sprintf("w%d-%06d", w, seq) }
	for w := range producers {
		wg.Go(func() {
			target, onVictim := ca, true
			for seq := 0; ; seq += perRequest {
				select {
				case <-stopProducing:
					return
				default:
				}
				req := &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: topic}}}
				for k := range perRequest {
					req.Topics[0].Records = append(req.Topics[0].Records, &stratav1.Record{
						Key:   fmt.Appendf(nil, "w%d-k%d", w, (seq+k)%7),
						Value: []byte(value(w, seq+k)),
					})
				}
				for attempt := 1; ; attempt++ {
					rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
					resp, err := target.producer.Produce(rctx, connect.NewRequest(req))
					cancel()
					if err == nil {
						res := resp.Msg.GetTopics()[0].GetResults()
						mu.Lock()
						for k, r := range res {
							acks = append(acks, ack{r.GetPartition(), r.GetOffset(), value(w, seq+k)})
						}
						mu.Unlock()
						if killed.Load() {
							ackedAfterKill[w].Add(int64(len(res)))
						}
						break
					}
					if onVictim {
						if !killed.Load() {
							t.Errorf("producer %d: agent-a failed before it was killed: %v", w, err)
						}
						// Retry the same request on the survivor.
						target, onVictim = cb, false
						failedOver.Add(1)
						continue
					}
					if attempt >= 20 {
						t.Errorf("producer %d: agent-b still failing after %d attempts: %v", w, attempt, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	defer func() {
		select {
		case <-stopProducing:
		default:
			close(stopProducing)
		}
		wg.Wait()
	}()

	if !waitFor(30*time.Second, func() bool { return ackCount() >= 300 }) {
		t.Fatalf("only %d records acked by agent-a in 30s", ackCount())
	}
	beforeKill := ackCount()
	killed.Store(true)
	victim.kill()
	t.Logf("killed agent-a (SIGKILL) after %d acked records", beforeKill)
	allMoved := func() bool {
		for w := range producers {
			if ackedAfterKill[w].Load() < 50 {
				return false
			}
		}
		return true
	}
	if !waitFor(30*time.Second, allMoved) {
		t.Errorf("producers did not all get 50 records acked by agent-b within 30s of the kill")
	}
	close(stopProducing)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d records acked in all, %d after the kill; %d requests failed over to agent-b", len(acks), len(acks)-beforeKill, failedOver.Load())
	if failedOver.Load() != producers {
		t.Errorf("%d producers failed over, want each of the %d exactly once", failedOver.Load(), producers)
	}

	// Read everything back through the survivor and through a fresh agent
	// started after the kill: they must agree, and hold every ack.
	fresh := d.startAgent(t, "agent-c")
	cc := newClients(fresh.url(), protoConnect)
	logs := make([][]*stratav1.ConsumedRecord, partitions)
	for p := range int32(partitions) {
		logs[p] = readPartition(t, cb, topic, p, 0)
		again := readPartition(t, cc, topic, p, 64<<10)
		if len(again) != len(logs[p]) {
			t.Fatalf("partition %d: agent-b reads %d records, agent-c %d", p, len(logs[p]), len(again))
		}
		for o := range again {
			if !bytes.Equal(again[o].GetValue(), logs[p][o].GetValue()) {
				t.Fatalf("%d/%d: agent-b reads %q, agent-c %q", p, o, logs[p][o].GetValue(), again[o].GetValue())
			}
		}
	}
	for _, a := range acks {
		l := logs[a.partition]
		if a.offset >= int64(len(l)) {
			t.Errorf("acked %q at %d/%d, but the partition ends at %d: an acked record is lost", a.value, a.partition, a.offset, len(l))
			continue
		}
		if got := string(l[a.offset].GetValue()); got != a.value {
			t.Errorf("acked %q at %d/%d, the log has %q there", a.value, a.partition, a.offset, got)
		}
	}

	// Values seen more than once come from requests that failed on agent-a
	// (so were never acked there) but had been committed, then were retried.
	seen := map[string]int{}
	var stored int
	for p, l := range logs {
		lastSeq := map[int]int{} // per producer: the last first-seen sequence
		for o, r := range l {
			v := string(r.GetValue())
			var w, seq int
			if _, err := fmt.Sscanf(v, "w%d-%d", &w, &seq); err != nil || w < 0 || w >= producers {
				t.Fatalf("%d/%d holds %q, which no producer wrote", p, o, v)
			}
			seen[v]++
			stored++
			if seen[v] > 1 {
				continue
			}
			// The first copies of one producer's records keep its order.
			if last, ok := lastSeq[w]; ok && seq <= last {
				t.Errorf("partition %d: producer %d's record %d at offset %d after its record %d", p, w, seq, o, last)
			}
			lastSeq[w] = seq
		}
	}
	duplicates := 0
	for _, n := range seen {
		duplicates += n - 1
	}
	t.Logf("log: %d records, %d distinct values, %d acked; duplicates (extra copies from retried unacked requests): %d",
		stored, len(seen), len(acks), duplicates)
	if duplicates > producers*perRequest {
		t.Errorf("%d duplicates; at most %d can come from the %d requests in flight at the kill", duplicates, producers*perRequest, producers)
	}

	survivor.stop()
	fresh.stop()
}

// TestGracefulStop sends SIGTERM to an agent while produces wait for its
// flush, which its 20 s flush interval would otherwise hold back: they are
// answered at once, the agent exits 0, and the records are durable.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	slow := d.startAgent(t, "agent-slow", "--flush-interval", "20s")
	other := d.startAgent(t, "agent-other")
	cs := newClients(slow.url(), protoConnect)
	co := newClients(other.url(), protoConnect)
	ctx := t.Context()
	topic := "graceful-" + randomHex(3)
	if _, err := co.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: topic, Partitions: 2})); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	type result struct {
		value string
		resp  *connect.Response[stratav1.ProduceResponse]
		err   error
	}
	const waiting = 3
	results := make(chan result, waiting)
	wrote := make(chan struct{}, waiting)
	// Know when each request is on the wire: a SIGTERM before that could
	// meet an idle connection, which the agent may rightly close.
	traced := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote <- struct{}{}
			}
		},
	})
	for i := range waiting {
		go func() {
			v := fmt.Sprintf("pending-%d", i)
			resp, err := cs.producer.Produce(traced, connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{
				Topic: topic, Records: []*stratav1.Record{{Value: []byte(v), Partition: ptr(int32(i % 2))}},
			}}}))
			results <- result{v, resp, err}
		}()
	}
	for range waiting {
		select {
		case <-wrote:
		case <-time.After(10 * time.Second):
			t.Fatalf("produce requests not sent within 10s")
		}
	}
	time.Sleep(500 * time.Millisecond) // for the agent to read them
	select {
	case r := <-results:
		t.Fatalf("a produce was answered before any flush was due: %v %v", r.resp, r.err)
	default:
	}
	start := time.Now()
	slow.stop()
	took := time.Since(start)
	t.Logf("agent-slow stopped %s after SIGTERM", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("agent-slow took %s to stop: it waited for its flush interval instead of flushing at once", took)
	}
	for range waiting {
		var r result
		select {
		case r = <-results:
		case <-time.After(5 * time.Second):
			t.Fatalf("a produce waiting on agent-slow had no answer 5s after the agent exited")
		}
		if r.err != nil {
			t.Errorf("produce of %q waiting at the SIGTERM: %v; want its ack (the agent flushes before exiting)", r.value, r.err)
			continue
		}
		res := r.resp.Msg.GetTopics()[0].GetResults()[0]
		got := readPartition(t, co, topic, res.GetPartition(), 0)
		if res.GetOffset() >= int64(len(got)) || string(got[res.GetOffset()].GetValue()) != r.value {
			t.Errorf("%q acked at %d/%d, but agent-other does not read it there", r.value, res.GetPartition(), res.GetOffset())
		}
	}
	if _, err := cs.admin.ListTopics(ctx, connect.NewRequest(&stratav1.ListTopicsRequest{})); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("ListTopics on the stopped agent: %v, want unavailable (nothing listening)", err)
	}
	other.stop()
}
