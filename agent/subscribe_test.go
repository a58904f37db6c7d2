package agent

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// consumerClient serves the agent over HTTP, so streams go through
// Connect's framing as a client's would.
func consumerClient(t *testing.T, a *Agent) stratav1connect.ConsumerServiceClient {
	t.Helper()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return stratav1connect.NewConsumerServiceClient(srv.Client(), srv.URL)
}

// stream is an open Subscribe stream with a bounded life.
type stream struct {
	t *testing.T
	s *connect.ServerStreamForClient[stratav1.SubscribeResponse]
}

// subscribe opens a stream and waits for its response headers: from then
// on the start positions are fixed, so records produced afterwards count
// as live.
func subscribe(t *testing.T, c stratav1connect.ConsumerServiceClient, req *stratav1.SubscribeRequest) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	s, err := c.Subscribe(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.ResponseHeader()
	return &stream{t: t, s: s}
}

// next receives until it has n records, failing on a message over
// maxBytes (0: unchecked) or the stream's end.
func (s *stream) next(n int, maxBytes int64) []*stratav1.ConsumedRecord {
	s.t.Helper()
	var out []*stratav1.ConsumedRecord
	for len(out) < n {
		if !s.s.Receive() {
			s.t.Fatalf("stream ended after %d of %d records: %v", len(out), n, s.s.Err())
		}
		recs := s.s.Msg().Records
		if len(recs) == 0 {
			s.t.Fatal("an empty message")
		}
		var size int64
		for _, r := range recs {
			size += consumedSize(r)
		}
		if maxBytes > 0 && len(recs) > 1 && size > maxBytes {
			s.t.Fatalf("a message of %d records holds %d bytes, over max_bytes %d", len(recs), size, maxBytes)
		}
		out = append(out, recs...)
	}
	if len(out) > n {
		s.t.Fatalf("got %d records, want %d", len(out), n)
	}
	return out
}

// described renders records as "partition:offset:value", sorted, since
// the order across partitions is free; order within each partition is
// checked here.
func described(t *testing.T, recs []*stratav1.ConsumedRecord) string {
	t.Helper()
	last := map[int32]int64{}
	var parts []string
	for _, r := range recs {
		if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
		}
		last[r.Partition] = r.Offset
		parts = append(parts, fmt.Sprintf("%d:%d:%s", r.Partition, r.Offset, r.Value))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func TestSubscribeStartPositions(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	client := consumerClient(t, a)

	// Partition 0: a@1000 b@2000 | c@3000; partition 1: d@1500 | e@2500.
	seed := func(t *testing.T) coordinator.Topic {
		topic := env.createTopic(t, 2)
		write(t, a, topic, 0, objectlog.NoProducer, objectlog.Record{Value: []byte("a"), Timestamp: 1000}, objectlog.Record{Value: []byte("b"), Timestamp: 2000})
		write(t, a, topic, 0, objectlog.NoProducer, values(3000, "c")...)
		write(t, a, topic, 1, objectlog.NoProducer, values(1500, "d")...)
		write(t, a, topic, 1, objectlog.NoProducer, values(2500, "e")...)
		return topic
	}
	for _, tc := range []struct {
		name     string
		start    func(*stratav1.SubscribeRequest)
		existing string // what the stream has of the records before it
	}{
		{"earliest", func(r *stratav1.SubscribeRequest) { r.Start = &stratav1.SubscribeRequest_Earliest{Earliest: true} },
			"0:0:a 0:1:b 0:2:c 1:0:d 1:1:e"},
		{"latest", func(r *stratav1.SubscribeRequest) { r.Start = &stratav1.SubscribeRequest_Latest{Latest: true} }, ""},
		{"default is latest", func(*stratav1.SubscribeRequest) {}, ""},
		{"offset", func(r *stratav1.SubscribeRequest) { r.Start = &stratav1.SubscribeRequest_Offset{Offset: 1} },
			"0:1:b 0:2:c 1:1:e"},
		{"offset clamped to the watermark", func(r *stratav1.SubscribeRequest) { r.Start = &stratav1.SubscribeRequest_Offset{Offset: 99} }, ""},
		{"offset clamped to the log start", func(r *stratav1.SubscribeRequest) { r.Start = &stratav1.SubscribeRequest_Offset{Offset: -5} },
			"0:0:a 0:1:b 0:2:c 1:0:d 1:1:e"},
		{"timestamp", func(r *stratav1.SubscribeRequest) {
			r.Start = &stratav1.SubscribeRequest_Timestamp{Timestamp: timestamppb.New(time.UnixMilli(2000))}
		}, "0:1:b 0:2:c 1:1:e"},
		{"timestamp inside a batch", func(r *stratav1.SubscribeRequest) {
			r.Start = &stratav1.SubscribeRequest_Timestamp{Timestamp: timestamppb.New(time.UnixMilli(1001))}
		}, "0:1:b 0:2:c 1:0:d 1:1:e"},
		{"timestamp after every record", func(r *stratav1.SubscribeRequest) {
			r.Start = &stratav1.SubscribeRequest_Timestamp{Timestamp: timestamppb.New(time.UnixMilli(5000))}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := seed(t)
			req := &stratav1.SubscribeRequest{Topic: topic.Name}
			tc.start(req)
			s := subscribe(t, client, req)
			n := 0
			if tc.existing != "" {
				n = len(strings.Split(tc.existing, " "))
				if got := described(t, s.next(n, 0)); got != tc.existing {
					t.Fatalf("records before the stream: %s, want %s", got, tc.existing)
				}
			}
			// Then live records, from both partitions.
			write(t, a, topic, 1, objectlog.NoProducer, values(9000, "live1")...)
			if got := described(t, s.next(1, 0)); got != "1:2:live1" {
				t.Fatalf("first live record: %s", got)
			}
			write(t, a, topic, 0, objectlog.NoProducer, values(9000, "live0")...)
			if got := described(t, s.next(1, 0)); got != "0:3:live0" {
				t.Fatalf("second live record: %s", got)
			}
		})
	}
}

func TestSubscribeFromAnotherAgentSeesLiveRecords(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	// A long topic TTL, so the stream's only quick wake-up is the hub's.
	reader, _ := env.startAgent(t, func(c *Config) { c.TopicCacheTTL = time.Minute })
	topic := env.createTopic(t, 3)
	s := subscribe(t, consumerClient(t, reader), &stratav1.SubscribeRequest{Topic: topic.Name})
	for i := range 6 {
		p := int32(i % 3)
		write(t, writer, topic, p, objectlog.NoProducer, values(1, fmt.Sprint("v", i))...)
		start := time.Now()
		r := s.next(1, 0)[0]
		if r.Partition != p || string(r.Value) != fmt.Sprint("v", i) {
			t.Fatalf("record %d: %v", i, r)
		}
		// Well under the 1 s re-check: the index's notification woke it.
		if lag := time.Since(start); lag > 300*time.Millisecond {
			t.Fatalf("record %d arrived %s after its commit", i, lag)
		}
	}
}

func TestSubscribeMessagesRespectMaxBytes(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 2)
	hundred := strings.Repeat("x", 100)
	for p := range int32(2) {
		write(t, a, topic, p, objectlog.NoProducer, values(1, hundred, hundred, hundred, hundred, hundred)...)
	}
	const maxBytes = 250
	s := subscribe(t, consumerClient(t, a), &stratav1.SubscribeRequest{Topic: topic.Name, MaxBytes: maxBytes,
		Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}})
	got := s.next(10, maxBytes) // fails on any message over 250 bytes
	perPartition := map[int32]int{}
	for _, r := range got {
		perPartition[r.Partition]++
	}
	if perPartition[0] != 5 || perPartition[1] != 5 {
		t.Fatalf("records per partition %v, want 5 and 5", perPartition)
	}
	described(t, got) // offsets rise within each partition
}

func TestSubscribeFollowsOnlyChosenPartitions(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 3)
	client := consumerClient(t, a)
	s := subscribe(t, client, &stratav1.SubscribeRequest{Topic: topic.Name, Partitions: []int32{2, 1, 2},
		Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}})
	for i, p := range []int32{0, 1, 0, 2} {
		write(t, a, topic, p, objectlog.NoProducer, values(1, fmt.Sprint("v", i))...)
	}
	if got := described(t, s.next(2, 0)); got != "1:0:v1 2:0:v3" {
		t.Fatalf("records %s, want only partitions 1 and 2", got)
	}

	bad, err := client.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: topic.Name, Partitions: []int32{3}}))
	if err == nil {
		for bad.Receive() {
		}
		err = bad.Err()
	}
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "has 3 partitions") {
		t.Fatalf("partition 3 of 3: %v, want NotFound", err)
	}
}

func TestSubscribeToAllPicksUpNewPartitions(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil) // topic metadata re-read every 100 ms
	topic := env.createTopic(t, 1)
	s := subscribe(t, consumerClient(t, a), &stratav1.SubscribeRequest{Topic: topic.Name})
	if _, err := env.index.CreatePartitions(t.Context(), topic.Name, 2); err != nil {
		t.Fatal(err)
	}
	// Written before the stream can have noticed the partition: a new
	// partition is followed from its start, so this is not lost.
	write(t, a, topic, 1, objectlog.NoProducer, values(1, "new")...)
	if got := described(t, s.next(1, 0)); got != "1:0:new" {
		t.Fatalf("record %s, want the new partition's first", got)
	}
}

func TestSubscribeJumpsToLogStartAfterRetention(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	retained := &retainedIndex{Index: env.index}
	env.index = retained
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a", "b", "c", "d")...)
	// The stream starts at 0; before it reads, retention removes 0 and 1.
	retained.start.Store(2)
	s := subscribe(t, consumerClient(t, a), &stratav1.SubscribeRequest{Topic: topic.Name,
		Start: &stratav1.SubscribeRequest_Offset{Offset: 0}})
	if got := described(t, s.next(2, 0)); got != "0:2:c 0:3:d" {
		t.Fatalf("records %s, want those from the new log start", got)
	}
}

func TestSubscribeErrors(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	client := consumerClient(t, a)
	for _, tc := range []struct {
		name string
		req  *stratav1.SubscribeRequest
		code connect.Code
	}{
		{"unknown topic", &stratav1.SubscribeRequest{Topic: "nope"}, connect.CodeNotFound},
		{"empty topic", &stratav1.SubscribeRequest{}, connect.CodeInvalidArgument},
		{"negative max_bytes", &stratav1.SubscribeRequest{Topic: topic.Name, MaxBytes: -1}, connect.CodeInvalidArgument},
		{"bad timestamp", &stratav1.SubscribeRequest{Topic: topic.Name,
			Start: &stratav1.SubscribeRequest_Timestamp{Timestamp: &timestamppb.Timestamp{Nanos: -1}}}, connect.CodeInvalidArgument},
	} {
		s, err := client.Subscribe(t.Context(), connect.NewRequest(tc.req))
		if err == nil {
			for s.Receive() {
			}
			err = s.Err()
		}
		if connect.CodeOf(err) != tc.code {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
}

func TestSubscribeEndsWhenTheClientLeaves(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	done := make(chan error, 1)
	s := &subscription{a: a, req: &stratav1.SubscribeRequest{Topic: topic.Name}, topic: topic, all: true, maxBytes: defaultReadBytes}
	if err := s.add(t.Context(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		done <- s.run(ctx, func(*stratav1.SubscribeResponse) error { return nil })
	}()
	time.Sleep(50 * time.Millisecond) // let it reach its wait
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("run returned nil for a canceled stream")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end with its context")
	}
}

// flakyIndex fails the next failures lookups as an unreachable index does.
type flakyIndex struct {
	Index
	failures atomic.Int64
}

func (f *flakyIndex) Lookup(ctx context.Context, id uuid.UUID, p int32, offset, maxBytes int64) ([]coordinator.IndexEntry, coordinator.PartitionState, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, coordinator.PartitionState{}, fmt.Errorf("lookup: %w: connection refused", coordinator.ErrUnavailable)
	}
	return f.Index.Lookup(ctx, id, p, offset, maxBytes)
}

func TestSubscribeRidesOutTransientIndexFailures(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	flaky := &flakyIndex{Index: env.index}
	env.index = flaky
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	s := subscribe(t, consumerClient(t, a), &stratav1.SubscribeRequest{Topic: topic.Name})
	flaky.failures.Store(3)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a")...)
	start := time.Now()
	if got := described(t, s.next(1, 0)); got != "0:0:a" {
		t.Fatalf("record %s", got)
	}
	// Retried at once with backoff (50+100+200 ms), not left to the 1 s
	// re-check as if the failed reads had consumed the wake-up.
	if lag := time.Since(start); lag > 800*time.Millisecond {
		t.Fatalf("record arrived %s after its commit", lag)
	}
	if n := flaky.failures.Load(); n >= 0 {
		t.Fatalf("%d injected failures left: the stream never met them", n+1)
	}
}
