package agentcore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka transactions over the agent core, in process (one agent: the
// agents of kafkaAgents share an index but not a bucket, so they cannot
// read each other's segments): a franz-go transactional producer commits
// and aborts, a read_committed consumer reads the committed records only,
// a second producer fences the first, and the transaction APIs' errors are
// Kafka's. integration/kafka_txn_test.go runs the same over agent processes.
func TestKafkaTransactionsOverAgents(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const topic = "ktxn"
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]), kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("ktxn-app"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 2, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var want []string
	for round, commit := range []bool{true, false, true} {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(2) {
			v := fmt.Sprintf("%d-%d", round, p)
			if err := prod.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if commit {
				want = append(want, v)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("round %d: EndTransaction: %v", round, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < len(want) {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read_committed after %q: %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	cons.PollFetches(short).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	cancelShort()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed read %q, want %q", got, want)
	}

	// A second producer of the id fences the first.
	newer, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]), kgo.DefaultProduceTopic(topic), kgo.TransactionalID("ktxn-app"))
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	if err := newer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := newer.ProduceSync(ctx, &kgo.Record{Value: []byte("newer")}).FirstErr(); err != nil {
		t.Fatalf("the newer producer: %v", err)
	}
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	err = prod.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("zombie")}).FirstErr()
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("the fenced producer: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}

	// Errors as Kafka answers them.
	ap := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap.SetVersion(3)
	ap.TransactionalID, ap.ProducerID, ap.ProducerEpoch = "nobody", 1, 0
	ap.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: []int32{0}}}
	apr, err := ap.RequestWith(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if code := apr.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidProducerIDMapping.Code {
		t.Fatalf("AddPartitionsToTxn of an unknown id: %v, want INVALID_PRODUCER_ID_MAPPING", kerr.ErrorForCode(code))
	}
	if err := newer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the newer producer's commit: %v", err)
	}
	id, epoch, err := newer.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	et := kmsg.NewPtrEndTxnRequest()
	et.SetVersion(3)
	// A repeated commit of the completed transaction succeeds (a retry,
	// as in Kafka); an abort of it is INVALID_TXN_STATE.
	et.TransactionalID, et.ProducerID, et.ProducerEpoch, et.Commit = "ktxn-app", id, epoch, false
	etr, err := et.RequestWith(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if etr.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("EndTxn abort of a committed transaction: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(etr.ErrorCode))
	}
}
