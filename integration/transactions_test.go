package integration

// Transactions (issue 11, KIP-98) across agent processes: a producer that
// dies (with its agent, SIGKILL) in the middle of a transaction holds
// read_committed readers back on another agent until that agent's reaper
// aborts it past its timeout; its records are then never visible to them.
// A transaction of the CLI on the other agent commits, and read_committed
// readers see it.

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func TestTransactionOfADeadProducerIsAborted(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	a := d.startAgent(t, "agent-a", "--txn-reaper-interval", "0")
	b := d.startAgent(t, "agent-b", "--txn-reaper-interval", "200ms")
	mustCLI(t, nil, "topic", "create", "tx", "--addr", a.url())

	ctx := t.Context()
	ca := newClients(a.url(), protoConnect)
	init, err := ca.producer.InitProducerId(ctx, connect.NewRequest(&stratav1.InitProducerIdRequest{
		TransactionalId: "doomed", TransactionTimeout: durationpb.New(2 * time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	id := &stratav1.TxnProducer{TransactionalId: "doomed", ProducerId: init.Msg.GetProducerId(), ProducerEpoch: init.Msg.GetProducerEpoch()}
	if _, err := ca.producer.AddPartitionsToTxn(ctx, connect.NewRequest(&stratav1.AddPartitionsToTxnRequest{Producer: id,
		Topics: []*stratav1.TxnTopicPartitions{{Topic: "tx", Partitions: []int32{0}}}})); err != nil {
		t.Fatal(err)
	}
	p := int32(0)
	recs := []*stratav1.Record{{Partition: &p, Value: []byte("doomed 0")}, {Partition: &p, Value: []byte("doomed 1")}}
	if _, err := ca.producer.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{ProducerId: id.GetProducerId(),
		ProducerEpoch: id.GetProducerEpoch(), TransactionalId: "doomed",
		Topics: []*stratav1.TopicRecords{{Topic: "tx", Records: recs, BaseSequences: map[int32]int32{0: 0}}}})); err != nil {
		t.Fatal(err)
	}
	// The producer and its agent die.
	a.kill()

	mustCLI(t, strings.NewReader("plain\n"), "produce", "tx", "--addr", b.url())
	// read_uncommitted sees everything written.
	if got := mustCLI(t, nil, "consume", "tx", "--addr", b.url()); got != "doomed 0\ndoomed 1\nplain\n" {
		t.Fatalf("read_uncommitted: %q", got)
	}
	// read_committed: held back at the open transaction, then, once agent
	// b's reaper aborted it, everything but its records.
	if got := mustCLI(t, nil, "consume", "tx", "--isolation", "read_committed", "--addr", b.url()); got != "" && got != "plain\n" {
		t.Fatalf("read_committed: %q", got)
	}
	var got string
	if !waitFor(60*time.Second, func() bool {
		got = mustCLI(t, nil, "consume", "tx", "--isolation", "read_committed", "--addr", b.url())
		return got != ""
	}) {
		t.Fatal("the dead producer's transaction still holds read_committed readers back after 60s")
	}
	if got != "plain\n" {
		t.Fatalf("read_committed after the abort: %q, want only the plain record", got)
	}

	// A transaction of the CLI commits; read_committed readers see it.
	mustCLI(t, strings.NewReader("t1\nt2\n"), "produce", "tx", "--transactional-id", "loader", "--addr", b.url())
	if got := mustCLI(t, nil, "consume", "tx", "--isolation", "read_committed", "--addr", b.url()); got != "plain\nt1\nt2\n" {
		t.Fatalf("read_committed after a committed transaction: %q", got)
	}
}
