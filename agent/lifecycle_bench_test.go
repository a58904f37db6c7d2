//go:build unix

package agent

// Benchmarks of the data lifecycle (DESIGN.md "Compaction, retention,
// archive"), run by `make bench-go` and scripts/bench.sh:
//   - BenchmarkCompaction: MiB/s of records compacted into the archive and
//     the process's CPU time per MiB (getrusage around the work);
//   - BenchmarkCatchUp: a cold agent reading a partition from the start, from
//     hot segments and from the archive (MB/s and the process's CPU time per
//     MiB), record by record (read=) and in whole batches (batches=), and
//     raw GETs of the same byte ranges, in one run, on the filesystem store
//     and MinIO;
//   - BenchmarkIndexMemory: redis-server's MEMORY USAGE of one partition's
//     keys after 10,000 flushes, after compaction and after the janitor.
// The index is the real redis-server when scripts/test-services.sh runs
// (STRATA_TEST_REDIS_ADDR), else the embedded one; MinIO sub-benchmarks
// run only when STRATA_TEST_S3_ENDPOINT is set.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// lifecycleBenchBatches flushes of lifecycleBenchRecords JSON-like records
// (about 230 bytes of key, value and header each): some 7 MiB.
const (
	lifecycleBenchBatches = 64
	lifecycleBenchRecords = 500
)

// benchStores are the stores the benchmarks run on.
func benchStores(b *testing.B) map[string]func(b *testing.B) objectlog.Bucket {
	stores := map[string]func(b *testing.B) objectlog.Bucket{
		"fs": func(b *testing.B) objectlog.Bucket {
			bk, err := objectlog.NewFSBucket(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { bk.Close() })
			return bk
		},
	}
	if os.Getenv("STRATA_TEST_S3_ENDPOINT") != "" {
		stores["minio"] = func(b *testing.B) objectlog.Bucket {
			s3 := testenv.MinIO(b)
			mb, err := objectlog.NewMinioBucket(b.Context(), objectlog.MinioConfig{
				Bucket: "bench-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16], Endpoint: s3.Endpoint, Insecure: true, CreateBucket: true,
				Credentials: &objectlog.StaticCredentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey},
			})
			if err != nil {
				b.Fatal(err)
			}
			return mb
		}
	}
	return stores
}

// benchIndex is redis-server under scripts/test-services.sh, else embedded.
func benchIndex(b *testing.B) *coordinator.Redis {
	url := "memory://"
	if addr := os.Getenv("STRATA_TEST_REDIS_ADDR"); addr != "" {
		url = "redis://" + addr + "/0"
	}
	r, err := coordinator.Open(b.Context(), url, coordinator.Options{Prefix: "bench-" + uuid.NewString() + ":"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r
}

func benchLifecycleAgent(b *testing.B, store objectlog.Bucket, index Index) *Agent {
	cfg := DefaultConfig()
	cfg.FlushInterval = 2 * time.Millisecond
	cfg.AdminListen = ""
	manualCompaction(&cfg)
	a, err := New(b.Context(), cfg, store, index, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}

// jsonRecords is one flush of click events, an hour old; it returns the
// records and their bytes (keys, values, headers).
func jsonRecords(r *rand.Rand, n int) ([]objectlog.Record, int64) {
	events := []string{"page_view", "click", "add_to_cart", "purchase", "search"}
	countries := []string{"DE", "FR", "US", "JP", "BR", "IN"}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	recs := make([]objectlog.Record, n)
	var size int64
	for i := range recs {
		user := r.IntN(100_000)
		rec := objectlog.Record{Timestamp: ts + int64(i), Key: fmt.Appendf(nil, "user-%011d", user),
			Value: fmt.Appendf(nil, `{"event":%q,"user_id":%d,"session":"%016x","url":"/products/%d?ref=home","ts":%d,"props":{"country":%q,"price":%d.%02d}}`,
				events[r.IntN(len(events))], user, r.Uint64(), r.IntN(5000), ts+int64(i), countries[r.IntN(len(countries))], r.IntN(500), r.IntN(100)),
			Headers: []objectlog.Header{{Key: "trace-id", Value: fmt.Appendf(nil, "%016x", r.Uint64())}}}
		size += int64(len(rec.Key) + len(rec.Value) + len("trace-id") + 16)
		recs[i] = rec
	}
	return recs, size
}

// fillPartition writes flushes batches of JSON records to a new one-partition
// topic, one flush each, and returns the topic and the record bytes.
func fillPartition(b *testing.B, a *Agent, index *coordinator.Redis, flushes int) (coordinator.Topic, int64) {
	topic, err := index.CreateTopic(b.Context(), "t-"+uuid.NewString(), coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, uint64(flushes)))
	var total int64
	for range flushes {
		recs, size := jsonRecords(r, lifecycleBenchRecords)
		total += size
		spec := objectlog.NoProducer
		spec.Codec = objectlog.CodecZstd
		pending, err := a.batcher.append(b.Context(), []partitionBatch{{key: partitionKey{topic.ID, 0}, spec: spec, records: recs}})
		if err != nil {
			b.Fatal(err)
		}
		if err := pending[0].wait(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	return topic, total
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompaction: MB/s of record bytes (keys, values, headers) moved
// from 64 hot flushes (zstd) into the archive by one RunCompaction, and the
// CPU milliseconds the whole process spent per MiB of records (the
// compactor's reads, decoding, Parquet encoding and zstd; the store and
// redis-server run in other processes, except the embedded index).
func BenchmarkCompaction(b *testing.B) {
	for name, newStore := range benchStores(b) {
		b.Run("store="+name, func(b *testing.B) {
			store, index := newStore(b), benchIndex(b)
			a := benchLifecycleAgent(b, store, index)
			var cpu time.Duration
			var recordBytes, archiveBytes, hotBytes int64
			for b.Loop() {
				b.StopTimer()
				_, size := fillPartition(b, a, index, lifecycleBenchBatches)
				c0 := cpuTime(b)
				b.StartTimer()
				rep, err := a.RunCompaction(b.Context(), time.Now())
				b.StopTimer()
				cpu += cpuTime(b) - c0
				if err != nil || rep.Records != lifecycleBenchBatches*lifecycleBenchRecords {
					b.Fatalf("compaction %+v: %v", rep, err)
				}
				recordBytes += size
				archiveBytes += rep.BytesWritten
				hotBytes += rep.BytesRemoved
				b.StartTimer()
			}
			b.SetBytes(recordBytes / int64(b.N))
			mib := float64(recordBytes) / (1 << 20)
			b.ReportMetric(float64(cpu.Milliseconds())/mib, "cpu-ms/MiB")
			b.ReportMetric(float64(hotBytes)/float64(b.N), "hot-bytes")
			b.ReportMetric(float64(archiveBytes)/float64(b.N), "archive-bytes")
		})
	}
}

// BenchmarkCatchUp: a consumer reading a whole partition from its start
// through an agent with a cold cache (a new one each time), in fetches of
// 1 MiB, when the partition is hot segments and when it is archive; and raw
// ranged GETs of the same index entries' bytes (what the store alone
// costs). MB/s are of record bytes in each case, so they compare.
func BenchmarkCatchUp(b *testing.B) {
	for name, newStore := range benchStores(b) {
		b.Run("store="+name, func(b *testing.B) {
			store, index := newStore(b), benchIndex(b)
			writer := benchLifecycleAgent(b, store, index)
			hot, size := fillPartition(b, writer, index, lifecycleBenchBatches)
			archived, _ := fillPartition(b, writer, index, lifecycleBenchBatches)
			// Compact only the second topic: the first stays hot.
			if _, err := index.UpdateTopicConfig(b.Context(), hot.Name, map[string]string{coordinator.ConfigArchiveAfterMs: "-1"}); err != nil {
				b.Fatal(err)
			}
			if rep, err := writer.RunCompaction(b.Context(), time.Now()); err != nil || rep.Partitions != 1 {
				b.Fatalf("compaction %+v: %v", rep, err)
			}
			for _, tc := range []struct {
				name  string
				topic coordinator.Topic
			}{{"hot", hot}, {"archive", archived}} {
				entries, _, err := index.Lookup(b.Context(), tc.topic.ID, 0, 0, 1<<50)
				if err != nil {
					b.Fatal(err)
				}
				if archivedEntry := entries[0].Archived(); archivedEntry != (tc.name == "archive") {
					b.Fatalf("%s: first entry %+v", tc.name, entries[0])
				}
				b.Run("read="+tc.name, func(b *testing.B) {
					b.SetBytes(size)
					// CPU time as well as MB/s: on a loaded machine the
					// wall time is mostly the scheduler's share.
					var cpu time.Duration
					for b.Loop() {
						b.StopTimer()
						reader := benchLifecycleAgent(b, store, index)
						c0 := cpuTime(b)
						b.StartTimer()
						n := 0
						for off := int64(0); ; {
							resp, err := doFetch(b.Context(), reader, &stratav1.FetchRequest{Topic: tc.topic.Name, Offset: off, MaxBytes: 1 << 20})
							if err != nil {
								b.Fatal(err)
							}
							n += len(resp.Records)
							off = resp.NextOffset
							if off >= resp.HighWatermark {
								break
							}
						}
						b.StopTimer()
						cpu += cpuTime(b) - c0
						b.StartTimer()
						if n != lifecycleBenchBatches*lifecycleBenchRecords {
							b.Fatalf("read %d records", n)
						}
					}
					b.ReportMetric(float64(cpu.Microseconds())/1000/(float64(size)*float64(b.N)/(1<<20)), "cpu-ms/MiB")
				})
				// The whole-batch reads (Kafka's Fetch, FetchBatches) of
				// the same partition, in reads of 1 MiB.
				b.Run("batches="+tc.name, func(b *testing.B) {
					b.SetBytes(size)
					var cpu time.Duration
					for b.Loop() {
						b.StopTimer()
						reader := benchLifecycleAgent(b, store, index)
						c0 := cpuTime(b)
						b.StartTimer()
						n := 0
						for off := int64(0); ; {
							res, err := reader.ReadBatches(b.Context(), []BatchRead{{Topic: tc.topic.Name, Offset: off}}, 0, 0, 1<<20)
							if err == nil {
								err = res[0].Err
							}
							if err != nil {
								b.Fatal(err)
							}
							n += batchRecords(res[0].Batches, off, nil)
							for bs := res[0].Batches; len(bs) >= batchHeaderBytes; bs = bs[12+binary.BigEndian.Uint32(bs[8:]):] {
								off = int64(binary.BigEndian.Uint64(bs)) + int64(binary.BigEndian.Uint32(bs[batchLastOffsetDeltaAt:])) + 1
							}
							if off >= res[0].HighWatermark {
								break
							}
						}
						b.StopTimer()
						cpu += cpuTime(b) - c0
						b.StartTimer()
						if n != lifecycleBenchBatches*lifecycleBenchRecords {
							b.Fatalf("read %d records", n)
						}
					}
					b.ReportMetric(float64(cpu.Microseconds())/1000/(float64(size)*float64(b.N)/(1<<20)), "cpu-ms/MiB")
				})
				b.Run("raw-get="+tc.name, func(b *testing.B) {
					b.SetBytes(size)
					var stored int64
					for _, e := range entries {
						stored += e.ByteLength
					}
					for b.Loop() {
						var got int64
						for _, e := range entries {
							rc, err := store.GetRange(b.Context(), e.SegmentKey, e.ByteOffset, e.ByteLength)
							if err != nil {
								b.Fatal(err)
							}
							n, err := io.Copy(io.Discard, rc)
							rc.Close()
							if err != nil {
								b.Fatal(err)
							}
							got += n
						}
						if got != stored {
							b.Fatalf("read %d bytes of %d", got, stored)
						}
					}
					b.ReportMetric(float64(stored), "stored-bytes")
					b.ReportMetric(float64(len(entries)), "entries")
				})
			}
		})
	}
}

// BenchmarkIndexMemory: redis-server's MEMORY USAGE (SAMPLES 0) summed over
// one partition's keys and its segments' keys after 10,000 flushes of one
// record each, after their compaction, and after the janitor deleted the
// segments (run as if the grace periods had passed); ns/op is the
// compaction of the 10,000 entries (several passes of at most
// maxCompactEntries). Needs redis-server: the embedded index has no
// MEMORY USAGE.
func BenchmarkIndexMemory(b *testing.B) {
	addr := os.Getenv("STRATA_TEST_REDIS_ADDR")
	if addr == "" {
		b.Fatal("BenchmarkIndexMemory needs redis-server: run it under scripts/test-services.sh")
	}
	const flushes = 10_000
	for b.Loop() {
		b.StopTimer()
		store, err := objectlog.NewFSBucket(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		prefix := "bench-mem-" + uuid.NewString() + ":"
		index, err := coordinator.Open(b.Context(), "redis://"+addr+"/0", coordinator.Options{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		a := benchLifecycleAgent(b, store, index)
		topic, err := index.CreateTopic(b.Context(), "mem", coordinator.TopicConfig{Partitions: 1})
		if err != nil {
			b.Fatal(err)
		}
		commitFlushes(b, store, index, topic, flushes)
		rdb := index.Client()
		before := memoryUsage(b, rdb, prefix)
		// The compactor replaces at most maxCompactEntries entries a pass.
		var archived int64
		b.StartTimer()
		for {
			rep, err := a.RunCompaction(b.Context(), time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if rep.Partitions == 0 {
				break
			}
			archived += rep.Records
		}
		b.StopTimer()
		if archived != flushes {
			b.Fatalf("compaction archived %d records of %d", archived, flushes)
		}
		after := memoryUsage(b, rdb, prefix)
		later := time.Now().Add(24 * time.Hour)
		for {
			jr, err := a.RunJanitor(b.Context(), later)
			if err != nil {
				b.Fatal(err)
			}
			if jr.SegmentsDeleted == 0 {
				break
			}
		}
		collected := memoryUsage(b, rdb, prefix)
		for _, f := range []struct {
			when string
			f    indexFigures
		}{{"before", before}, {"compacted", after}, {"collected", collected}} {
			b.Logf("after %d flushes, %s: %d keys, %d bytes; of which the partition's %d keys, %d bytes",
				flushes, f.when, f.f.keys, f.f.bytes, f.f.partitionKeys, f.f.partitionBytes)
		}
		b.ReportMetric(float64(before.partitionBytes), "partition-bytes-before")
		b.ReportMetric(float64(after.partitionBytes), "partition-bytes-compacted")
		b.ReportMetric(float64(before.bytes), "bytes-before")
		b.ReportMetric(float64(before.keys), "keys-before")
		b.ReportMetric(float64(after.bytes), "bytes-compacted")
		b.ReportMetric(float64(after.keys), "keys-compacted")
		b.ReportMetric(float64(collected.bytes), "bytes-collected")
		b.ReportMetric(float64(collected.keys), "keys-collected")
		b.StartTimer()
	}
}

// indexFigures are the keys under a prefix and their MEMORY USAGE; part
// of them the partition's own (its hash tag {t:<topic id>:<p>}), the rest
// mostly per-segment reference keys ({s:<segment id>}) and the topic's.
type indexFigures struct{ keys, bytes, partitionKeys, partitionBytes int64 }

func memoryUsage(b *testing.B, rdb redis.UniversalClient, prefix string) indexFigures {
	var f indexFigures
	iter := rdb.Scan(b.Context(), 0, prefix+"*", 1000).Iterator()
	for iter.Next(b.Context()) {
		n, err := rdb.MemoryUsage(b.Context(), iter.Val(), 0).Result()
		if err != nil {
			b.Fatalf("MEMORY USAGE %s: %v", iter.Val(), err)
		}
		f.keys++
		f.bytes += n
		if strings.Contains(iter.Val(), "{t:") {
			f.partitionKeys++
			f.partitionBytes += n
		}
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	return f
}

// commitFlushes uploads and commits n one-record segments to partition 0,
// as n flushes of the batcher would (8 at a time: the offsets they get do
// not matter here).
func commitFlushes(b *testing.B, store objectlog.Bucket, index *coordinator.Redis, topic coordinator.Topic, n int) {
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 8)
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := commitOne(b.Context(), store, index, topic, i, ts); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			wg.Wait()
			b.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func commitOne(ctx context.Context, store objectlog.Bucket, index *coordinator.Redis, topic coordinator.Topic, i int, ts int64) error {
	w := objectlog.NewSegmentWriter()
	rec := objectlog.Record{Key: fmt.Appendf(nil, "user-%06d", i%1000), Value: fmt.Appendf(nil, `{"n":%d,"event":"click"}`, i), Timestamp: ts + int64(i)}
	if _, err := w.AppendRecords(topic.ID, 0, objectlog.NoProducer, []objectlog.Record{rec}); err != nil {
		return err
	}
	data, footer, err := w.Finish()
	if err != nil {
		return err
	}
	id := ulid.Make().String()
	key := segmentPrefix + id + ".seg"
	if err := store.PutIfAbsent(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return err
	}
	c := footer.Chunks[0]
	commit := coordinator.SegmentCommit{SegmentID: id, SegmentKey: key, Chunks: []coordinator.ChunkCommit{{TopicID: topic.ID, Partition: 0}}}
	for _, bi := range c.Batches {
		commit.Chunks[0].Batches = append(commit.Chunks[0].Batches, coordinator.BatchCommit{ByteOffset: bi.ByteOffset, ByteLength: int64(bi.ByteLength),
			Records: bi.Records, MaxTimestamp: bi.MaxTimestamp, ProducerID: bi.ProducerID, ProducerEpoch: bi.ProducerEpoch, BaseSequence: bi.BaseSequence})
	}
	res, err := index.CommitSegment(ctx, commit)
	if err != nil {
		return err
	}
	return res[0].Batches[0].Err
}
