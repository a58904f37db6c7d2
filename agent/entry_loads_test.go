package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// overlapBucket holds each GetRange until want of them are waiting at once
// (or, so that a reader that never overlaps them still ends, until a
// deadline passes), and records the most that ever waited together.
type overlapBucket struct {
	objectlog.Bucket
	want int64

	waiting, most atomic.Int64
	once          sync.Once
	gate          chan struct{}
}

func newOverlapBucket(b objectlog.Bucket, want int64) *overlapBucket {
	o := &overlapBucket{Bucket: b, want: want, gate: make(chan struct{})}
	// Only a reader that never overlaps its GETs waits this long.
	time.AfterFunc(10*time.Second, func() { o.once.Do(func() { close(o.gate) }) })
	return o
}

func (o *overlapBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	n := o.waiting.Add(1)
	defer o.waiting.Add(-1)
	for m := o.most.Load(); n > m && !o.most.CompareAndSwap(m, n); m = o.most.Load() {
	}
	if n >= o.want {
		o.once.Do(func() { close(o.gate) })
	}
	select {
	case <-o.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return o.Bucket.GetRange(ctx, key, off, length)
}

// startAgentOnBucket is readEnv.startAgent reading the env's store through
// bucket.
func (e *readEnv) startAgentOnBucket(t *testing.T, bucket objectlog.Bucket) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.AdminListen = ""
	cfg.CacheBlockBytes = 4 << 10
	cfg.CacheBytes = 4 << 20
	cfg.CompactionInterval = 0
	a, err := New(t.Context(), cfg, bucket, e.index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}

// A catch-up read of a partition whose entries lie in several segments has
// their GETs in flight together, not one after the other (issue 12), and
// answers the same records and the same batch bytes as a read from the
// writer's own cache.
func TestCatchUpReadLoadsEntriesAhead(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	const segments = 4
	var want [][]byte
	for i := range segments {
		// Each write is committed before the next: one segment each.
		v := bytes.Repeat([]byte{byte('a' + i)}, 6<<10)
		want = append(want, v)
		write(t, writer, topic, 0, objectlog.NoProducer, objectlog.Record{Value: v, Timestamp: int64(i)})
	}
	entries, _, err := env.index.Lookup(t.Context(), topic.ID, 0, 0, 1<<20)
	if err != nil || len(entries) != segments {
		t.Fatalf("lookup: %d entries, %v; want %d", len(entries), err, segments)
	}
	for _, e := range entries[1:] {
		if e.SegmentKey == entries[0].SegmentKey {
			t.Fatalf("entries share segment %s: the test needs one segment per entry", e.SegmentKey)
		}
	}

	t.Run("Fetch", func(t *testing.T) {
		bucket := newOverlapBucket(env.store, segments)
		reader := env.startAgentOnBucket(t, bucket)
		resp, err := doFetch(t.Context(), reader, fetchReq(topic, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if got := offsetsOf(resp.Records); got != "0,1,2,3" {
			t.Fatalf("offsets %s, want 0,1,2,3", got)
		}
		for i, r := range resp.Records {
			if !bytes.Equal(r.Value, want[i]) {
				t.Fatalf("record %d: value differs from the one written", i)
			}
		}
		if most := bucket.most.Load(); most < segments {
			t.Fatalf("at most %d GETs were in flight together, want %d (one per segment)", most, segments)
		}
	})

	t.Run("ReadBatches", func(t *testing.T) {
		read := []BatchRead{{Topic: topic.Name, Partition: 0, Offset: 0}}
		own, err := writer.ReadBatches(t.Context(), read, 0, 1, 1<<20)
		if err != nil || own[0].Err != nil || len(own[0].Batches) == 0 {
			t.Fatalf("writer's read: %v %+v", err, own)
		}
		bucket := newOverlapBucket(env.store, segments)
		reader := env.startAgentOnBucket(t, bucket)
		got, err := reader.ReadBatches(t.Context(), read, 0, 1, 1<<20)
		if err != nil || got[0].Err != nil {
			t.Fatalf("read: %v %+v", err, got)
		}
		if !bytes.Equal(got[0].Batches, own[0].Batches) {
			t.Fatalf("the store's batches (%d bytes) differ from the writer's cached ones (%d bytes)", len(got[0].Batches), len(own[0].Batches))
		}
		if most := bucket.most.Load(); most < segments {
			t.Fatalf("at most %d GETs were in flight together, want %d (one per segment)", most, segments)
		}
	})
}

// A read whose budget fills before the lookup's last entry answers only
// what fits, in order, though later entries were loading.
func TestCatchUpReadAheadKeepsMaxBytes(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	for i := range 6 {
		write(t, writer, topic, 0, objectlog.NoProducer, objectlog.Record{Value: bytes.Repeat([]byte{byte(i)}, 3000), Timestamp: 1})
	}
	reader, _ := env.startAgent(t, nil)
	var got []int64
	for next := int64(0); next < 6; {
		req := fetchReq(topic, 0, next)
		req.MaxBytes = 7000 // two records of 3000 bytes and their framing
		resp, err := doFetch(t.Context(), reader, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Records) != 2 {
			t.Fatalf("fetch from %d: %d records, want 2", next, len(resp.Records))
		}
		for _, r := range resp.Records {
			if r.Value[0] != byte(r.Offset) {
				t.Fatalf("record %d holds the value of %d", r.Offset, r.Value[0])
			}
			got = append(got, r.Offset)
		}
		next = resp.NextOffset
	}
	if len(got) != 6 || got[5] != 5 {
		t.Fatalf("offsets %v, want 0..5", got)
	}
}

// A read that wants only the first of a partition's entries leaves the
// block cache fetching the next ones (readAheadBytes' worth), so the next
// read of the partition finds them there.
func TestCatchUpReadPrefetchesTheNextEntries(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	writer, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	for i := range 4 {
		write(t, writer, topic, 0, objectlog.NoProducer, objectlog.Record{Value: bytes.Repeat([]byte{byte(i)}, 6<<10), Timestamp: 1})
	}
	entries, _, err := env.index.Lookup(t.Context(), topic.ID, 0, 0, 1<<20)
	if err != nil || len(entries) != 4 {
		t.Fatalf("lookup: %d entries, %v; want 4", len(entries), err)
	}
	cached := func(a *Agent, e coordinator.IndexEntry) bool {
		a.cache.mu.Lock()
		defer a.cache.mu.Unlock()
		for b := e.ByteOffset / a.cache.blockSize; b <= (e.ByteOffset+e.ByteLength-1)/a.cache.blockSize; b++ {
			if _, ok := a.cache.blocks[blockID{e.SegmentKey, b}]; !ok {
				return false
			}
		}
		return true
	}
	for _, whole := range []bool{false, true} {
		reader, _ := env.startAgent(t, nil)
		if whole {
			got, err := reader.ReadBatches(t.Context(), []BatchRead{{Topic: topic.Name, Partition: 0, Offset: 0, MaxBytes: 1}}, 0, 1, 1<<20)
			if err != nil || got[0].Err != nil {
				t.Fatalf("ReadBatches of one batch: %v %+v", err, got)
			}
			if bs, err := objectlog.DecodeChunk(got[0].Batches, -1); err != nil || len(bs) != 1 || bs[0].BaseOffset != 0 {
				t.Fatalf("ReadBatches with max bytes 1: %d batches, %v; want the one at offset 0", len(bs), err)
			}
		} else {
			req := fetchReq(topic, 0, 0)
			req.MaxBytes = 7000 // one record
			resp, err := doFetch(t.Context(), reader, req)
			if err != nil || offsetsOf(resp.Records) != "0" {
				t.Fatalf("fetch of one record: %v %v", resp, err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, e := range entries[1:] {
			for !cached(reader, e) {
				if time.Now().After(deadline) {
					t.Fatalf("whole batches %v: entry at offset %d is not in the cache after the read of offset 0", whole, e.BaseOffset)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}
