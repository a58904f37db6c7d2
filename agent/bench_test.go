package agent_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// Benchmarks of the whole write path against the real local MinIO and
// redis-server (make bench starts them): produce throughput and ack latency
// at several flush intervals, produce-to-subscriber latency, and object PUTs
// per second as partitions grow.

var benchSeq atomic.Int64

// countingBucket counts PUTs.
type countingBucket struct {
	objectlog.Bucket
	puts atomic.Int64
}

func (c *countingBucket) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	c.puts.Add(1)
	return c.Bucket.PutIfAbsent(ctx, key, r, size)
}

func benchAgent(b *testing.B, flush time.Duration) (*testAgent, *countingBucket) {
	b.Helper()
	s3 := testenv.MinIO(b)
	name := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano()%1e9, benchSeq.Add(1))
	mb, err := objectlog.NewMinioBucket(b.Context(), objectlog.MinioConfig{
		Bucket: name, Endpoint: s3.Endpoint, Insecure: true, CreateBucket: true,
		Credentials: &objectlog.StaticCredentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey},
	})
	if err != nil {
		b.Fatal(err)
	}
	store := &countingBucket{Bucket: mb}
	index, err := coordinator.Open(b.Context(), "redis://"+testenv.RedisAddr(b)+"/0", coordinator.Options{Prefix: name + ":"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = index.Close() })
	ta := startAgentOn(b, store, index, func(c *agent.Config) { c.FlushInterval = flush })
	return ta, store
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) report(b *testing.B, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(f float64) float64 { return float64(l.d[int(f*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), name+"-p50-ms")
	b.ReportMetric(q(0.99), name+"-p99-ms")
}

// BenchmarkProduce: 256 concurrent producers, each request 16 records of
// 1 KiB, unkeyed, to a 12-partition topic.
func BenchmarkProduce(b *testing.B) {
	for _, flush := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond} {
		b.Run("flush="+flush.String(), func(b *testing.B) {
			ta, store := benchAgent(b, flush)
			ta.createTopic(b, "bench", 12, nil)
			value := []byte(strings.Repeat("x", 1024))
			recs := make([]*stratav1.Record, 16)
			for i := range recs {
				recs[i] = &stratav1.Record{Value: value}
			}
			var lat latencies
			b.SetBytes(int64(len(recs) * len(value)))
			// 256 producers on 2 cores: enough requests in flight that a
			// flush interval's worth of data is always waiting.
			b.SetParallelism(128)
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t0 := time.Now()
					if _, err := produce(context.Background(), ta.producer, "bench", recs...); err != nil {
						b.Error(err)
						return
					}
					lat.add(time.Since(t0))
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			lat.report(b, "ack")
			b.ReportMetric(float64(store.puts.Load())/elapsed.Seconds(), "puts/s")
		})
	}
}

// BenchmarkProduceToSubscriber: one producer sends one record at a time
// carrying its send time; a Subscribe stream on the same agent measures
// when it arrives.
func BenchmarkProduceToSubscriber(b *testing.B) {
	ta, _ := benchAgent(b, 50*time.Millisecond)
	ta.createTopic(b, "e2e", 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := ta.consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{Topic: "e2e", Start: &stratav1.SubscribeRequest_Latest{Latest: true}}))
	if err != nil {
		b.Fatal(err)
	}
	var lat latencies
	got := make(chan struct{}, 1024)
	go func() {
		for stream.Receive() {
			for _, r := range stream.Msg().GetRecords() {
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(r.GetValue())))
				lat.add(time.Since(sent))
				got <- struct{}{}
			}
		}
	}()
	// Let the subscription settle at the high watermark.
	time.Sleep(100 * time.Millisecond)
	b.ResetTimer()
	for b.Loop() {
		v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		if _, err := produce(ctx, ta.producer, "e2e", &stratav1.Record{Value: v}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			b.Fatal("subscriber saw nothing for 5s")
		}
	}
	b.StopTimer()
	lat.report(b, "e2e")
}

// BenchmarkPutsPerPartitions: the same load spread over 1, 100 and 1000
// partitions; PUTs per second must stay at about one per flush interval.
func BenchmarkPutsPerPartitions(b *testing.B) {
	for _, parts := range []int32{1, 100, 1000} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			ta, store := benchAgent(b, 50*time.Millisecond)
			ta.createTopic(b, "wide", parts, nil)
			value := []byte(strings.Repeat("y", 1024))
			b.SetBytes(4 * 1024)
			b.SetParallelism(32)
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					recs := make([]*stratav1.Record, 4)
					for i := range recs {
						p := rand.Int32N(parts)
						recs[i] = &stratav1.Record{Value: value, Partition: &p}
					}
					if _, err := produce(context.Background(), ta.producer, "wide", recs...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(store.puts.Load())/elapsed.Seconds(), "puts/s")
		})
	}
}
