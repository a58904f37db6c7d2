package agent_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestTxnEndOutlivesItsCaller: once EndTxn recorded the decision
// (PrepareCommit), the agent writes the markers and completes the
// transaction even if the caller goes away meanwhile (a Kafka client killed,
// its connection closed), as Kafka's transaction coordinator does. Left in
// PrepareCommit until the reaper's pass at its deadline, the transaction's
// staged offsets would be missing from the group meanwhile: a member taking
// the partitions over would read the older offsets, transform their records
// again, and the late completion would then move the offsets back.
func TestTxnEndOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	// No reaper: only the EndTxn call can complete the transaction.
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-in", 1, nil)
	ta.createTopic(t, "txn-out", 1, nil)
	c := newTxnClient(t, ta, "detached", 0)
	must(t, c.addPartitions("txn-out", 0))
	if _, err := c.produce("txn-out", 0, 1, "out"); err != nil {
		t.Fatal(err)
	}
	_, err := ta.producer.AddOffsetsToTxn(t.Context(), connect.NewRequest(&stratav1.AddOffsetsToTxnRequest{Producer: c.id, Group: "etl"}))
	must(t, err)
	_, err = ta.producer.TxnOffsetCommit(t.Context(), connect.NewRequest(&stratav1.TxnOffsetCommitRequest{Producer: c.id, Group: "etl",
		Offsets: []*stratav1.TxnOffset{{Topic: "txn-in", Partition: 0, Offset: 7}}}))
	must(t, err)

	// The markers' upload is slow; the caller gives up first.
	ta.bucket.Inject(objectlog.Fault{Ops: objectlog.OpPut, Delay: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := ta.producer.EndTxn(ctx, connect.NewRequest(&stratav1.EndTxnRequest{Producer: c.id, Commit: true})); err == nil {
		t.Fatal("EndTxn answered within 200 ms despite the slow upload; the test needs it to outlast its caller")
	}
	deadline := time.Now().Add(30 * time.Second)
	for ta.fetchOffset(t, "etl", "txn-in", 0) != 7 {
		if time.Now().After(deadline) {
			t.Fatalf("the transaction whose caller went away after its decision was not completed in 30 s: the group's offset is %d, want 7",
				ta.fetchOffset(t, "etl", "txn-in", 0))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
