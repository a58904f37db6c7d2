package coordinator_test

// Benchmarks against the real redis-server started by
// scripts/test-services.sh:
//
//	scripts/test-services.sh go test ./coordinator -run '^$' -bench . -benchtime 3s

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
)

// roundTrips counts the requests a client sends: one per command outside a
// pipeline, one per pipeline. A new connection's handshake (HELLO, CLIENT
// SETINFO) also passes the hooks; it is not commit traffic and not counted.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "client", "select":
		return true
	}
	return false
}

func benchRedis(b *testing.B) (*coordinator.Redis, *roundTrips) {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b)})
	rt := &roundTrips{}
	c.AddHook(rt)
	r := mustRedis(b, c, coordinator.Options{})
	b.Cleanup(func() { cleanupPrefix(b, c, r.Options().Prefix) })
	return r, rt
}

// cleanupPrefix deletes a benchmark's keys from the shared server.
func cleanupPrefix(b *testing.B, c *redis.Client, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			c.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Unlink(ctx, keys...)
	}
	if err := iter.Err(); err != nil {
		b.Logf("cleanup: %v", err)
	}
}

// BenchmarkCommitSegment commits segments whose chunks cover 1, 10 or 100
// partitions, one batch each, one at a time (latency) and from 16
// goroutines (throughput).
func BenchmarkCommitSegment(b *testing.B) {
	for _, parts := range []int{1, 10, 100} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("partitions=%d/goroutines=%d", parts, par), func(b *testing.B) {
				r, rt := benchRedis(b)
				tp := createTopic(b, r, "bench", 100)
				var seq atomic.Int64
				one := func() {
					sid := fmt.Sprintf("s%d", seq.Add(1))
					c := coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "segments/01JBENCH" + sid}
					for p := range parts {
						c.Chunks = append(c.Chunks, coordinator.ChunkCommit{TopicID: tp.ID, Partition: int32(p),
							Batches: []coordinator.BatchCommit{plain(int64(p)*1000, 1000, 10, time.Now().UnixMilli())}})
					}
					if _, err := r.CommitSegment(context.Background(), c); err != nil {
						b.Error(err)
					}
				}
				before := rt.n.Load()
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				var next atomic.Int64
				for range par {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							one()
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
				b.ReportMetric(float64(b.N*parts)/elapsed.Seconds(), "chunks/s")
				b.ReportMetric(float64(rt.n.Load()-before)/float64(b.N), "roundtrips/commit")
			})
		}
	}
}

// BenchmarkLookup looks up random offsets in a partition of 10,000 index
// entries of 16 KiB and reports the latency percentiles, for a fetch of one
// entry and for a 1 MiB fetch (64 entries).
func BenchmarkLookup(b *testing.B) {
	r, _ := benchRedis(b)
	tp := createTopic(b, r, "bench", 1)
	const entries = 10000
	fill(b, r, tp, entries, 16<<10)
	for _, maxBytes := range []int64{1, 1 << 20} {
		b.Run(fmt.Sprintf("maxBytes=%d", maxBytes), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				off := rng.Int64N(entries * 10)
				start := time.Now()
				es, _, err := r.Lookup(context.Background(), tp.ID, 0, off, maxBytes)
				lat = append(lat, time.Since(start))
				if err != nil || len(es) == 0 {
					b.Fatalf("Lookup(%d): %v %v", off, es, err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// fill commits n one-batch segments of 10 records and size bytes each to
// partition 0, from several goroutines.
func fill(b *testing.B, r *coordinator.Redis, tp coordinator.Topic, n int, size int64) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				sid := fmt.Sprintf("01JBENCHSEGMENT%011d", i)
				c := segment(tp.ID, 0, plain(i*size%(8<<20), size, 10, 1_700_000_000_000+i))
				c.SegmentID, c.SegmentKey = sid, "segments/"+sid
				if _, err := r.CommitSegment(context.Background(), c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkIndexEntryMemory reports what one index entry costs in Redis
// memory (MEMORY USAGE of the partition's keys over 10,000 entries): the
// log entry, its time-index entry and its idempotence record in segs.
func BenchmarkIndexEntryMemory(b *testing.B) {
	for range b.N {
		r, _ := benchRedis(b)
		tp := createTopic(b, r, "bench", 1)
		const entries = 10000
		fill(b, r, tp, entries, 1000)
		c := r.Client()
		ctx := context.Background()
		prefix := r.Options().Prefix + "{t:" + tp.ID.String() + ":0}:"
		usage := func(name string) float64 {
			n, err := c.MemoryUsage(ctx, prefix+name, 0).Result() // 0: every element, no sampling
			if err != nil {
				b.Fatalf("MEMORY USAGE %s: %v", name, err)
			}
			return float64(n)
		}
		log, tim, segs := usage("log"), usage("time"), usage("segs")
		b.ReportMetric(log/entries, "log-B/entry")
		b.ReportMetric(tim/entries, "time-B/entry")
		b.ReportMetric(segs/entries, "segs-B/entry")
		b.ReportMetric((log+tim+segs)/entries, "total-B/entry")
	}
}

// BenchmarkEmbeddedJanitorWrites measures, on an embedded index persisted
// to a data directory and holding a large index (entries partitions x
// segments), the janitor's bookkeeping writes (ForgetSegment,
// DeleteSegmentRefs) and, for comparison, a segment commit, whose
// durability point is a whole snapshot:
//
//	go test ./coordinator -run '^$' -bench EmbeddedJanitorWrites -benchtime 20x
func BenchmarkEmbeddedJanitorWrites(b *testing.B) {
	const partitions, segments = 10, 300
	dir := b.TempDir()
	ctx := context.Background()
	fill, err := coordinator.OpenEmbedded(dir, coordinator.Options{EmbeddedAsyncWrites: true})
	if err != nil {
		b.Fatal(err)
	}
	tp := createTopic(b, fill, "bench", partitions)
	for s := range segments {
		sid := fmt.Sprintf("s%d", s)
		c := coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "segments/01JBENCH" + sid}
		for p := range partitions {
			c.Chunks = append(c.Chunks, coordinator.ChunkCommit{TopicID: tp.ID, Partition: int32(p),
				Batches: []coordinator.BatchCommit{plain(int64(p)*1000, 1000, 10, time.Now().UnixMilli())}})
		}
		if _, err := fill.CommitSegment(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if err := fill.Close(); err != nil {
		b.Fatal(err)
	}
	r, err := coordinator.OpenEmbedded(dir, coordinator.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	b.Run("ForgetSegment", func(b *testing.B) {
		i := 0
		for b.Loop() {
			sid := fmt.Sprintf("s%d", i%segments)
			if err := r.ForgetSegment(ctx, tp.ID, int32(i%partitions), sid, "segments/01JBENCH"+sid); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("DeleteSegmentRefs", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if err := r.DeleteSegmentRefs(ctx, fmt.Sprintf("s%d", i%segments)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("CommitSegment", func(b *testing.B) {
		i := 0
		for b.Loop() {
			sid := fmt.Sprintf("new%d", i)
			c := coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "segments/01JBENCH" + sid, Chunks: []coordinator.ChunkCommit{{
				TopicID: tp.ID, Batches: []coordinator.BatchCommit{plain(0, 1, 10, time.Now().UnixMilli())}}}}
			if _, err := r.CommitSegment(ctx, c); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
