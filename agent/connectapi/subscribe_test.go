package connectapi_test

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
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// consumerClient serves the agent over HTTP, so streams go through
// Connect's framing as a client's would.
func consumerClient(t *testing.T, a *agent.Agent) stratav1connect.ConsumerServiceClient {
	t.Helper()
	srv := httptest.NewServer(connectapi.Handler(a))
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
		msg := s.s.Msg()
		recs := msg.Records
		if msg.KeepAlive && len(recs) == 0 {
			continue
		}
		if len(recs) == 0 || msg.KeepAlive {
			s.t.Fatalf("a message with %d records, keep_alive %v", len(recs), msg.KeepAlive)
		}
		// The whole message counts, as a client's receive limit does.
		if size := int64(proto.Size(msg)); maxBytes > 0 && len(recs) > 1 && size > maxBytes {
			s.t.Fatalf("a message of %d records takes %d bytes, over max_bytes %d", len(recs), size, maxBytes)
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
	reader, _ := env.startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = time.Minute })
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

// flakyIndex fails the next failures lookups as an unreachable index does.
type flakyIndex struct {
	agent.Index
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

// streamEnd receives until the stream ends and returns its error; records
// received meanwhile are returned too.
func (s *stream) end() ([]*stratav1.ConsumedRecord, error) {
	s.t.Helper()
	var recs []*stratav1.ConsumedRecord
	for s.s.Receive() {
		recs = append(recs, s.s.Msg().Records...)
	}
	return recs, s.s.Err()
}

// KIP-516: a stream follows one topic id; a topic of the same name created
// after a deletion is another topic, which the stream must not slide into.
func TestSubscribeEndsWhenItsTopicIsDeleted(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	client := consumerClient(t, a)
	for _, tc := range []struct {
		name       string
		partitions []int32
		recreate   bool
	}{
		{"all partitions recreated", nil, true},
		{"chosen partitions recreated", []int32{0, 1}, true},
		{"all partitions deleted", nil, false},
		{"chosen partitions deleted", []int32{1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topic := env.createTopic(t, 2)
			write(t, a, topic, 1, objectlog.NoProducer, values(1, "old")...)
			s := subscribe(t, client, &stratav1.SubscribeRequest{Topic: topic.Name, Partitions: tc.partitions,
				Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}})
			if got := described(t, s.next(1, 0)); got != "1:0:old" || s.s.Msg().TopicId != topic.ID.String() {
				t.Fatalf("before the deletion: %s topic_id %q, want 1:0:old and %s", got, s.s.Msg().TopicId, topic.ID)
			}
			if err := env.index.DeleteTopic(t.Context(), topic.Name); err != nil {
				t.Fatal(err)
			}
			if tc.recreate {
				fresh, err := env.index.CreateTopic(t.Context(), topic.Name, coordinator.TopicConfig{Partitions: 2})
				if err != nil {
					t.Fatal(err)
				}
				for p := range int32(2) {
					write(t, a, fresh, p, objectlog.NoProducer, values(2, "new0", "new1")...)
				}
			}
			recs, err := s.end()
			if len(recs) != 0 {
				t.Fatalf("the stream went on with %s", described(t, recs))
			}
			if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), fmt.Sprintf("topic %q was deleted", topic.Name)) ||
				strings.Contains(err.Error(), topic.ID.String()) {
				t.Fatalf("stream end: %v, want NotFound saying, by name, that the topic was deleted", err)
			}
		})
	}
}

func TestSubscribeWithATopicID(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = time.Minute })
	client := consumerClient(t, a)
	old := env.createTopic(t, 1)
	write(t, a, old, 0, objectlog.NoProducer, values(1, "a", "b", "c")...)

	// Resuming with the id the stream gave works.
	s := subscribe(t, client, &stratav1.SubscribeRequest{Topic: old.Name, TopicId: old.ID.String(),
		Start: &stratav1.SubscribeRequest_Offset{Offset: 2}})
	if got := described(t, s.next(1, 0)); got != "0:2:c" {
		t.Fatalf("resumed at 2: %s", got)
	}
	_ = s.s.Close()

	if err := env.index.DeleteTopic(t.Context(), old.Name); err != nil {
		t.Fatal(err)
	}
	fresh, err := env.index.CreateTopic(t.Context(), old.Name, coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	write(t, a, fresh, 0, objectlog.NoProducer, values(2, "n0", "n1", "n2", "n3")...)
	for _, partitions := range [][]int32{nil, {0}} {
		bad, err := client.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: old.Name, TopicId: old.ID.String(),
			Partitions: partitions, Start: &stratav1.SubscribeRequest_Offset{Offset: 2}}))
		var recs []*stratav1.ConsumedRecord
		if err == nil {
			for bad.Receive() {
				recs = append(recs, bad.Msg().Records...)
			}
			err = bad.Err()
		}
		// The old id is not the topic's: deleted, as far as the agent can tell.
		if len(recs) != 0 || connect.CodeOf(err) != connect.CodeNotFound ||
			!strings.Contains(err.Error(), "exists again as a new topic") && !strings.Contains(err.Error(), "the topic was deleted (and maybe created again)") {
			t.Fatalf("partitions %v: resuming the old topic's position: %d records, %v; want NotFound", partitions, len(recs), err)
		}
	}
	bad, err := client.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: old.Name, TopicId: "not-a-uuid"}))
	if err == nil {
		for bad.Receive() {
		}
		err = bad.Err()
	}
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("a malformed topic_id: %v, want InvalidArgument", err)
	}
}

func TestSubscribeStartsEachPartitionWhereAsked(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	client := consumerClient(t, a)
	topic := env.createTopic(t, 3)
	for p := range int32(3) {
		write(t, a, topic, p, objectlog.NoProducer, values(1, "a", "b", "c", "d")...)
	}
	// Partition 0 resumes at 3, partition 2 at 1 (and 99 would be clamped
	// to the watermark); partition 1, not named, takes start: earliest.
	s := subscribe(t, client, &stratav1.SubscribeRequest{Topic: topic.Name,
		Start:            &stratav1.SubscribeRequest_Earliest{Earliest: true},
		PartitionOffsets: map[int32]int64{0: 3, 2: 1}})
	want := "0:3:d 1:0:a 1:1:b 1:2:c 1:3:d 2:1:b 2:2:c 2:3:d"
	if got := described(t, s.next(8, 0)); got != want {
		t.Fatalf("records %s, want %s", got, want)
	}
	s = subscribe(t, client, &stratav1.SubscribeRequest{Topic: topic.Name, Partitions: []int32{1, 2},
		PartitionOffsets: map[int32]int64{1: 2, 2: 99}})
	write(t, a, topic, 2, objectlog.NoProducer, values(1, "live")...)
	if got := described(t, s.next(3, 0)); got != "1:2:c 1:3:d 2:4:live" {
		t.Fatalf("records %s, want 1 from 2 and 2 from its watermark (latest by default)", got)
	}

	for _, tc := range []struct {
		name string
		req  *stratav1.SubscribeRequest
		code connect.Code
	}{
		{"a partition not followed", &stratav1.SubscribeRequest{Topic: topic.Name, Partitions: []int32{0},
			PartitionOffsets: map[int32]int64{1: 0}}, connect.CodeInvalidArgument},
		{"a partition the topic lacks", &stratav1.SubscribeRequest{Topic: topic.Name,
			PartitionOffsets: map[int32]int64{3: 0}}, connect.CodeNotFound},
	} {
		bad, err := client.Subscribe(t.Context(), connect.NewRequest(tc.req))
		if err == nil {
			for bad.Receive() {
			}
			err = bad.Err()
		}
		if connect.CodeOf(err) != tc.code {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.code)
		}
	}
}

func TestSubscribeKeepAlives(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	// The agent's default interval is 1 s here.
	a, _ := env.startAgent(t, func(c *agent.Config) { c.SubscribeKeepAlive = time.Second })
	client := consumerClient(t, a)
	topic := env.createTopic(t, 1)

	// receive returns the next message, failing if none comes within d.
	receive := func(t *testing.T, s *stream, d time.Duration) (*stratav1.SubscribeResponse, time.Duration) {
		t.Helper()
		start := time.Now()
		got := make(chan bool, 1)
		go func() { got <- s.s.Receive() }()
		select {
		case ok := <-got:
			if !ok {
				t.Fatalf("stream ended: %v", s.s.Err())
			}
			return s.s.Msg(), time.Since(start)
		case <-time.After(d):
			t.Fatalf("no message in %s", d)
			return nil, 0
		}
	}

	for _, tc := range []struct {
		name     string
		interval *durationpb.Duration
	}{
		{"agent default", nil},
		{"asked for", durationpb.New(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := subscribe(t, client, &stratav1.SubscribeRequest{Topic: topic.Name, KeepAliveInterval: tc.interval})
			for range 2 {
				msg, _ := receive(t, s, 10*time.Second)
				if !msg.KeepAlive || len(msg.Records) != 0 || msg.TopicId != topic.ID.String() {
					t.Fatalf("message on an idle stream: %v, want a keep-alive with the topic id", msg)
				}
			}
			// Records still flow after keep-alives.
			write(t, a, topic, 0, objectlog.NoProducer, values(1, "x")...)
			for {
				msg, _ := receive(t, s, 10*time.Second)
				if msg.KeepAlive {
					continue
				}
				if len(msg.Records) != 1 || string(msg.Records[0].Value) != "x" {
					t.Fatalf("after keep-alives: %v", msg)
				}
				break
			}
		})
	}

	t.Run("off", func(t *testing.T) {
		s := subscribe(t, client, &stratav1.SubscribeRequest{Topic: topic.Name, KeepAliveInterval: durationpb.New(0)})
		// Nothing is sent on the idle stream for 2.5 keep-alive intervals;
		// then the first message is the record written.
		got := make(chan bool, 1)
		go func() { got <- s.s.Receive() }()
		select {
		case <-got:
			t.Fatalf("a message on an idle stream with keep-alives off: %v %v", s.s.Msg(), s.s.Err())
		case <-time.After(2500 * time.Millisecond):
		}
		write(t, a, topic, 0, objectlog.NoProducer, values(1, "late")...)
		select {
		case ok := <-got:
			if msg := s.s.Msg(); !ok || msg.KeepAlive || len(msg.Records) != 1 || string(msg.Records[0].Value) != "late" {
				t.Fatalf("first message with keep-alives off: %v %v, want the record", msg, s.s.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the record did not arrive")
		}
	})

	for _, d := range []time.Duration{-time.Second, 10 * time.Millisecond} {
		bad, err := client.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: topic.Name, KeepAliveInterval: durationpb.New(d)}))
		if err == nil {
			for bad.Receive() {
			}
			err = bad.Err()
		}
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "at least 1s") {
			t.Fatalf("keep_alive_interval %s: %v, want InvalidArgument naming the 1 s floor", d, err)
		}
	}
}

// A Subscribe message is bounded as a Fetch is: by its encoded size, and by
// the agent's cap whatever the client asks.
func TestSubscribeMessagesBoundedByEncodedSize(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *agent.Config) { c.MaxFetchBytes = 32 << 10 })
	topic := env.createTopic(t, 2)
	tiny := make([]objectlog.Record, 5000)
	for i := range tiny {
		tiny[i] = objectlog.Record{Value: []byte{}, Timestamp: 1}
	}
	for p := range int32(2) {
		write(t, a, topic, p, objectlog.NoProducer, tiny...)
	}
	for _, tc := range []struct {
		maxBytes int32
		bound    int64
	}{{8 << 10, 8 << 10}, {1 << 30, 32 << 10}, {0, 32 << 10}} {
		s := subscribe(t, consumerClient(t, a), &stratav1.SubscribeRequest{Topic: topic.Name, MaxBytes: tc.maxBytes,
			Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}})
		described(t, s.next(10000, tc.bound)) // fails on a message over the bound
		_ = s.s.Close()
	}
}
