package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// readEnv is one deployment for read-path tests: a store and an index that
// any number of agents share, as in production.
type readEnv struct {
	store *objectlog.MemBucket
	index Index
	redis *coordinator.Redis
}

func newReadEnv(t *testing.T) *readEnv {
	t.Helper()
	r, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &readEnv{store: objectlog.NewMemBucket(), index: r, redis: r}
}

// startAgent starts an agent on the env with its own cold cache; its GETs
// are counted on the returned bucket.
func (e *readEnv) startAgent(t *testing.T, tweak func(*Config)) (*Agent, *countingBucket) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.AdminListen = ""
	cfg.CacheBlockBytes = 4 << 10
	cfg.CacheBytes = 4 << 20
	cfg.MaxFetchWait = 5 * time.Second
	cfg.TopicCacheTTL = 100 * time.Millisecond
	// Tests run compaction themselves (RunCompaction), when they want it.
	cfg.CompactionInterval = 0
	if tweak != nil {
		tweak(&cfg)
	}
	bucket := &countingBucket{Bucket: e.store}
	a, err := New(t.Context(), cfg, bucket, e.index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a, bucket
}

func (e *readEnv) createTopic(t *testing.T, partitions int32) coordinator.Topic {
	t.Helper()
	name := "t-" + strings.ReplaceAll(t.Name(), "/", "-")
	tp, err := e.index.CreateTopic(t.Context(), name, coordinator.TopicConfig{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// write appends one batch to a partition through the agent's batcher, the
// path Produce takes, and returns the batch's base offset once committed.
func write(t *testing.T, a *Agent, topic coordinator.Topic, p int32, spec objectlog.BatchSpec, recs ...objectlog.Record) int64 {
	t.Helper()
	pending, err := a.batcher.append(t.Context(), []partitionBatch{{key: partitionKey{topic.ID, p}, spec: spec, records: recs}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pending[0].wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	return pending[0].base
}

// values makes records with the given values, null keys and timestamp ts.
func values(ts int64, vs ...string) []objectlog.Record {
	out := make([]objectlog.Record, len(vs))
	for i, v := range vs {
		out[i] = objectlog.Record{Value: []byte(v), Timestamp: ts}
	}
	return out
}

func fetchReq(topic coordinator.Topic, p int32, offset int64) *stratav1.FetchRequest {
	return &stratav1.FetchRequest{Topic: topic.Name, Partition: p, Offset: offset}
}

func doFetch(ctx context.Context, a *Agent, req *stratav1.FetchRequest) (*stratav1.FetchResponse, error) {
	return a.Fetch(ctx, req)
}

// offsetsOf lists the records' offsets, for compact comparisons.
func offsetsOf(recs []*stratav1.ConsumedRecord) string {
	var b strings.Builder
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, r.GetOffset())
	}
	return b.String()
}

func TestFetchReadsRecordsAsProduced(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	reader, readerGets := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)

	first := []objectlog.Record{
		{Key: nil, Value: []byte("v0"), Timestamp: 1000, Headers: []objectlog.Header{{Key: "h", Value: nil}, {Key: "h", Value: []byte("x")}}},
		{Key: []byte{}, Value: nil, Timestamp: 1001},
		{Key: []byte("k2"), Value: []byte("v2"), Timestamp: 1002},
		{Key: []byte("k3"), Value: []byte("v3"), Timestamp: 1003},
		{Key: []byte("k4"), Value: []byte("v4"), Timestamp: 1004},
	}
	if base := write(t, writer, topic, 0, objectlog.NoProducer, first...); base != 0 {
		t.Fatalf("first batch at offset %d, want 0", base)
	}
	if base := write(t, writer, topic, 0, objectlog.NoProducer, values(2000, "v5", "v6", "v7")...); base != 5 {
		t.Fatalf("second batch at offset %d, want 5", base)
	}

	// The writer serves from its own cache, the reader from the store:
	// both must answer the same.
	for name, a := range map[string]*Agent{"writer": writer, "reader": reader} {
		resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := offsetsOf(resp.Records); got != "0,1,2,3,4,5,6,7" {
			t.Fatalf("%s: offsets %s", name, got)
		}
		if resp.NextOffset != 8 || resp.HighWatermark != 8 || resp.LogStartOffset != 0 {
			t.Fatalf("%s: next %d, hwm %d, start %d; want 8, 8, 0", name, resp.NextOffset, resp.HighWatermark, resp.LogStartOffset)
		}
		r0, r1 := resp.Records[0], resp.Records[1]
		switch {
		case r0.Key != nil || string(r0.Value) != "v0" || r0.Topic != topic.Name || r0.Partition != 0:
			t.Fatalf("%s: record 0 = %v", name, r0)
		case r0.Timestamp.AsTime().UnixMilli() != 1000:
			t.Fatalf("%s: record 0 timestamp %v, want 1000 ms", name, r0.Timestamp.AsTime())
		case len(r0.Headers) != 2 || r0.Headers[0].Value != nil || r0.Headers[1].Key != "h" || string(r0.Headers[1].Value) != "x":
			t.Fatalf("%s: record 0 headers %v: want a null value, then x", name, r0.Headers)
		case r1.Key == nil || len(r1.Key) != 0 || r1.Value != nil:
			// An empty key is a present field, a null value an absent one.
			t.Fatalf("%s: record 1 key %#v value %#v, want empty and null", name, r1.Key, r1.Value)
		case string(resp.Records[7].Value) != "v7" || resp.Records[7].Timestamp.AsTime().UnixMilli() != 2000:
			t.Fatalf("%s: record 7 = %v", name, resp.Records[7])
		}
	}
	if readerGets.gets.Load() == 0 {
		t.Fatal("the reader made no GET: its cache was not cold")
	}

	for _, tc := range []struct {
		offset int64
		want   string
	}{
		{2, "2,3,4,5,6,7"}, // from the middle of the first batch
		{6, "6,7"},         // from the middle of the second
		{8, ""},            // at the high watermark, without max_wait
	} {
		resp, err := doFetch(t.Context(), reader, fetchReq(topic, 0, tc.offset))
		if err != nil {
			t.Fatalf("offset %d: %v", tc.offset, err)
		}
		if got := offsetsOf(resp.Records); got != tc.want || resp.NextOffset != 8 {
			t.Fatalf("offset %d: offsets %q next %d, want %q next 8", tc.offset, got, resp.NextOffset, tc.want)
		}
	}
}

func TestFetchMaxBytes(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	hundred := strings.Repeat("x", 100)
	recs := values(1, hundred, hundred, hundred, hundred, hundred, hundred, hundred, hundred, hundred, hundred)
	write(t, a, topic, 0, objectlog.NoProducer, recs...)

	// Records 1..9 take the same encoded size (offsets below 128 take one
	// byte; record 0's offset takes none); max_bytes counts it whole, plus
	// the response's allowance.
	all, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	one := int32(encodedSize(all.Records[1]))
	if one <= 100 {
		t.Fatalf("a record of a 100-byte value counts %d bytes: framing and fields left out", one)
	}
	room := func(n int32) int32 { return responseAllowance + n*one }
	for _, tc := range []struct {
		offset   int64
		maxBytes int32
		want     string
	}{
		{0, room(2), "0,1"},
		{2, room(3) - 1, "2,3"},
		{3, room(3), "3,4,5"},
		// Always at least one record, even if it is larger.
		{0, 1, "0"},
		{9, 1, "9"},
		{0, 0, "0,1,2,3,4,5,6,7,8,9"}, // 0: the 1 MiB default
	} {
		req := fetchReq(topic, 0, tc.offset)
		req.MaxBytes = tc.maxBytes
		resp, err := doFetch(t.Context(), a, req)
		if err != nil {
			t.Fatal(err)
		}
		got := offsetsOf(resp.Records)
		last := resp.Records[len(resp.Records)-1].Offset
		if got != tc.want || resp.NextOffset != last+1 {
			t.Fatalf("offset %d max_bytes %d: offsets %s next %d, want %s next %d", tc.offset, tc.maxBytes, got, resp.NextOffset, tc.want, last+1)
		}
		if size := proto.Size(resp); tc.maxBytes > 0 && len(resp.Records) > 1 && size > int(tc.maxBytes) {
			t.Fatalf("offset %d max_bytes %d: the response takes %d bytes", tc.offset, tc.maxBytes, size)
		}
	}
}

// The bytes of a response, not only of keys, values and headers, are what
// max_bytes bounds: a client's receive limit sees the whole message.
func TestFetchMaxBytesBoundsTheEncodedResponse(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *Config) { c.MaxFetchBytes = 64 << 10 })
	topic := env.createTopic(t, 2)
	empty := make([]objectlog.Record, 2000)
	for i := range empty {
		empty[i] = objectlog.Record{Value: []byte{}, Timestamp: 1}
	}
	write(t, a, topic, 0, objectlog.NoProducer, empty...)
	tiny := make([]objectlog.Record, 20000)
	for i := range tiny {
		tiny[i] = objectlog.Record{Value: []byte{'v'}, Timestamp: 1}
	}
	write(t, a, topic, 1, objectlog.NoProducer, tiny...)

	for _, tc := range []struct {
		name      string
		partition int32
		maxBytes  int32
		bound     int // what the whole response may take
		minCount  int
	}{
		// Records with no bytes of key, value or header still count.
		{"empty records, max_bytes 1", 0, 1, 0, 1},
		{"1-byte values, 16 KiB", 1, 16 << 10, 16 << 10, 100},
		// Past the agent's --max-fetch-bytes, its cap applies.
		{"1-byte values, 1 GiB asked", 1, 1 << 30, 64 << 10, 1000},
		{"1-byte values, the default asked", 1, 0, 64 << 10, 1000},
	} {
		req := fetchReq(topic, tc.partition, 0)
		req.MaxBytes = tc.maxBytes
		resp, err := doFetch(t.Context(), a, req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n, size := len(resp.Records), proto.Size(resp)
		if tc.bound == 0 && n != 1 {
			t.Fatalf("%s: %d records (%d bytes), want 1", tc.name, n, size)
		}
		if tc.bound > 0 && (size > tc.bound || n < tc.minCount) {
			t.Fatalf("%s: %d records in %d bytes, want at least %d records within %d bytes", tc.name, n, size, tc.minCount, tc.bound)
		}
		if resp.NextOffset != int64(n) {
			t.Fatalf("%s: next offset %d after %d records", tc.name, resp.NextOffset, n)
		}
	}
}

func TestFetchLongPollWakesWhenACommitLands(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	other, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 2)

	// On the writer the batcher wakes the poll; on another agent the
	// index's notification does.
	for i, reader := range []*Agent{writer, other} {
		p := int32(i)
		write(t, writer, topic, p, objectlog.NoProducer, values(1, "before")...)
		req := fetchReq(topic, p, 1)
		req.MaxWait = durationpb.New(5 * time.Second)
		type result struct {
			resp *stratav1.FetchResponse
			err  error
			at   time.Time
		}
		done := make(chan result, 1)
		go func() {
			resp, err := doFetch(t.Context(), reader, req)
			done <- result{resp, err, time.Now()}
		}()
		select {
		case r := <-done:
			t.Fatalf("partition %d: the fetch at the high watermark answered at once: %v %v", p, r.resp, r.err)
		case <-time.After(150 * time.Millisecond):
		}
		write(t, writer, topic, p, objectlog.NoProducer, values(2, "after")...)
		acked := time.Now()
		r := <-done
		if r.err != nil {
			t.Fatalf("partition %d: %v", p, r.err)
		}
		if len(r.resp.Records) != 1 || string(r.resp.Records[0].Value) != "after" || r.resp.NextOffset != 2 {
			t.Fatalf("partition %d: answer %v, want the record at offset 1", p, r.resp)
		}
		// Well under the 1 s safety re-check: the wake-up did it.
		if lag := r.at.Sub(acked); lag > 300*time.Millisecond {
			t.Fatalf("partition %d: the fetch answered %s after the commit", p, lag)
		}
	}
}

func TestFetchLongPollTimesOutEmpty(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *Config) { c.MaxFetchWait = 400 * time.Millisecond })
	topic := env.createTopic(t, 1)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "only")...)

	for _, tc := range []struct {
		name     string
		wait     time.Duration
		min, max time.Duration
	}{
		{"max_wait", 200 * time.Millisecond, 200 * time.Millisecond, time.Second},
		{"capped by the agent", time.Hour, 400 * time.Millisecond, 2 * time.Second},
	} {
		req := fetchReq(topic, 0, 1)
		req.MaxWait = durationpb.New(tc.wait)
		start := time.Now()
		resp, err := doFetch(t.Context(), a, req)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(resp.Records) != 0 || resp.NextOffset != 1 || resp.HighWatermark != 1 {
			t.Fatalf("%s: answer %v, want no records, next 1", tc.name, resp)
		}
		if took < tc.min || took > tc.max {
			t.Fatalf("%s: answered after %s, want %s..%s", tc.name, took, tc.min, tc.max)
		}
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 2)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a", "b", "c")...)

	for _, tc := range []struct {
		name     string
		req      *stratav1.FetchRequest
		is       error // the core's sentinel, which the front-ends map
		contains []string
	}{
		{"unknown topic", &stratav1.FetchRequest{Topic: "nope"}, coordinator.ErrNotFound, nil},
		{"empty topic name", &stratav1.FetchRequest{}, ErrInvalid, nil},
		{"partition past the count", &stratav1.FetchRequest{Topic: topic.Name, Partition: 2}, coordinator.ErrNotFound, []string{"has 2 partitions"}},
		{"negative partition", &stratav1.FetchRequest{Topic: topic.Name, Partition: -1}, coordinator.ErrNotFound, []string{"has 2 partitions"}},
		{"above the high watermark", &stratav1.FetchRequest{Topic: topic.Name, Offset: 4}, coordinator.ErrOffsetOutOfRange, []string{"log start 0", "high watermark 3"}},
		{"below the log start", &stratav1.FetchRequest{Topic: topic.Name, Offset: -1}, coordinator.ErrOffsetOutOfRange, []string{"log start 0", "high watermark 3"}},
		{"negative max_bytes", &stratav1.FetchRequest{Topic: topic.Name, MaxBytes: -1}, ErrInvalid, nil},
		{"negative max_wait", &stratav1.FetchRequest{Topic: topic.Name, MaxWait: durationpb.New(-time.Second)}, ErrInvalid, nil},
		{"unknown isolation level", &stratav1.FetchRequest{Topic: topic.Name, IsolationLevel: 9}, ErrInvalid, nil},
		{"malformed topic_id", &stratav1.FetchRequest{Topic: topic.Name, TopicId: "t1"}, ErrInvalid, []string{`topic_id "t1"`}},
		{"another topic's id", &stratav1.FetchRequest{Topic: topic.Name, TopicId: "00000000-0000-0000-0000-000000000001"}, coordinator.ErrNotFound,
			[]string{fmt.Sprintf("topic %q has id %s, not 00000000-0000-0000-0000-000000000001: the topic was deleted (and maybe created again), or the id is wrong", topic.Name, topic.ID)}},
	} {
		_, err := doFetch(t.Context(), a, tc.req)
		if !errors.Is(err, tc.is) {
			t.Fatalf("%s: error %v, want %v", tc.name, err, tc.is)
		}
		for _, s := range tc.contains {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%s: error %q does not say %q", tc.name, err, s)
			}
		}
	}
}

// retainedIndex plays retention: offsets below start are gone, as they
// will be once the compactor trims partitions.
type retainedIndex struct {
	Index
	start atomic.Int64
}

func (r *retainedIndex) Lookup(ctx context.Context, id uuid.UUID, p int32, offset, maxBytes int64) ([]coordinator.IndexEntry, coordinator.PartitionState, error) {
	start := r.start.Load()
	st, err := r.Index.PartitionState(ctx, id, p)
	if err != nil {
		return nil, st, err
	}
	st.LogStartOffset = max(st.LogStartOffset, start)
	if offset < start {
		return nil, st, fmt.Errorf("lookup: %w: log start %d, high watermark %d", coordinator.ErrOffsetOutOfRange, st.LogStartOffset, st.HighWatermark)
	}
	entries, ist, err := r.Index.Lookup(ctx, id, p, offset, maxBytes)
	ist.LogStartOffset = max(ist.LogStartOffset, start)
	return entries, ist, err
}

func (r *retainedIndex) PartitionState(ctx context.Context, id uuid.UUID, p int32) (coordinator.PartitionState, error) {
	st, err := r.Index.PartitionState(ctx, id, p)
	st.LogStartOffset = max(st.LogStartOffset, r.start.Load())
	return st, err
}

func TestFetchBelowRetainedLogStartIsOutOfRange(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	retained := &retainedIndex{Index: env.index}
	env.index = retained
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a", "b", "c", "d")...)
	retained.start.Store(2)

	_, err := doFetch(t.Context(), a, fetchReq(topic, 0, 1))
	if !errors.Is(err, coordinator.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "log start 2") || !strings.Contains(err.Error(), "high watermark 4") {
		t.Fatalf("fetch below the log start: %v, want OutOfRange naming both bounds", err)
	}
	resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 2))
	if err != nil || offsetsOf(resp.Records) != "2,3" || resp.LogStartOffset != 2 {
		t.Fatalf("fetch at the log start: %v %v", resp, err)
	}
}

func TestFetchSkipsControlBatches(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	// Transaction markers with nothing open on the partition.
	control := objectlog.BatchSpec{ProducerID: 5, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}
	write(t, a, topic, 0, control, values(1, "marker")...)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a", "b")...)
	write(t, a, topic, 0, control, values(1, "marker")...)

	resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(resp.Records); got != "1,2" || resp.NextOffset != 4 {
		t.Fatalf("offsets %s next %d, want 1,2 next 4 (past the trailing marker)", got, resp.NextOffset)
	}
	// Only a marker left before the watermark: the answer is empty and
	// moves the consumer past it, after waiting for real records.
	req := fetchReq(topic, 0, 3)
	req.MaxWait = durationpb.New(100 * time.Millisecond)
	resp, err = doFetch(t.Context(), a, req)
	if err != nil || len(resp.Records) != 0 || resp.NextOffset != 4 {
		t.Fatalf("fetch of a marker: %v %v, want no records and next 4", resp, err)
	}
}

func TestFetchOwnSegmentsWithoutGets(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, writerGets := env.startAgent(t, nil)
	other, otherGets := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	big := bytes.Repeat([]byte("y"), 10<<10) // several cache blocks
	for range 3 {
		write(t, writer, topic, 0, objectlog.NoProducer, objectlog.Record{Value: big, Timestamp: 1})
	}
	for _, a := range []*Agent{writer, other} {
		resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
		if err != nil || offsetsOf(resp.Records) != "0,1,2" || !bytes.Equal(resp.Records[2].Value, big) {
			t.Fatalf("fetch: %v", err)
		}
	}
	if n := writerGets.gets.Load(); n != 0 {
		t.Fatalf("the writing agent made %d GETs for its own segments, want 0", n)
	}
	if otherGets.gets.Load() == 0 {
		t.Fatal("the other agent made no GET: the count proves nothing")
	}
}

func TestFetchCorruptEntryIsDataLoss(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	junk := bytes.Repeat([]byte{0xab}, 200)
	if err := env.store.PutIfAbsent(t.Context(), "segments/junk", bytes.NewReader(junk), int64(len(junk))); err != nil {
		t.Fatal(err)
	}
	_, err := env.index.CommitSegment(t.Context(), coordinator.SegmentCommit{SegmentID: "junk", SegmentKey: "segments/junk",
		Chunks: []coordinator.ChunkCommit{{TopicID: topic.ID, Partition: 0, Batches: []coordinator.BatchCommit{
			{ByteOffset: 0, ByteLength: 200, Records: 1, ProducerID: -1},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0)); !errors.Is(err, objectlog.ErrCorrupt) {
		t.Fatalf("fetch of a corrupt chunk: %v, want DataLoss", err)
	}
}

// KIP-516: a reader that names the topic id it read from is never answered
// from another topic of the same name.
func TestFetchAfterTheTopicIsRecreated(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	// This agent keeps topic metadata for a minute: it still has the old
	// topic cached when the new one is written.
	cached, _ := env.startAgent(t, func(c *Config) { c.TopicCacheTTL = time.Minute })
	old := env.createTopic(t, 1)
	write(t, writer, old, 0, objectlog.NoProducer, values(1, "a", "b", "c", "d", "e", "f")...)

	first, err := doFetch(t.Context(), cached, fetchReq(old, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if first.TopicId != old.ID.String() {
		t.Fatalf("topic_id %q, want the topic's id %s", first.TopicId, old.ID)
	}

	if err := env.index.DeleteTopic(t.Context(), old.Name); err != nil {
		t.Fatal(err)
	}
	oldID := first.TopicId
	for _, a := range []*Agent{writer, cached} {
		req := fetchReq(old, 0, 5)
		req.TopicId = oldID
		_, err := doFetch(t.Context(), a, req)
		if !errors.Is(err, coordinator.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("topic %q was deleted", old.Name)) ||
			strings.Contains(err.Error(), oldID) {
			t.Fatalf("fetch of the deleted topic by id: %v, want NotFound saying, by name, that it was deleted", err)
		}
	}

	recreated, err := env.index.CreateTopic(t.Context(), old.Name, coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	write(t, writer, recreated, 0, objectlog.NoProducer, values(2, "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7")...)

	for name, a := range map[string]*Agent{"writer": writer, "cached": cached} {
		// The position 5 of the old topic, sent with its id.
		req := fetchReq(old, 0, 5)
		req.TopicId = oldID
		resp, err := doFetch(t.Context(), a, req)
		// The cached agent saw the old id and says the topic was
		// deleted; the writer, which knows only the new one, cannot tell
		// a deleted topic's id from a wrong one and says so.
		if !errors.Is(err, coordinator.ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("%q", old.Name)) ||
			!strings.Contains(err.Error(), "exists again as a new topic") && !strings.Contains(err.Error(), "the topic was deleted (and maybe created again)") {
			t.Fatalf("%s: fetch at offset 5 of the old topic's id: %v %v, want NotFound naming the topic", name, resp, err)
		}
		if !errors.Is(err, ErrUnknownTopicID) {
			t.Fatalf("%s: %v is not ErrUnknownTopicID (Kafka's UNKNOWN_TOPIC_ID)", name, err)
		}
		// With the new topic's id, or none, the new topic answers.
		for _, id := range []string{recreated.ID.String(), ""} {
			req.TopicId = id
			resp, err := doFetch(t.Context(), a, req)
			if err != nil || offsetsOf(resp.Records) != "5,6,7" || string(resp.Records[0].Value) != "n5" || resp.TopicId != recreated.ID.String() {
				t.Fatalf("%s: fetch with topic_id %q: %v %v, want the new topic's 5..7 and its id", name, id, resp, err)
			}
		}
	}
}

func TestFetchWaitingOnADeletedTopicEnds(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a")...)
	req := fetchReq(topic, 0, 1)
	req.TopicId = topic.ID.String()
	req.MaxWait = durationpb.New(5 * time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := doFetch(t.Context(), a, req)
		done <- err
	}()
	// Deleted while the fetch waits, or before it starts: either way it
	// ends NotFound rather than waiting out max_wait.
	if err := env.index.DeleteTopic(t.Context(), topic.Name); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := <-done
	if !errors.Is(err, coordinator.ErrNotFound) || !strings.Contains(err.Error(), "was deleted") {
		t.Fatalf("waiting fetch of a deleted topic: %v, want NotFound", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("the fetch ended %s after the deletion: it waited out max_wait", took)
	}
	// The hub forgot the deleted topic.
	if parts, topics := a.hub.size(); parts != 0 || topics != 0 {
		t.Fatalf("the hub keeps %d partitions and %d topics after the topic's deletion", parts, topics)
	}
}

// lookupSignal reports each Lookup of topic id once it has returned.
type lookupSignal struct {
	Index
	id   uuid.UUID
	done chan struct{}
}

func (l *lookupSignal) Lookup(ctx context.Context, id uuid.UUID, p int32, offset, maxBytes int64) ([]coordinator.IndexEntry, coordinator.PartitionState, error) {
	entries, st, err := l.Index.Lookup(ctx, id, p, offset, maxBytes)
	if id == l.id {
		select {
		case l.done <- struct{}{}:
		default:
		}
	}
	return entries, st, err
}

// A long poll sent without topic_id is pinned to the topic the name has
// when it starts: deleted and created again while it waits, it ends
// NotFound rather than reading the new topic from the old one's offset.
func TestFetchLongPollWithoutTopicIDIsPinned(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	old := env.createTopic(t, 1)
	signal := &lookupSignal{Index: env.index, id: old.ID, done: make(chan struct{}, 1)}
	write(t, a, old, 0, objectlog.NoProducer, values(1, "a")...)
	// A second agent on the same index, whose reads are signalled.
	reader := *env
	reader.index = signal
	r, _ := reader.startAgent(t, nil)

	req := fetchReq(old, 0, 1)
	req.MaxWait = durationpb.New(5 * time.Second)
	type answer struct {
		resp *stratav1.FetchResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := doFetch(t.Context(), r, req)
		done <- answer{resp, err}
	}()
	// The fetch read the old topic's partition (empty at offset 1), so it
	// is pinned to it now.
	select {
	case <-signal.done:
	case a := <-done:
		t.Fatalf("the fetch answered before waiting: %v %v", a.resp, a.err)
	}
	if err := env.index.DeleteTopic(t.Context(), old.Name); err != nil {
		t.Fatal(err)
	}
	fresh, err := env.index.CreateTopic(t.Context(), old.Name, coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	write(t, a, fresh, 0, objectlog.NoProducer, values(2, "n0", "n1", "n2")...)

	got := <-done
	if got.err == nil {
		t.Fatalf("the fetch of the deleted topic answered records %s of topic %s, want NotFound", offsetsOf(got.resp.Records), got.resp.TopicId)
	}
	if !errors.Is(got.err, coordinator.ErrNotFound) ||
		!strings.Contains(got.err.Error(), fmt.Sprintf("topic %q was deleted while the fetch waited for records", old.Name)) {
		t.Fatalf("fetch whose topic was deleted while it waited: %v, want NotFound saying so", got.err)
	}
	// A new request reads the new topic.
	resp, err := doFetch(t.Context(), r, req)
	if err != nil || offsetsOf(resp.Records) != "1,2" || resp.TopicId != fresh.ID.String() {
		t.Fatalf("a new fetch after the re-creation: %v %v, want the new topic's 1,2", resp, err)
	}
}

// countingIndex counts the reads a waiting reader makes of the index.
type countingIndex struct {
	Index
	reads atomic.Int64
}

func (c *countingIndex) Lookup(ctx context.Context, id uuid.UUID, p int32, offset, maxBytes int64) ([]coordinator.IndexEntry, coordinator.PartitionState, error) {
	c.reads.Add(1)
	return c.Index.Lookup(ctx, id, p, offset, maxBytes)
}

func (c *countingIndex) PartitionState(ctx context.Context, id uuid.UUID, p int32) (coordinator.PartitionState, error) {
	c.reads.Add(1)
	return c.Index.PartitionState(ctx, id, p)
}

// After an index failover that lost commits, the hub's watermark is above
// the index's. A long poll must not believe it and read the index in a
// loop: it reads once per watermarkRecheck.
func TestLongPollWithTheHubAheadOfTheIndexDoesNotSpin(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	counting := &countingIndex{Index: env.index}
	env.index = counting
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a")...)
	key := partitionKey{topic.ID, 0}
	a.hub.changed(key)
	a.hub.publish(coordinator.Watermark{TopicID: topic.ID, Partition: 0, HighWatermark: 50})

	const wait = 2 * time.Second
	t.Run("fetch", func(t *testing.T) {
		before := counting.reads.Load()
		req := fetchReq(topic, 0, 1)
		req.MaxWait = durationpb.New(wait)
		resp, err := doFetch(t.Context(), a, req)
		if err != nil || len(resp.Records) != 0 || resp.HighWatermark != 1 {
			t.Fatalf("fetch: %v %v, want no records at watermark 1", resp, err)
		}
		// One read at the start and one per second of waiting, and slack.
		if n := counting.reads.Load() - before; n > 6 {
			t.Fatalf("one fetch waiting %s read the index %d times", wait, n)
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		before := counting.reads.Load()
		s := subscribeCore(t, a, &stratav1.SubscribeRequest{Topic: topic.Name, Partitions: []int32{0},
			Start: &stratav1.SubscribeRequest_Offset{Offset: 1}})
		time.Sleep(wait)
		if n := counting.reads.Load() - before; n > 8 {
			t.Fatalf("one idle stream read the index %d times in %s", n, wait)
		}
		s.close()
	})
}

func TestReadConfigChecked(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	for _, tc := range []struct {
		tweak func(*Config)
		want  string
	}{
		{func(c *Config) { c.MaxFetchBytes = 100 }, "max-fetch-bytes must be between 1024"},
		{func(c *Config) { c.SubscribeKeepAlive = 10 * time.Millisecond }, "subscribe-keep-alive must be 0 (off) or at least 1s"},
		{func(c *Config) { c.SubscribeKeepAlive = -time.Second }, "subscribe-keep-alive must be 0 (off) or at least 1s"},
	} {
		cfg := DefaultConfig()
		cfg.AdminListen = ""
		tc.tweak(&cfg)
		a, err := New(t.Context(), cfg, env.store, env.index, slog.New(slog.DiscardHandler))
		if err == nil {
			_ = a.Close(t.Context())
			t.Fatalf("config accepted, want %q", tc.want)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("error %q, want %q", err, tc.want)
		}
	}
	if d := DefaultConfig(); d.MaxFetchBytes != 4<<20-64<<10 || d.SubscribeKeepAlive != 15*time.Second {
		t.Fatalf("defaults max-fetch-bytes %d subscribe-keep-alive %s, want what README.md documents", d.MaxFetchBytes, d.SubscribeKeepAlive)
	}
}

// BenchmarkFetchCatchUp reads a backlog of 100-byte records from the
// writer's cache, 1 MiB per fetch: the cost of decoding and sizing records.
func BenchmarkFetchCatchUp(b *testing.B) {
	r, err := coordinator.Open(b.Context(), "memory://", coordinator.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	cfg := DefaultConfig()
	cfg.AdminListen = ""
	cfg.FlushInterval = 5 * time.Millisecond
	a, err := New(b.Context(), cfg, objectlog.NewMemBucket(), r, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close(context.Background())
	topic, err := r.CreateTopic(b.Context(), "bench", coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]objectlog.Record, 1000)
	for i := range recs {
		recs[i] = objectlog.Record{Key: []byte("key"), Value: bytes.Repeat([]byte{'v'}, 100), Timestamp: 1}
	}
	for range 20 {
		pending, err := a.batcher.append(b.Context(), []partitionBatch{{key: partitionKey{topic.ID, 0}, spec: objectlog.NoProducer, records: recs}})
		if err != nil {
			b.Fatal(err)
		}
		if err := pending[0].wait(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	req := &stratav1.FetchRequest{Topic: "bench", MaxBytes: 1 << 20}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		resp, err := doFetch(b.Context(), a, req)
		if err != nil {
			b.Fatal(err)
		}
		n += len(resp.Records)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// consumedRecordSize must be proto.Size, for every shape of record.
func TestConsumedRecordSizeIsProtoSize(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(1, 2))
	maybeBytes := func() []byte {
		switch rnd.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		return bytes.Repeat([]byte{'b'}, rnd.IntN(300))
	}
	ints := []int64{0, 1, -1, 127, 128, 1 << 31, -1 << 31, 1 << 62, math.MaxInt64, math.MinInt64}
	for i := range 5000 {
		r := &stratav1.ConsumedRecord{
			Topic:     strings.Repeat("t", rnd.IntN(200)),
			Partition: int32(ints[rnd.IntN(7)]),
			Offset:    ints[rnd.IntN(len(ints))],
			Key:       maybeBytes(),
			Value:     maybeBytes(),
		}
		if rnd.IntN(5) > 0 {
			r.Timestamp = &timestamppb.Timestamp{Seconds: ints[rnd.IntN(len(ints))], Nanos: int32(ints[rnd.IntN(7)])}
		}
		for range rnd.IntN(4) {
			r.Headers = append(r.Headers, &stratav1.Header{Key: strings.Repeat("k", rnd.IntN(3)), Value: maybeBytes()})
		}
		if got, want := consumedRecordSize(r), proto.Size(r); got != want {
			t.Fatalf("record %d %v: size %d, proto.Size %d", i, r, got, want)
		}
	}
}
