package coordinator_test

// Benchmarks of the embedded index (miniredis in process, as `strata dev`
// runs it) holding many keys, the way a dev broker's index does after a few
// million records. No services needed:
//
//	go test ./coordinator -run '^$' -bench BenchmarkEmbeddedLargeIndex -benchtime 2s
//
// The cost of one command must not grow with the number of keys: before TTLs
// were ticked on a timer (embedded.go), miniredis walked and sorted every key
// on every command.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// fillKeys adds n string keys to the index in pipelined MSETs of 1,000.
func fillKeys(b *testing.B, r *coordinator.Redis, n int) {
	b.Helper()
	ctx := context.Background()
	c := r.Client()
	const chunk = 1000
	for i := 0; i < n; i += chunk {
		pairs := make([]any, 0, 2*chunk)
		for j := i; j < min(i+chunk, n); j++ {
			pairs = append(pairs, fmt.Sprintf("fill:%09d", j), "v")
		}
		if err := c.MSet(ctx, pairs...).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEmbeddedLargeIndex runs single commands (GET) and one-batch
// segment commits (the Lua script every produce runs) on an in-memory
// embedded index holding keys extra keys, and reports commands/s.
func BenchmarkEmbeddedLargeIndex(b *testing.B) {
	for _, keys := range []int{1_000, 100_000} {
		r, err := coordinator.OpenEmbedded("", coordinator.Options{Prefix: "b:"})
		if err != nil {
			b.Fatal(err)
		}
		fillKeys(b, r, keys)
		tp := createTopic(b, r, "bench", 1)
		ctx := context.Background()
		b.Run(fmt.Sprintf("keys=%d/op=get", keys), func(b *testing.B) {
			c := r.Client()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				if err := c.Get(ctx, fmt.Sprintf("fill:%09d", i%keys)).Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commands/s")
		})
		b.Run(fmt.Sprintf("keys=%d/op=commit", keys), func(b *testing.B) {
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				if _, err := r.CommitSegment(ctx, segment(tp.ID, 0, plain(int64(i)*100, 100, 1, 1))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commands/s")
		})
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
