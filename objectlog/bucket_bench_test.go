package objectlog_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

// BenchmarkBucket measures puts, whole gets and 64 KiB ranged gets on the
// filesystem backend and on both S3 backends against the local MinIO, at
// 1 MiB and 8 MiB objects (8 MiB is the default segment size), one and
// eight requests at a time. MB/s is the aggregate throughput; p50-ms and
// p99-ms are per-request latencies.
func BenchmarkBucket(b *testing.B) {
	s := testenv.MinIO(b)
	backends := []struct {
		name string
		open func(b *testing.B) objectlog.Bucket
	}{
		{"fs", func(b *testing.B) objectlog.Bucket {
			bkt, err := objectlog.NewFSBucket(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			return bkt
		}},
		{"minio-go", func(b *testing.B) objectlog.Bucket { return newMinioBucket(b, s, testBucketName(b), "", nil) }},
		{"aws-sdk-go-v2", func(b *testing.B) objectlog.Bucket { return newAWSBucket(b, s, testBucketName(b), "", nil) }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			bkt := be.open(b)
			defer bkt.Close()
			for _, size := range []int{1 << 20, 8 << 20} {
				data := make([]byte, size)
				for i := range data {
					data[i] = byte(i * 7)
				}
				// Objects for the reads, written once.
				const readObjects = 8
				for i := range readObjects {
					key := fmt.Sprintf("read/%d/%d", size, i)
					if err := bkt.PutIfAbsent(b.Context(), key, bytes.NewReader(data), int64(size)); err != nil {
						b.Fatal(err)
					}
				}
				sizeName := fmt.Sprintf("%dMiB", size>>20)
				for _, conc := range []int{1, 8} {
					concName := fmt.Sprintf("c%d", conc)
					var seq atomic.Int64
					b.Run("Put/"+sizeName+"/"+concName, func(b *testing.B) {
						b.SetBytes(int64(size))
						runConcurrent(b, conc, func(_ *rand.Rand) error {
							key := fmt.Sprintf("put/%d/%d/%d", size, conc, seq.Add(1))
							return bkt.PutIfAbsent(b.Context(), key, bytes.NewReader(data), int64(size))
						})
					})
					b.Run("Get/"+sizeName+"/"+concName, func(b *testing.B) {
						b.SetBytes(int64(size))
						runConcurrent(b, conc, func(r *rand.Rand) error {
							rc, err := bkt.Get(b.Context(), fmt.Sprintf("read/%d/%d", size, r.IntN(readObjects)))
							if err != nil {
								return err
							}
							defer rc.Close()
							n, err := io.Copy(io.Discard, rc)
							if err == nil && n != int64(size) {
								err = fmt.Errorf("read %d bytes, want %d", n, size)
							}
							return err
						})
					})
					const chunk = 64 << 10
					b.Run("GetRange64KiB/"+sizeName+"/"+concName, func(b *testing.B) {
						b.SetBytes(chunk)
						runConcurrent(b, conc, func(r *rand.Rand) error {
							off := int64(r.IntN(size/chunk)) * chunk
							rc, err := bkt.GetRange(b.Context(), fmt.Sprintf("read/%d/%d", size, r.IntN(readObjects)), off, chunk)
							if err != nil {
								return err
							}
							defer rc.Close()
							n, err := io.Copy(io.Discard, rc)
							if err == nil && n != chunk {
								err = fmt.Errorf("read %d bytes, want %d", n, chunk)
							}
							return err
						})
					})
				}
			}
		})
	}
}

// runConcurrent runs b.N calls of op on conc goroutines and reports the
// latency percentiles.
func runConcurrent(b *testing.B, conc int, op func(r *rand.Rand) error) {
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		wg        sync.WaitGroup
		failed    atomic.Pointer[error]
	)
	b.ResetTimer()
	for g := range conc {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				if err := op(r); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		i := min(int(p*float64(len(latencies))), len(latencies)-1)
		return float64(latencies[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
