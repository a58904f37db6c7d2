package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// richRecords are records with what a batch must carry exactly: null and
// empty keys and values, headers with null and empty values, timestamps.
func richRecords(topic string, n int) []*client.Record {
	base := time.UnixMilli(1_700_000_000_000).UTC()
	out := make([]*client.Record, n)
	for i := range out {
		r := &client.Record{Topic: topic, Partition: int32(i % 2), Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			Value: []byte(strings.Repeat(fmt.Sprintf("value %d ", i), 20))}
		switch i % 4 {
		case 0: // null key
		case 1:
			r.Key = []byte{}
		case 2:
			r.Key = fmt.Appendf(nil, "key-%d", i)
			r.Value = nil
		case 3:
			r.Key = fmt.Appendf(nil, "key-%d", i)
			r.Headers = []client.Header{{Key: "a", Value: []byte("1")}, {Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}}
		}
		out[i] = r
	}
	return out
}

// produceFlushed produces recs, flushes (the tests linger long, so that
// batches fill), and returns the first error.
func produceFlushed(t *testing.T, p *client.Producer, recs ...*client.Record) error {
	t.Helper()
	errs := make(chan error, len(recs))
	for _, r := range recs {
		p.Produce(t.Context(), r, func(_ *client.Record, err error) { errs <- err })
	}
	if err := p.Flush(t.Context()); err != nil {
		return err
	}
	for range recs {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func sameRecord(t *testing.T, what string, got client.Record, want *client.Record) {
	t.Helper()
	if got.Topic != want.Topic || got.Partition != want.Partition || got.Offset != want.Offset ||
		(got.Key == nil) != (want.Key == nil) || !bytes.Equal(got.Key, want.Key) ||
		(got.Value == nil) != (want.Value == nil) || !bytes.Equal(got.Value, want.Value) ||
		!got.Timestamp.Equal(want.Timestamp) || len(got.Headers) != len(want.Headers) {
		t.Fatalf("%s: got %s/%d@%d key %q (nil %v) value nil %v ts %s headers %v; want %s/%d@%d key %q (nil %v) value nil %v ts %s headers %v",
			what, got.Topic, got.Partition, got.Offset, got.Key, got.Key == nil, got.Value == nil, got.Timestamp, got.Headers,
			want.Topic, want.Partition, want.Offset, want.Key, want.Key == nil, want.Value == nil, want.Timestamp, want.Headers)
	}
	for i, h := range got.Headers {
		w := want.Headers[i]
		if h.Key != w.Key || (h.Value == nil) != (w.Value == nil) || !bytes.Equal(h.Value, w.Value) {
			t.Fatalf("%s: header %d %q=%q (nil %v), want %q=%q (nil %v)", what, i, h.Key, h.Value, h.Value == nil, w.Key, w.Value, w.Value == nil)
		}
	}
}

// TestProducerBatchCodecs: in every codec, the producer's record batches
// are stored as it compressed them and read back the same, record for
// record (null and empty keys, values and header values apart), by the
// agent's per-record Fetch and by a GroupConsumer decoding the batches.
func TestProducerBatchCodecs(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	consumer := stratav1connect.NewConsumerServiceClient(ta.http, ta.url)
	for _, codec := range []client.BatchCodec{client.BatchCodecNone, client.BatchCodecGzip, client.BatchCodecSnappy, client.BatchCodecLZ4, client.BatchCodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			topic := "codec-" + codec.String()
			ta.createTopic(t, topic, 2)
			p, err := client.NewProducer(ta.http, ta.url, client.BatchCompression(codec), client.ManualPartitioner(), client.Linger(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			recs := richRecords(topic, 40)
			if err := produceFlushed(t, p, recs...); err != nil {
				t.Fatal(err)
			}
			byOffset := map[client.TopicPartition][]*client.Record{}
			for _, r := range recs {
				tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
				if r.Offset != int64(len(byOffset[tp])) {
					t.Fatalf("record at %d/%d, want offset %d: offsets are dense in produce order", r.Partition, r.Offset, len(byOffset[tp]))
				}
				byOffset[tp] = append(byOffset[tp], r)
			}

			// Stored as compressed: the codec bits of the batch header.
			fb, err := consumer.FetchBatches(t.Context(), connect.NewRequest(&stratav1.FetchBatchesRequest{
				Partitions: []*stratav1.FetchBatchesPartition{{Topic: topic, Partition: 0}}}))
			if err != nil {
				t.Fatal(err)
			}
			raw := fb.Msg.GetPartitions()[0].GetRecordBatches()
			if len(raw) < 61 || client.BatchCodec(binary.BigEndian.Uint16(raw[21:])&7) != codec {
				t.Fatalf("stored batch attributes %x, want codec %s", raw[21:23], codec)
			}

			// The agent decodes them as Kafka batches.
			for tp, want := range byOffset {
				resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: tp.Topic, Partition: tp.Partition}))
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.Msg.GetRecords()) != len(want) {
					t.Fatalf("%v: Fetch read %d records, want %d", tp, len(resp.Msg.GetRecords()), len(want))
				}
				for i, r := range resp.Msg.GetRecords() {
					got := client.Record{Topic: r.GetTopic(), Partition: r.GetPartition(), Offset: r.GetOffset(), Key: r.Key, Value: r.Value, Timestamp: r.GetTimestamp().AsTime()}
					for _, h := range r.GetHeaders() {
						got.Headers = append(got.Headers, client.Header{Key: h.GetKey(), Value: h.Value})
					}
					sameRecord(t, fmt.Sprintf("Fetch %v record %d", tp, i), got, want[i])
				}
			}

			// The consumer decodes them itself.
			c := newConsumer(t, ta.config("g-"+topic, topic))
			seen := map[client.TopicPartition]int{}
			pollUntil(t, c, "every record", func(got []client.Record) bool {
				for _, r := range got {
					tp := client.TopicPartition{Topic: r.Topic, Partition: r.Partition}
					want := byOffset[tp]
					if seen[tp] >= len(want) {
						t.Fatalf("%v: record %d read, only %d produced", tp, r.Offset, len(want))
					}
					sameRecord(t, fmt.Sprintf("GroupConsumer %v record %d", tp, seen[tp]), r, want[seen[tp]])
					seen[tp]++
				}
				return seen[client.TopicPartition{Topic: topic, Partition: 0}]+seen[client.TopicPartition{Topic: topic, Partition: 1}] == len(recs)
			})
		})
	}
}

// TestProducerSplitsBatchOverMaxMessageBytes: a batch over the topic's
// max.message.bytes (a limit on a batch) is split and sent again, as
// Kafka's producer does on MESSAGE_TOO_LARGE; every record is written once,
// in order, without an epoch bump.
func TestProducerSplitsBatchOverMaxMessageBytes(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	_, err := ta.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: "split", Partitions: 1, Configs: map[string]string{"max.message.bytes": "1500"}}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewProducer(ta.http, ta.url, client.Linger(time.Hour), client.BatchMaxBytes(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := produceFlushed(t, p, &client.Record{Topic: "split", Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	pid, epoch := p.ProducerID()
	var recs []*client.Record
	for i := range 60 {
		recs = append(recs, &client.Record{Topic: "split", Value: fmt.Appendf(nil, "%03d %s", i, strings.Repeat("x", 90))})
	}
	if err := produceFlushed(t, p, recs...); err != nil {
		t.Fatalf("records of a batch over max.message.bytes: %v", err)
	}
	for i, r := range recs {
		if r.Offset != int64(1+i) {
			t.Fatalf("record %d at offset %d, want %d", i, r.Offset, 1+i)
		}
	}
	if pid2, epoch2 := p.ProducerID(); pid2 != pid || epoch2 != epoch {
		t.Errorf("producer %d/%d after the split, want still %d/%d", pid2, epoch2, pid, epoch)
	}
	consumer := stratav1connect.NewConsumerServiceClient(ta.http, ta.url)
	resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "split", Partition: 0, Offset: 1, MaxBytes: 1 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.Msg.GetRecords() {
		got = append(got, string(r.GetValue()[:3]))
	}
	if want := 60; len(got) != want || !slices.IsSorted(got) || resp.Msg.GetHighWatermark() != 61 {
		t.Fatalf("log holds %d records %v (hwm %d), want the 60 in order once", len(got), got, resp.Msg.GetHighWatermark())
	}
}

// fetchRecorder records the FetchBatches requests a consumer sends, and
// counts per-record Fetch calls.
type fetchRecorder struct {
	next http.RoundTripper

	mu         sync.Mutex
	partitions []int // per FetchBatches request
	fetches    int
}

func (f *fetchRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case strings.HasSuffix(req.URL.Path, "/FetchBatches"):
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var m stratav1.FetchBatchesRequest
		if err := proto.Unmarshal(body, &m); err == nil {
			f.mu.Lock()
			f.partitions = append(f.partitions, len(m.GetPartitions()))
			f.mu.Unlock()
		}
	case strings.HasSuffix(req.URL.Path, "/Fetch"):
		f.mu.Lock()
		f.fetches++
		f.mu.Unlock()
	}
	return f.next.RoundTrip(req)
}

// TestGroupConsumerFetchesAllPartitionsInOneCall: a member owning many
// partitions reads them with FetchBatches calls naming them all, never with
// per-partition Fetch calls, and gets every record once, in order per
// partition.
func TestGroupConsumerFetchesAllPartitionsInOneCall(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "multi", 6)
	ta.produce(t, "multi", 6, 0, 5)
	rec := &fetchRecorder{}
	cfg := ta.config("g-multi", "multi")
	cfg.HTTPClient = h2cClient(t, func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec })
	c := newConsumer(t, cfg)
	next := map[int32]int{}
	pollUntil(t, c, "30 records", func(recs []client.Record) bool {
		for _, r := range recs {
			if want := fmt.Sprintf("%d-%d", r.Partition, next[r.Partition]); string(r.Value) != want || r.Offset != int64(next[r.Partition]) {
				t.Fatalf("partition %d: %q at %d, want %q at %d", r.Partition, r.Value, r.Offset, want, next[r.Partition])
			}
			next[r.Partition]++
		}
		total := 0
		for _, n := range next {
			total += n
		}
		return total == 30
	})
	ta.produce(t, "multi", 6, 5, 1)
	pollUntil(t, c, "6 more", func(recs []client.Record) bool {
		for _, r := range recs {
			next[r.Partition]++
		}
		total := 0
		for _, n := range next {
			total += n
		}
		return total == 36
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.fetches != 0 {
		t.Errorf("%d per-partition Fetch calls, want none", rec.fetches)
	}
	if !slices.Contains(rec.partitions, 6) || slices.Max(rec.partitions) > 6 {
		t.Errorf("FetchBatches calls named %v partitions, want calls naming all 6 (and none more)", rec.partitions)
	}
}

// TestGroupConsumerReadCommittedDropsAbortedBatches: a read_committed
// member decodes the fetched batches and drops those of aborted
// transactions and the markers, as Kafka's consumers do with the aborted
// transactions FetchBatches lists; read_uncommitted sees them all.
func TestGroupConsumerReadCommittedDropsAbortedBatches(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "tx", 1)
	p := newTxnProducer(t, ta, "rc-app")
	for _, commit := range []bool{true, false, true} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		prefix := "a"
		if commit {
			prefix = "c"
		}
		if err := p.ProduceSync(t.Context(), values(prefix, 2)...); err != nil {
			t.Fatal(err)
		}
		var err error
		if commit {
			err = p.CommitTransaction(t.Context())
		} else {
			err = p.AbortTransaction(t.Context())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Markers take offsets 2, 5 and 8: the log ends at 9.
	read := func(group string, committed bool, n int) []string {
		cfg := ta.config(group, "tx")
		cfg.ReadCommitted = committed
		c := newConsumer(t, cfg)
		var got []string
		pollUntil(t, c, fmt.Sprintf("%d records", n), func(recs []client.Record) bool {
			for _, r := range recs {
				got = append(got, string(r.Value))
			}
			return len(got) >= n && recs != nil && recs[len(recs)-1].Offset >= 7
		})
		return got
	}
	if got, want := read("g-committed", true, 4), []string{"c0", "c1", "c0", "c1"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed: %q, want %q", got, want)
	}
	if got, want := read("g-uncommitted", false, 6), []string{"c0", "c1", "a0", "a1", "c0", "c1"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted: %q, want %q", got, want)
	}
}
