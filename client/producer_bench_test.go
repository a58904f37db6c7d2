package client_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/client"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

// Benchmarks of issue 11's targets, each on two backends:
// store=fs,index=miniredis (a filesystem store and the embedded index, in
// process) and store=minio,index=redis-server (the local MinIO and
// redis-server of scripts/test-services.sh, skipped without them). The
// agent is in process, 5ms flushes.
//
//	go test -run '^$' -bench BenchmarkProducerIdempotence -benchtime 2000000x -count 3 ./client/
//	go test -run '^$' -bench BenchmarkTransactionCommit -benchtime 1000x -count 3 ./client/
//
// and the same under scripts/test-services.sh for MinIO and redis-server.

var benchSeq int

// onBackends runs bench on an agent of each backend.
func onBackends(b *testing.B, bench func(b *testing.B, ta *testAgent)) {
	b.Run("store=fs,index=miniredis", func(b *testing.B) {
		store, err := objectlog.NewFSBucket(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		index, err := coordinator.Open(b.Context(), "memory://", coordinator.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = index.Close() })
		bench(b, startAgentOn(b, store, index, nil))
	})
	b.Run("store=minio,index=redis-server", func(b *testing.B) {
		if os.Getenv("STRATA_TEST_S3_ENDPOINT") == "" {
			b.Skip("needs MinIO and redis-server: run under scripts/test-services.sh")
		}
		s3 := testenv.MinIO(b)
		benchSeq++
		name := fmt.Sprintf("bench-client-%d-%d", time.Now().UnixNano()%1e9, benchSeq)
		store, err := objectlog.NewMinioBucket(b.Context(), objectlog.MinioConfig{
			Bucket: name, Endpoint: s3.Endpoint, Insecure: true, CreateBucket: true,
			Credentials: &objectlog.StaticCredentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey},
		})
		if err != nil {
			b.Fatal(err)
		}
		index, err := coordinator.Open(b.Context(), "redis://"+testenv.RedisAddr(b)+"/0", coordinator.Options{Prefix: name + ":"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = index.Close() })
		bench(b, startAgentOn(b, store, index, nil))
	})
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkProducerIdempotence compares produce throughput with idempotence
// on and off in one run (issue 11's target: less than 5% apart). Both
// producers write to one agent, each to its own 16-partition topic, in
// rounds of 100000 keyed 100-byte records (long against the 5ms flush
// ticks, whose phase otherwise moves a round by several percent), taking
// turns inside each round
// and swapping who goes first every round, so that a loaded machine's
// drifts (and the garbage one mode leaves the other) hit both alike. b.N
// records go through each producer. The metrics are the medians over the
// rounds of each mode's records/s and of the per-round ratio on/off (with
// the lowest and highest ratio): a median is not moved by the one round a
// neighbour's build slowed down.
func BenchmarkProducerIdempotence(b *testing.B) {
	onBackends(b, benchIdempotence)
}

func benchIdempotence(b *testing.B, ta *testAgent) {
	value := make([]byte, 100)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	type mode struct {
		topic string
		p     *client.Producer
		rates []float64
	}
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
	}
	run := func(m *mode, n int) float64 {
		start := time.Now()
		for i := range n {
			m.p.Produce(b.Context(), &client.Record{Topic: m.topic, Key: keys[i%len(keys)], Value: value}, promise)
		}
		if err := m.p.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	var modes []*mode
	for _, idempotent := range []bool{true, false} {
		m := &mode{topic: fmt.Sprintf("bench-idempotent-%v", idempotent)}
		ta.createTopic(b, m.topic, 16)
		var opts []client.ProducerOpt
		if !idempotent {
			opts = append(opts, client.DisableIdempotence())
		}
		p, err := client.NewProducer(ta.http, ta.url, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		m.p = p
		run(m, 20000) // warm up: connection, producer id, buffers
		modes = append(modes, m)
	}
	on, off := modes[0], modes[1]
	var ratios []float64
	b.SetBytes(2 * int64(len(value)+8))
	b.ResetTimer()
	const round = 100000
	for done, i := 0, 0; done < b.N; done, i = done+round, i+1 {
		n := min(round, b.N-done)
		var rOn, rOff float64
		if i%2 == 0 {
			rOn, rOff = run(on, n), run(off, n)
		} else {
			rOff, rOn = run(off, n), run(on, n)
		}
		on.rates, off.rates = append(on.rates, rOn), append(off.rates, rOff)
		ratios = append(ratios, rOn/rOff)
	}
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(median(on.rates), "on-records/s")
	b.ReportMetric(median(off.rates), "off-records/s")
	b.ReportMetric(median(ratios), "on/off-median")
	b.ReportMetric(slices.Min(ratios), "on/off-min")
	b.ReportMetric(slices.Max(ratios), "on/off-max")
}

// BenchmarkTransactionCommit measures transactions of 100 keyed 100-byte
// records each over a 4-partition topic, one after another from one
// transactional producer (KIP-98's producer loop: begin, produce, commit).
// Metrics: the commit latency (CommitTransaction: it waits for the records,
// then EndTxn writes the markers and completes) at p50 and p99, the whole
// transaction's p50, and transactions/s. b.N is the number of
// transactions.
func BenchmarkTransactionCommit(b *testing.B) {
	onBackends(b, benchTransactions)
}

func benchTransactions(b *testing.B, ta *testAgent) {
	const perTxn = 100
	ta.createTopic(b, "bench-txn", 4)
	p, err := client.NewProducer(ta.http, ta.url, client.TransactionalID("bench-txn", 0), client.Linger(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close(context.Background()) })
	if err := p.InitTransactions(b.Context()); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	recs := make([]client.Record, perTxn)
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
	}
	txn := func(i int) (commit time.Duration) {
		if err := p.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for j := range recs {
			recs[j] = client.Record{Topic: "bench-txn", Key: fmt.Appendf(nil, "k%d", (i*perTxn+j)%64), Value: value}
			p.Produce(b.Context(), &recs[j], promise)
		}
		start := time.Now()
		if err := p.CommitTransaction(b.Context()); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for i := range 5 { // warm up: connection, AddPartitionsToTxn paths
		txn(i)
	}
	commits := make([]float64, 0, b.N)
	totals := make([]float64, 0, b.N)
	b.SetBytes(perTxn * int64(len(value)))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		t0 := time.Now()
		c := txn(i)
		commits = append(commits, float64(c)/float64(time.Millisecond))
		totals = append(totals, float64(time.Since(t0))/float64(time.Millisecond))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	slices.Sort(commits)
	pct := func(xs []float64, q float64) float64 { return xs[min(len(xs)-1, int(q*float64(len(xs))))] }
	b.ReportMetric(pct(commits, 0.50), "commit-p50-ms")
	b.ReportMetric(pct(commits, 0.99), "commit-p99-ms")
	b.ReportMetric(median(totals), "txn-p50-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "txns/s")
}

// BenchmarkProducerBatchPath compares the producer over the batch call
// (ProduceBatchesStream: record batches encoded in the client, stored byte
// for byte) with the per-record call (ProduceStream: records as protobuf
// messages, batched by the agent), and the batch call with zstd, in one
// run. The setup is BenchmarkProducerIdempotence's: one in-process agent,
// a 16-partition topic per mode, alternating rounds of 20000 keyed
// 100-byte records, idempotent producers. The metrics are each mode's
// records/s and the batch call's speed-up over the per-record call.
//
//	go test -run '^$' -bench BenchmarkProducerBatchPath -benchtime 400000x ./client/
func BenchmarkProducerBatchPath(b *testing.B) {
	ta := startAgent(b)
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%d", i)
	}
	type mode struct {
		name    string
		opts    []client.ProducerOpt
		p       *client.Producer
		elapsed time.Duration
	}
	var (
		mu    sync.Mutex
		first error
	)
	promise := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
	}
	run := func(m *mode, n int) {
		start := time.Now()
		for i := range n {
			m.p.Produce(b.Context(), &client.Record{Topic: "bench-" + m.name, Key: keys[i%len(keys)], Value: value}, promise)
		}
		if err := m.p.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		m.elapsed += time.Since(start)
	}
	modes := []*mode{
		{name: "batch"},
		{name: "record", opts: []client.ProducerOpt{client.RecordPath()}},
		{name: "batch-zstd", opts: []client.ProducerOpt{client.BatchCompression(client.BatchCodecZstd)}},
	}
	for _, m := range modes {
		ta.createTopic(b, "bench-"+m.name, 16)
		p, err := client.NewProducer(ta.http, ta.url, m.opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close(context.Background()) })
		m.p = p
		run(m, 20000) // warm up: connection, producer id, buffers
		m.elapsed = 0
	}
	b.SetBytes(int64(len(modes)) * int64(len(value)+8))
	b.ResetTimer()
	const round = 20000
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		for _, m := range modes {
			run(m, n)
		}
	}
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	rate := map[string]float64{}
	for _, m := range modes {
		rate[m.name] = float64(b.N) / m.elapsed.Seconds()
		b.ReportMetric(rate[m.name], m.name+"-records/s")
	}
	b.ReportMetric(rate["batch"]/rate["record"], "batch/record")
}
