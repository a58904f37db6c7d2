package agentcore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratabroker/strata/kafka"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// What a web console (AKHQ, Kafka UI, Kafdrop) asks of a cluster, through
// franz-go's kadm, against two agents in process on one index (the real
// redis-server under scripts/test-services.sh): sizes per
// partition from every broker, counted once, equal to what the Connect
// API's DescribeTopic says; no ACLs, quotas or reassignments.
func TestKadmConsoleAPIs(t *testing.T) {
	t.Parallel()
	addrs, agents := kafkaAgentsOf(t, 2)
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	const topic, partitions = "console-sizes", 6
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	produced := map[int32]bool{}
	for i, p := range []int32{0, 1, 1, 4, 4, 4} {
		r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "value %d of a console test", i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		produced[p] = true
	}

	desc, err := agents[1].DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: topic})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	for _, p := range desc.GetPartitions() {
		want[p.GetPartition()] = p.GetBytes()
		if produced[p.GetPartition()] != (p.GetBytes() > 0) {
			t.Fatalf("DescribeTopic: partition %d has %d bytes (produced to: %v)", p.GetPartition(), p.GetBytes(), produced[p.GetPartition()])
		}
	}

	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("log dirs of %d brokers, want 2: %v", len(dirs), dirs)
	}
	got := map[int32]int64{}
	for broker, ds := range dirs {
		if err := ds.Error(); err != nil {
			t.Fatalf("broker %d: %v", broker, err)
		}
		d, ok := ds[kafka.LogDir]
		if len(ds) != 1 || !ok || d.TotalBytes != -1 || d.UsableBytes != -1 {
			t.Fatalf("broker %d: dirs %+v, want %s alone with unknown capacity", broker, ds, kafka.LogDir)
		}
		ds.EachPartition(func(p kadm.DescribedLogDirPartition) {
			if p.Topic != topic {
				return
			}
			if _, twice := got[p.Partition]; twice {
				t.Errorf("partition %d reported by two brokers", p.Partition)
			}
			got[p.Partition] = p.Size
		})
	}
	if len(got) != partitions {
		t.Errorf("the brokers reported %d partitions, want %d: %v", len(got), partitions, got)
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("partition %d: DescribeLogDirs size %d, DescribeTopic bytes %d", p, got[p], n)
		}
	}

	acls, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics(topic).ResourcePatternType(kadm.ACLPatternLiteral).Allow("User:console").AllowHosts().Operations(kadm.OpRead))
	if err != nil {
		t.Fatal(err)
	}
	if len(acls) == 0 {
		t.Fatal("DescribeACLs: no results")
	}
	for _, r := range acls {
		if !errors.Is(r.Err, kerr.SecurityDisabled) || len(r.Described) != 0 {
			t.Errorf("DescribeACLs: %v %v, want SECURITY_DISABLED and none", r.Err, r.Described)
		}
	}
	quotas, err := adm.DescribeClientQuotas(ctx, false, nil)
	if err != nil || len(quotas) != 0 {
		t.Errorf("DescribeClientQuotas: %v %v, want none", quotas, err)
	}
	moves, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}, 4: {}}})
	if err != nil || len(moves) != 0 {
		t.Errorf("ListPartitionReassignments: %v %v, want none", moves, err)
	}
}

// kafka-transactions.sh describe, through kadm: an open transaction's
// state, producer, timeout, start and partitions from the index; a
// committed one's CompleteCommit; an unknown id TRANSACTIONAL_ID_NOT_FOUND.
func TestKadmDescribeTransactions(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 1)
	ctx := t.Context()
	const topic, txnID = "console-txn", "console-app"
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(45*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	adm := kadm.NewClient(prod)
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second).UnixMilli()
	for _, p := range []int32{2, 0} {
		if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("in a transaction")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	described, err := adm.DescribeTransactions(ctx, txnID, "never-initialized")
	if err != nil {
		t.Fatal(err)
	}
	d := described[txnID]
	if d.Err != nil || d.State != "Ongoing" || d.TimeoutMillis != 45000 || d.ProducerID < 0 || d.StartTimestamp < before {
		t.Fatalf("open transaction: %+v", d)
	}
	if ps := d.Topics[topic]; len(d.Topics) != 1 || len(ps) != 2 || !hasPartitions(ps, 0, 2) {
		t.Fatalf("open transaction's partitions %v, want %s 0 and 2", d.Topics, topic)
	}
	if u := described["never-initialized"]; !errors.Is(u.Err, kerr.TransactionalIDNotFound) {
		t.Fatalf("unknown transactional id: %+v, want TRANSACTIONAL_ID_NOT_FOUND", u)
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	described, err = adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		t.Fatal(err)
	}
	if d2 := described[txnID]; d2.Err != nil || d2.State != "CompleteCommit" || len(d2.Topics) != 0 || d2.ProducerID != d.ProducerID {
		t.Fatalf("committed transaction: %+v", d2)
	}
}

func hasPartitions(ps map[int32]struct{}, want ...int32) bool {
	for _, p := range want {
		if _, ok := ps[p]; !ok {
			return false
		}
	}
	return true
}
