package agentcore

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkKafkaTransactions measures transactions per second through the
// Kafka listener: one franz-go transactional producer, each transaction 100
// records of 100 bytes over 4 partitions, committed (EndTxn answers once
// the markers are committed). One agent in process over an in-memory index
// and bucket, flush interval 5ms: the numbers are the protocol's and the
// core's cost plus the segment flushes a transaction waits for (its records',
// then its markers'), not a store's latency.
//
//	go test -run '^$' -bench KafkaTransactions -benchtime 200x ./kafka/agentcore/
func BenchmarkKafkaTransactions(b *testing.B) {
	addrs := kafkaAgents(b, 1)
	ctx := b.Context()
	const partitions, perTxn = 4, 100
	topic := "bench-txn"
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]), kgo.DefaultProduceTopic(topic),
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
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := cl.BeginTransaction(); err != nil {
			b.Fatal(err)
		}
		for j := range recs {
			recs[j] = &kgo.Record{Partition: int32(j % partitions), Value: value, Key: fmt.Appendf(nil, "%d-%d", i, j)}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatalf("transaction %d: produce: %v", i, err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatalf("transaction %d: commit: %v", i, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
	b.ReportMetric(float64(b.N*perTxn)/b.Elapsed().Seconds(), "records/s")
}
