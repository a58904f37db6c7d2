package agentcore

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkKafkaTransactions measures transactions per second through the
// Kafka listener (issue 13): one franz-go transactional producer, each
// transaction 100 records of 100 bytes over 4 partitions, committed
// (EndTxn answers once the markers are committed), one after the other.
// One agent in process, flush interval 5ms, on two backends:
//
//   - store=memory,index=embedded: an in-memory bucket and index; the
//     numbers are the protocol's and the core's cost plus the segment
//     flushes a transaction waits for (its records', then its markers'),
//     not a store's latency.
//   - store=minio,index=redis-server: the local MinIO and redis-server of
//     scripts/test-services.sh (skipped without them): every flush is a
//     PUT to MinIO and a commit script on redis-server.
//
// Besides txn/s and records/s it reports the commit's (EndTransaction's)
// p50 and p99 in ms, and the whole transaction's p50 (begin to committed).
//
//	go test -run '^$' -bench KafkaTransactions -benchtime 200x ./kafka/agentcore/
//	scripts/test-services.sh go test -run '^$' -bench KafkaTransactions -benchtime 200x ./kafka/agentcore/
func BenchmarkKafkaTransactions(b *testing.B) {
	b.Run("store=memory,index=embedded", func(b *testing.B) {
		benchTransactions(b, benchAgents(b, 1, backendMemory, nil).addrs[0])
	})
	b.Run("store=minio,index=redis-server", func(b *testing.B) {
		if os.Getenv("STRATA_TEST_S3_ENDPOINT") == "" {
			b.Skip("needs MinIO and redis-server: run under scripts/test-services.sh")
		}
		benchTransactions(b, benchAgents(b, 1, backendMinIO, nil).addrs[0])
	})
}

func benchTransactions(b *testing.B, addr string) {
	ctx := b.Context()
	const partitions, perTxn = 4, 100
	topic := "bench-txn"
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("bench-txn"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	recs := make([]*kgo.Record, perTxn)
	var commits, txns []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := cl.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for j := range recs {
			recs[j] = &kgo.Record{Partition: int32(j % partitions), Value: value, Key: fmt.Appendf(nil, "%d-%d", i, j)}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatalf("transaction %d: produce: %v", i, err)
		}
		commit := time.Now()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatalf("transaction %d: commit: %v", i, err)
		}
		end := time.Now()
		commits, txns = append(commits, end.Sub(commit)), append(txns, end.Sub(start))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
	b.ReportMetric(float64(b.N*perTxn)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(msAt(commits, 0.50), "ms/commit-p50")
	b.ReportMetric(msAt(commits, 0.99), "ms/commit-p99")
	b.ReportMetric(msAt(txns, 0.50), "ms/txn-p50")
}

// msAt is the q quantile (0..1, nearest rank) of ds in milliseconds.
func msAt(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, int(q*float64(len(s))))
	return float64(s[i].Microseconds()) / 1000
}
