package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/client"
	"github.com/stratabroker/strata/internal/kafkahash"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// isProduceStream reports whether path is a produce stream's: the batch
// path's (ProduceBatchesStream) or the transactional record path's
// (ProduceStream).
func isProduceStream(path string) bool {
	return strings.HasSuffix(path, "/ProduceBatchesStream") || strings.HasSuffix(path, "/ProduceStream")
}

// responseCutter breaks produce streams: after a random number of response
// bytes it ends the body with an error and resets the stream, so the agent
// has taken (and will commit) requests whose answers the producer never
// sees. It cuts at most limit streams.
type responseCutter struct {
	next  http.RoundTripper
	limit int64
	cuts  atomic.Int64
}

func (c *responseCutter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || !isProduceStream(req.URL.Path) || c.cuts.Load() >= c.limit {
		return resp, err
	}
	// Batch answers are small (a base offset per partition): cut within
	// the first few of them.
	resp.Body = &cutBody{ReadCloser: resp.Body, left: 20 + rand.IntN(400), cutter: c}
	return resp, nil
}

type cutBody struct {
	io.ReadCloser
	left   int
	cutter *responseCutter
	cut    bool
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.cut {
		return 0, errors.New("injected: connection dropped")
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= n
	if b.left <= 0 && err == nil {
		if b.cutter.cuts.Add(1) <= b.cutter.limit {
			b.cut = true
			_ = b.ReadCloser.Close()
		} else {
			b.left = 1 << 30
		}
	}
	return n, err
}

// readAll fetches every record of the topic's partitions.
func (ta *testAgent) readAll(t *testing.T, topic string, partitions int32) map[int32][]*stratav1.ConsumedRecord {
	t.Helper()
	consumer := stratav1connect.NewConsumerServiceClient(ta.http, ta.url)
	out := map[int32][]*stratav1.ConsumedRecord{}
	for p := range partitions {
		var next int64
		for {
			resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: p, Offset: next, MaxBytes: 1 << 20}))
			if err != nil {
				t.Fatalf("fetch %s/%d at %d: %v", topic, p, next, err)
			}
			out[p] = append(out[p], resp.Msg.GetRecords()...)
			next = resp.Msg.GetNextOffset()
			if next >= resp.Msg.GetHighWatermark() {
				break
			}
		}
	}
	return out
}

// checkExactlyOnceInOrder checks that the log holds every value of
// produced exactly once, each key's values in produce order, at the offsets
// the promises reported.
func checkExactlyOnceInOrder(t *testing.T, log map[int32][]*stratav1.ConsumedRecord, produced []*client.Record) {
	t.Helper()
	type pos struct {
		p int32
		o int64
	}
	at := map[string]pos{}
	lastSeq := map[string]int{}
	total := 0
	for p, recs := range log {
		for _, r := range recs {
			total++
			v := string(r.GetValue())
			if prev, dup := at[v]; dup {
				t.Fatalf("value %q twice: %v and %d/%d", v, prev, p, r.GetOffset())
			}
			at[v] = pos{p, r.GetOffset()}
			var key string
			var seq int
			if _, err := fmt.Sscanf(v, "%s %d", &key, &seq); err != nil {
				t.Fatalf("value %q: %v", v, err)
			}
			if last, ok := lastSeq[key]; ok && seq <= last {
				t.Fatalf("key %s: value %d after %d in partition %d: order broken", key, seq, last, p)
			}
			lastSeq[key] = seq
		}
	}
	if total != len(produced) {
		t.Errorf("log holds %d records, produced %d", total, len(produced))
	}
	for _, r := range produced {
		got, ok := at[string(r.Value)]
		if !ok {
			t.Fatalf("acknowledged %q is not in the log", r.Value)
		}
		if got != (pos{r.Partition, r.Offset}) {
			t.Fatalf("%q acknowledged at %d/%d, in the log at %v", r.Value, r.Partition, r.Offset, got)
		}
	}
}

// TestProducerExactlyOnceThroughDroppedStreams: streams break after the
// agent took requests, many times; the idempotent producer retries them and
// the log ends with every record once, in order, at the offsets the
// promises gave.
func TestProducerExactlyOnceThroughDroppedStreams(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "exactly", 4)
	cutter := &responseCutter{limit: 15}
	hc := h2cClient(t, func(rt http.RoundTripper) http.RoundTripper { cutter.next = rt; return cutter })
	p, err := client.NewProducer(hc, ta.url, client.Linger(2*time.Millisecond), client.BatchMaxBytes(2<<10), client.RetryBackoff(5*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	const n = 4000
	produced := make([]*client.Record, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	for i := range n {
		key := fmt.Sprintf("k%02d", i%40)
		r := &client.Record{Topic: "exactly", Key: []byte(key), Value: fmt.Appendf(nil, "%s %06d", key, i)}
		produced[i] = r
		p.Produce(t.Context(), r, func(_ *client.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if failed.Load() > 0 {
		t.Fatalf("%d records failed, first: %v", failed.Load(), firstErr.Load())
	}
	if cutter.cuts.Load() == 0 {
		t.Fatal("no stream was cut: the test tested nothing")
	}
	t.Logf("%d streams cut", min(cutter.cuts.Load(), cutter.limit))
	checkExactlyOnceInOrder(t, ta.readAll(t, "exactly", 4), produced)
}

// TestProducerPartitioning: keyed records go where Kafka's default
// partitioner puts them; records without a key stick to one partition per
// batch; ManualPartitioner takes Partition as given.
func TestProducerPartitioning(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "parts", 6)
	p, err := client.NewProducer(ta.http, ta.url, client.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var keyed []*client.Record
	for i := range 50 {
		keyed = append(keyed, &client.Record{Topic: "parts", Key: fmt.Appendf(nil, "user-%d", i), Value: []byte("v")})
	}
	var unkeyed []*client.Record
	for range 20 {
		unkeyed = append(unkeyed, &client.Record{Topic: "parts", Value: []byte("u")})
	}
	// Produce only buffers (the linger is an hour); Flush sends.
	errs := make(chan error, len(keyed)+len(unkeyed))
	for _, r := range append(keyed, unkeyed...) {
		p.Produce(t.Context(), r, func(_ *client.Record, err error) { errs <- err })
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range len(keyed) + len(unkeyed) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range keyed {
		if want := kafkahash.KeyPartition(r.Key, 6); r.Partition != want {
			t.Errorf("key %s in partition %d, Kafka's partitioner says %d", r.Key, r.Partition, want)
		}
	}
	for _, r := range unkeyed {
		if r.Partition != unkeyed[0].Partition {
			t.Fatalf("unkeyed records of one batch spread over partitions %d and %d", unkeyed[0].Partition, r.Partition)
		}
	}

	manual, err := client.NewProducer(ta.http, ta.url, client.ManualPartitioner(), client.DisableIdempotence())
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close(context.Background())
	r := &client.Record{Topic: "parts", Key: []byte("user-1"), Partition: 5}
	if err := manual.ProduceSync(t.Context(), r); err != nil || r.Partition != 5 {
		t.Fatalf("manual partition: %d %v", r.Partition, err)
	}
	if pid, _ := manual.ProducerID(); pid != 0 {
		t.Fatalf("a producer without idempotence has id %d", pid)
	}
	err = manual.ProduceSync(t.Context(), &client.Record{Topic: "parts", Partition: 6})
	if err == nil || !strings.Contains(err.Error(), "6 partitions") {
		t.Fatalf("partition 6 of 6: %v", err)
	}
	err = manual.ProduceSync(t.Context(), &client.Record{Topic: "nope"})
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown topic: %v", err)
	}
}

// TestProducerFenced: once a newer epoch of the producer's id wrote to a
// partition, the producer's next batch there is refused and every record
// after it fails with the fencing error.
func TestProducerFenced(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "fence", 1)
	p, err := client.NewProducer(ta.http, ta.url)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.ProduceSync(t.Context(), &client.Record{Topic: "fence", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	pid, epoch := p.ProducerID()
	if pid < 1 {
		t.Fatalf("producer id %d", pid)
	}
	// A newer incarnation: bump the id, write with the new epoch.
	bumped, err := ta.producer.InitProducerId(t.Context(), connect.NewRequest(&stratav1.InitProducerIdRequest{ProducerId: pid}))
	if err != nil || bumped.Msg.GetProducerEpoch() != int32(epoch)+1 {
		t.Fatalf("bump: %v %v", bumped, err)
	}
	zero := int32(0)
	_, err = ta.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{
		ProducerId: pid, ProducerEpoch: bumped.Msg.GetProducerEpoch(),
		Topics: []*stratav1.TopicRecords{{Topic: "fence", Records: []*stratav1.Record{{Partition: &zero, Value: []byte("new")}}, BaseSequences: map[int32]int32{0: 0}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	err = p.ProduceSync(t.Context(), &client.Record{Topic: "fence", Value: []byte("zombie")})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("fenced producer: %v, want failed_precondition", err)
	}
	err = p.ProduceSync(t.Context(), &client.Record{Topic: "fence", Value: []byte("after")})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("after fencing: %v", err)
	}
}

func TestNewProducerChecksOptions(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]client.ProducerOpt{
		"in flight over 5":  client.MaxInFlightPerPartition(6),
		"no batch bytes":    client.BatchMaxBytes(0),
		"backoff":           client.RetryBackoff(time.Second, time.Millisecond),
		"negative linger":   client.Linger(-time.Second),
		"small request max": client.MaxRequestBytes(10),
	} {
		if _, err := client.NewProducer(http.DefaultClient, "http://127.0.0.1:1", opt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	p, err := client.NewProducer(http.DefaultClient, "http://127.0.0.1:1", client.MaxInFlightPerPartition(6), client.DisableIdempotence())
	if err != nil {
		t.Fatalf("6 in flight without idempotence: %v", err)
	}
	_ = p.Close(t.Context())
}

// TestProducerBumpsEpochOnUnexplainedGap: when a partition expects another
// sequence than the producer's oldest unacknowledged batch has (its state
// there is not what the producer thinks), the producer bumps its epoch,
// numbers its batches from 0 again and gets the batch written.
func TestProducerBumpsEpochOnUnexplainedGap(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "gap", 1)
	p, err := client.NewProducer(ta.http, ta.url)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.ProduceSync(t.Context(), &client.Record{Topic: "gap", Value: []byte("a")}, &client.Record{Topic: "gap", Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	pid, epoch := p.ProducerID()
	// Someone else writes with the producer's id and epoch at the sequence
	// the producer will use next (2), two records long: the producer's
	// next batch (one record at sequence 2) is then a gap, not a duplicate.
	zero := int32(0)
	_, err = ta.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{
		ProducerId: pid, ProducerEpoch: int32(epoch),
		Topics: []*stratav1.TopicRecords{{Topic: "gap", BaseSequences: map[int32]int32{0: 2},
			Records: []*stratav1.Record{{Partition: &zero, Value: []byte("x")}, {Partition: &zero, Value: []byte("y")}}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := &client.Record{Topic: "gap", Value: []byte("c")}
	if err := p.ProduceSync(t.Context(), c); err != nil {
		t.Fatalf("after the gap: %v", err)
	}
	if c.Offset != 4 {
		t.Fatalf("c at offset %d, want 4 (after a, b, x, y)", c.Offset)
	}
	if pid2, epoch2 := p.ProducerID(); pid2 != pid || epoch2 != epoch+1 {
		t.Fatalf("producer %d/%d after the gap, want %d/%d", pid2, epoch2, pid, epoch+1)
	}
	d := &client.Record{Topic: "gap", Value: []byte("d")}
	if err := p.ProduceSync(t.Context(), d); err != nil || d.Offset != 5 {
		t.Fatalf("d: offset %d, %v", d.Offset, err)
	}
}

// TestProducerFailsOnlyTheBadBatch: a record the agent refuses fails its
// own batch; batches of the same request for other partitions, and the
// partition's later batches, are written, in order.
func TestProducerFailsOnlyTheBadBatch(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	_, err := ta.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: "small", Partitions: 2, Configs: map[string]string{"max.message.bytes": "200"}}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(ta.http, ta.url, client.ManualPartitioner(), client.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	type outcome struct {
		r   *client.Record
		err error
	}
	results := make(chan outcome, 8)
	rec := func(part int32, v string) {
		p.Produce(t.Context(), &client.Record{Topic: "small", Partition: part, Value: []byte(v)}, func(r *client.Record, err error) { results <- outcome{r, err} })
	}
	flush := func() {
		if err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rec(0, "ok-0")
	rec(1, "ok-1")
	flush()
	pid, epoch := p.ProducerID()
	// One request: partition 0's batch and partition 1's refused one.
	rec(0, "ok-2")
	rec(1, strings.Repeat("x", 500))
	flush()
	rec(1, "after")
	flush()
	got := map[string]outcome{}
	for range 5 {
		o := <-results
		got[string(o.r.Value[:min(len(o.r.Value), 5)])] = o
	}
	if o := got["xxxxx"]; connect.CodeOf(o.err) != connect.CodeInvalidArgument || !strings.Contains(o.err.Error(), "max.message.bytes") {
		t.Fatalf("oversized record: %v", o.err)
	}
	for _, v := range []string{"ok-0", "ok-1", "ok-2", "after"} {
		if got[v].err != nil {
			t.Fatalf("%s: %v", v, got[v].err)
		}
	}
	// The refused batch was certainly not written: the partition's
	// sequence is rewound, no epoch bump.
	if pid2, epoch2 := p.ProducerID(); pid2 != pid || epoch2 != epoch {
		t.Errorf("producer %d/%d after a refused batch, want still %d/%d", pid2, epoch2, pid, epoch)
	}
	if got["after"].r.Partition != 1 || got["after"].r.Offset <= got["ok-1"].r.Offset {
		t.Fatalf("after at %d/%d, ok-1 at %d/%d", got["after"].r.Partition, got["after"].r.Offset, got["ok-1"].r.Partition, got["ok-1"].r.Offset)
	}
}

// TestProducerRewindsAfterRefusedBatch: batches sent after a refused one
// are refused too (they left a gap); the producer numbers them again from
// the refused batch's sequence and writes them, in order, in the same
// epoch.
func TestProducerRewindsAfterRefusedBatch(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	_, err := ta.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: "rewind", Partitions: 1, Configs: map[string]string{"max.message.bytes": "200"}}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(ta.http, ta.url, client.BatchMaxRecords(1), client.Linger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.ProduceSync(t.Context(), &client.Record{Topic: "rewind", Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	pid, epoch := p.ProducerID()
	big := &client.Record{Topic: "rewind", Value: []byte(strings.Repeat("x", 500))}
	after := []*client.Record{{Topic: "rewind", Value: []byte("a1")}, {Topic: "rewind", Value: []byte("a2")}, {Topic: "rewind", Value: []byte("a3")}}
	errs := make(chan error, 4)
	for _, r := range append([]*client.Record{big}, after...) {
		p.Produce(t.Context(), r, func(_ *client.Record, err error) { errs <- err })
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("oversized record: %v", err)
	}
	for range after {
		if err := <-errs; err != nil {
			t.Fatalf("a record after the refused one: %v", err)
		}
	}
	for i, r := range after {
		if r.Offset != int64(1+i) {
			t.Errorf("%s at offset %d, want %d", r.Value, r.Offset, 1+i)
		}
	}
	if pid2, epoch2 := p.ProducerID(); pid2 != pid || epoch2 != epoch {
		t.Errorf("producer %d/%d, want still %d/%d", pid2, epoch2, pid, epoch)
	}
}

// blackhole swallows the first produce stream: it reads the requests and
// never answers, as a stalled agent would.
type blackhole struct {
	next http.RoundTripper
	used atomic.Bool
}

func (b *blackhole) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isProduceStream(req.URL.Path) || b.used.Swap(true) {
		return b.next.RoundTrip(req)
	}
	go func() { _, _ = io.Copy(io.Discard, req.Body) }()
	pr, pw := io.Pipe()
	go func() {
		<-req.Context().Done()
		pw.CloseWithError(req.Context().Err())
	}()
	h := http.Header{}
	h.Set("Content-Type", "application/connect+proto")
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: pr, Request: req, ProtoMajor: 2}, nil
}

// TestProducerRequestTimeout: a stream whose answers never come is dropped
// after RequestTimeout and its batches go again on a new one.
func TestProducerRequestTimeout(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "stall", 2)
	hole := &blackhole{}
	hc := h2cClient(t, func(rt http.RoundTripper) http.RoundTripper { hole.next = rt; return hole })
	p, err := client.NewProducer(hc, ta.url, client.RequestTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	recs := []*client.Record{{Topic: "stall", Key: []byte("a"), Value: []byte("1")}, {Topic: "stall", Key: []byte("b"), Value: []byte("2")}}
	if err := p.ProduceSync(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	if !hole.used.Load() {
		t.Fatal("the first stream did not go to the black hole")
	}
	log := ta.readAll(t, "stall", 2)
	if n := len(log[0]) + len(log[1]); n != 2 {
		t.Fatalf("the topic holds %d records, want 2", n)
	}
}
