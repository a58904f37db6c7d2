package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// testAgent is an agent on an in-memory store and embedded index, served
// over a real HTTP test server so requests go through Connect's codecs.
type testAgent struct {
	agent    *agent.Agent
	bucket   *objectlog.FaultyBucket
	store    *objectlog.MemBucket
	index    *coordinator.Redis
	producer stratav1connect.ProducerServiceClient
	consumer stratav1connect.ConsumerServiceClient
	admin    stratav1connect.AdminServiceClient
	group    stratav1connect.GroupServiceClient
	url      string // the API's base URL
}

func startAgent(t *testing.T, tweak func(*agent.Config)) *testAgent {
	t.Helper()
	store := objectlog.NewMemBucket()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	ta := startAgentOn(t, store, index, tweak)
	ta.store = store
	return ta
}

// startAgentOn serves an agent on the given store and index.
func startAgentOn(t testing.TB, store objectlog.Bucket, index *coordinator.Redis, tweak func(*agent.Config)) *testAgent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.AdminListen = ""
	// Tests run compaction themselves (RunCompaction), when they want it.
	cfg.CompactionInterval = 0
	if tweak != nil {
		tweak(&cfg)
	}
	bucket := objectlog.NewFaultyBucket(store)
	a, err := agent.New(t.Context(), cfg, bucket, index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	// h2c on both ends, as agents serve it: bidirectional streams need
	// HTTP/2.
	srv := httptest.NewUnstartedServer(connectapi.Handler(a))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return &testAgent{
		agent:    a,
		bucket:   bucket,
		index:    index,
		producer: stratav1connect.NewProducerServiceClient(client, srv.URL),
		consumer: stratav1connect.NewConsumerServiceClient(client, srv.URL),
		admin:    stratav1connect.NewAdminServiceClient(client, srv.URL),
		group:    stratav1connect.NewGroupServiceClient(client, srv.URL),
		url:      srv.URL,
	}
}

func (ta *testAgent) createTopic(t testing.TB, name string, partitions int32, configs map[string]string) {
	t.Helper()
	_, err := ta.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: name, Partitions: partitions, Configs: configs}))
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// segments counts the segment objects in the store.
func (ta *testAgent) segments(t *testing.T) int {
	t.Helper()
	n := 0
	for _, err := range ta.store.List(t.Context(), "segments/") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func rec(key, value string) *stratav1.Record {
	r := &stratav1.Record{Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

func produce(ctx context.Context, c stratav1connect.ProducerServiceClient, topic string, recs ...*stratav1.Record) (*stratav1.ProduceResponse, error) {
	resp, err := c.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}}}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func TestProduceAssignsDenseOffsetsPerPartition(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "orders", 4, nil)

	next := map[int32]int64{}
	keyPartition := map[string]int32{}
	for round := range 5 {
		var recs []*stratav1.Record
		for i := range 20 {
			recs = append(recs, rec(fmt.Sprintf("k%d", i%7), fmt.Sprintf("v%d-%d", round, i)))
		}
		p2 := int32(2)
		explicit := rec("", "explicit")
		explicit.Partition = &p2
		recs = append(recs, explicit)
		resp, err := produce(t.Context(), ta.producer, "orders", recs...)
		if err != nil {
			t.Fatal(err)
		}
		results := resp.GetTopics()[0].GetResults()
		if len(results) != len(recs) {
			t.Fatalf("%d results for %d records", len(results), len(recs))
		}
		for i, r := range results {
			if i == len(recs)-1 {
				if r.GetPartition() != 2 {
					t.Errorf("explicit partition 2 landed in %d", r.GetPartition())
				}
			} else {
				k := string(recs[i].Key)
				if p, ok := keyPartition[k]; ok && p != r.GetPartition() {
					t.Errorf("key %s went to partitions %d and %d", k, p, r.GetPartition())
				}
				keyPartition[k] = r.GetPartition()
			}
			if r.GetOffset() != next[r.GetPartition()] {
				t.Fatalf("record %d in partition %d got offset %d, want %d", i, r.GetPartition(), r.GetOffset(), next[r.GetPartition()])
			}
			next[r.GetPartition()]++
		}
	}
	desc, err := ta.admin.DescribeTopic(t.Context(), connect.NewRequest(&stratav1.DescribeTopicRequest{Name: "orders"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range desc.Msg.GetPartitions() {
		if p.GetHighWatermark() != next[p.GetPartition()] {
			t.Errorf("partition %d high watermark %d, want %d", p.GetPartition(), p.GetHighWatermark(), next[p.GetPartition()])
		}
	}
}

func TestUnkeyedRecordsOfOneRequestStickToOnePartition(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "logs", 8, nil)
	seen := map[int32]bool{}
	for range 16 {
		resp, err := produce(t.Context(), ta.producer, "logs", rec("", "a"), rec("", "b"), rec("", "c"))
		if err != nil {
			t.Fatal(err)
		}
		rs := resp.GetTopics()[0].GetResults()
		for _, r := range rs[1:] {
			if r.GetPartition() != rs[0].GetPartition() {
				t.Fatalf("unkeyed records of one request split over partitions %d and %d", rs[0].GetPartition(), r.GetPartition())
			}
		}
		seen[rs[0].GetPartition()] = true
	}
	if len(seen) < 2 {
		t.Errorf("16 unkeyed requests all went to one partition")
	}
}

func TestOneSegmentPerFlushWhateverThePartitions(t *testing.T) {
	t.Parallel()
	// A long interval, so that all 100 requests arrive within it even on a
	// loaded machine; they are all answered when it ends.
	ta := startAgent(t, func(c *agent.Config) { c.FlushInterval = 2 * time.Second })
	ta.createTopic(t, "wide", 100, nil)
	// 100 producers, one per partition, all inside one flush interval.
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for p := range int32(100) {
		wg.Go(func() {
			r := rec("", "x")
			r.Partition = &p
			_, err := produce(t.Context(), ta.producer, "wide", r)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := ta.segments(t); n != 1 {
		t.Errorf("100 partitions produced in one flush interval wrote %d segment objects, want 1", n)
	}
}

func TestProduceErrors(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.MaxRequestBytes = 64 << 10 })
	ta.createTopic(t, "small", 2, map[string]string{"max.message.bytes": "1000"})
	bad := int32(5)
	cases := []struct {
		name    string
		req     *stratav1.ProduceRequest
		code    connect.Code
		message string
	}{
		{"unknown topic", &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "nope", Records: []*stratav1.Record{rec("", "v")}}}},
			connect.CodeNotFound, "strata topic create nope"},
		{"partition out of range", &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "small", Records: []*stratav1.Record{{Value: []byte("v"), Partition: &bad}}}}},
			connect.CodeInvalidArgument, "has 2 partitions"},
		{"record too large", &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "small", Records: []*stratav1.Record{rec("", strings.Repeat("x", 2000))}}}},
			connect.CodeInvalidArgument, "max.message.bytes 1000"},
		{"no records", &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "small"}}},
			connect.CodeInvalidArgument, "at least one record"},
		{"no topics", &stratav1.ProduceRequest{}, connect.CodeInvalidArgument, "at least one topic"},
		{"request over the size limit", &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: "small", Records: []*stratav1.Record{rec("", strings.Repeat("x", 100<<10))}}}},
			connect.CodeInvalidArgument, "over the agent's max-request-bytes 65536"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ta.producer.Produce(t.Context(), connect.NewRequest(c.req))
			if connect.CodeOf(err) != c.code {
				t.Fatalf("code %v (%v), want %v", connect.CodeOf(err), err, c.code)
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Errorf("message %q does not mention %q", err.Error(), c.message)
			}
		})
	}
	if n := ta.segments(t); n != 0 {
		t.Errorf("refused requests wrote %d segments", n)
	}
}

func TestUploadFailureIsUnavailableAndInvisible(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 1, nil)
	inj := ta.bucket.Inject(objectlog.Fault{Ops: objectlog.OpPut, Err: errors.New("injected: store down")})
	_, err := produce(t.Context(), ta.producer, "t", rec("", "lost"))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("produce with the store down: %v, want Unavailable", err)
	}
	inj.Remove()
	resp, err := produce(t.Context(), ta.producer, "t", rec("", "kept"))
	if err != nil {
		t.Fatal(err)
	}
	if off := resp.GetTopics()[0].GetResults()[0].GetOffset(); off != 0 {
		t.Errorf("first acked record got offset %d after a failed upload, want 0", off)
	}
}

func TestBackpressureFailsWithResourceExhausted(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) {
		c.SegmentMaxBytes = 4 << 10
		c.MaxBufferedBytes = 8 << 10
		c.ProduceQueueTimeout = 100 * time.Millisecond
	})
	ta.createTopic(t, "t", 1, nil)
	// Uploads hang, so the buffer never drains.
	inj := ta.bucket.Inject(objectlog.Fault{Ops: objectlog.OpPut, Delay: 3 * time.Second})
	defer inj.Remove()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var exhausted error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 6 {
		wg.Go(func() {
			_, err := produce(ctx, ta.producer, "t", rec("", strings.Repeat("y", 3000)))
			if connect.CodeOf(err) == connect.CodeResourceExhausted {
				mu.Lock()
				exhausted = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if exhausted == nil {
		t.Fatal("no produce failed with ResourceExhausted while the buffer was full")
	}
	if !strings.Contains(exhausted.Error(), "max-buffered-bytes") {
		t.Errorf("message %q does not name the limit", exhausted.Error())
	}
}

func TestProduceStreamAnswersInOrder(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "s", 1, nil)
	stream := ta.producer.ProduceStream(t.Context())
	const n = 50
	go func() {
		for i := range n {
			topic := "s"
			if i == 10 {
				topic = "missing"
			}
			_ = stream.Send(&stratav1.ProduceStreamRequest{RequestId: uint64(i), Request: &stratav1.ProduceRequest{
				Topics: []*stratav1.TopicRecords{{Topic: topic, Records: []*stratav1.Record{rec("", fmt.Sprint(i)), rec("", fmt.Sprint(i))}}}}})
		}
		_ = stream.CloseRequest()
	}()
	var next int64
	for i := range n {
		resp, err := stream.Receive()
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if resp.GetRequestId() != uint64(i) {
			t.Fatalf("answer %d is for request %d", i, resp.GetRequestId())
		}
		if i == 10 {
			if resp.GetError().GetCode() != connect.CodeNotFound.String() {
				t.Fatalf("request to a missing topic answered %v", resp)
			}
			continue
		}
		rs := resp.GetResponse().GetTopics()[0].GetResults()
		if rs[0].GetOffset() != next || rs[1].GetOffset() != next+1 {
			t.Fatalf("request %d got offsets %d,%d, want %d,%d", i, rs[0].GetOffset(), rs[1].GetOffset(), next, next+1)
		}
		next += 2
	}
	if _, err := stream.Receive(); err == nil {
		t.Error("stream did not end after the last answer")
	}
	_ = stream.CloseResponse()
}

func TestCloseFlushesBufferedRecords(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.FlushInterval = time.Hour })
	ta.createTopic(t, "t", 1, nil)
	done := make(chan error, 1)
	go func() {
		_, err := produce(t.Context(), ta.producer, "t", rec("", "buffered"))
		done <- err
	}()
	// Give the record time to reach the open segment, which would wait an
	// hour; then Close must seal and commit it.
	time.Sleep(300 * time.Millisecond)
	if n := ta.segments(t); n != 0 {
		t.Fatalf("%d segments before close with a one-hour flush interval", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := ta.agent.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("produce buffered at shutdown: %v", err)
	}
	if n := ta.segments(t); n != 1 {
		t.Errorf("%d segments after close, want 1", n)
	}
	if _, err := produce(t.Context(), ta.producer, "t", rec("", "late")); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("produce after close: %v, want Unavailable", err)
	}
}

func TestShutdownEndsSubscriptionsWithUnavailable(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 1, nil)
	// Through Serve, as in production: the shutdown ends stream contexts.
	l, err := connectapi.Listen(agent.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- connectapi.Serve(ctx, ta.agent, l) }()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	consumer := stratav1connect.NewConsumerServiceClient(&http.Client{Transport: tr}, "http://"+l.API.Addr().String())
	stream, err := consumer.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: "t"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.ResponseHeader(), stream.Err(); err != nil {
		t.Fatal(err)
	}
	// And a fetch long-polling at the end of the log.
	fetched := make(chan error, 1)
	go func() {
		_, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "t", MaxWait: durationpb.New(10 * time.Second)}))
		fetched <- err
	}()
	time.Sleep(100 * time.Millisecond)
	stop()
	for stream.Receive() {
	}
	if code := connect.CodeOf(stream.Err()); code != connect.CodeUnavailable {
		t.Errorf("stream cut by shutdown ended with %v (%v), want Unavailable", code, stream.Err())
	}
	if err := <-fetched; connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("long poll cut by shutdown ended with %v, want Unavailable", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestOutOfRangeNamesTopicAndBounds(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "bounded", 1, nil)
	if _, err := produce(t.Context(), ta.producer, "bounded", rec("", "a"), rec("", "b")); err != nil {
		t.Fatal(err)
	}
	_, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "bounded", Offset: 7}))
	if connect.CodeOf(err) != connect.CodeOutOfRange {
		t.Fatalf("fetch past the end: %v, want OutOfRange", err)
	}
	for _, want := range []string{`"bounded"`, "log start 0", "high watermark 2", "offset 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err.Error(), want)
		}
	}
}

func TestTopicCompressionRoundTrips(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			ta := startAgent(t, nil)
			ta.createTopic(t, "c", 1, map[string]string{"compression.type": codec})
			value := strings.Repeat("compressible ", 400)
			var recs []*stratav1.Record
			for i := range 20 {
				recs = append(recs, rec(fmt.Sprint(i), value))
			}
			if _, err := produce(t.Context(), ta.producer, "c", recs...); err != nil {
				t.Fatal(err)
			}
			var stored int64
			for o, err := range ta.store.List(t.Context(), "segments/") {
				if err != nil {
					t.Fatal(err)
				}
				stored += o.Size
			}
			if raw := int64(20 * len(value)); stored*4 > raw {
				t.Errorf("%s segment holds %d bytes for %d bytes of values: not compressed", codec, stored, raw)
			}
			resp, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "c"}))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.Msg.GetRecords()); got != 20 {
				t.Fatalf("fetched %d records, want 20", got)
			}
			for i, r := range resp.Msg.GetRecords() {
				if string(r.GetValue()) != value || string(r.GetKey()) != fmt.Sprint(i) || r.GetOffset() != int64(i) {
					t.Fatalf("record %d came back as key %q offset %d", i, r.GetKey(), r.GetOffset())
				}
			}
		})
	}
}

// TestUnknownPartitionGrammar: a one-partition topic "has 1 partition".
func TestUnknownPartitionGrammar(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	ta.createTopic(t, "one", 1, nil)
	_, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "one", Partition: 3}))
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `topic "one" has 1 partition`) || strings.Contains(err.Error(), "1 partitions") {
		t.Fatalf("fetch of partition 3: %v, want not_found saying the topic has 1 partition", err)
	}
}
