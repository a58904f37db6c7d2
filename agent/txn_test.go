package agent_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// txnClient is a transactional producer driven by hand, as a client
// library would drive it.
type txnClient struct {
	t    *testing.T
	ta   *testAgent
	id   *stratav1.TxnProducer
	seqs map[string]int32 // "topic/partition" -> next sequence
}

func newTxnClient(t *testing.T, ta *testAgent, tid string, timeout time.Duration) *txnClient {
	t.Helper()
	req := &stratav1.InitProducerIdRequest{TransactionalId: tid}
	if timeout > 0 {
		req.TransactionTimeout = durationpb.New(timeout)
	}
	pid, epoch := initProducer(t, ta, req)
	return &txnClient{t: t, ta: ta, id: &stratav1.TxnProducer{TransactionalId: tid, ProducerId: pid, ProducerEpoch: epoch},
		seqs: map[string]int32{}}
}

func (c *txnClient) addPartitions(topic string, parts ...int32) error {
	_, err := c.ta.producer.AddPartitionsToTxn(c.t.Context(), connect.NewRequest(&stratav1.AddPartitionsToTxnRequest{
		Producer: c.id, Topics: []*stratav1.TxnTopicPartitions{{Topic: topic, Partitions: parts}}}))
	return err
}

// produce writes n records "<tag>-<i>" to the partition in the
// transaction and returns the first offset.
func (c *txnClient) produce(topic string, p int32, n int, tag string) (int64, error) {
	k := fmt.Sprintf("%s/%d", topic, p)
	req := idemRequest(topic, p, c.id.GetProducerId(), c.id.GetProducerEpoch(), c.seqs[k], n, tag)
	req.TransactionalId = c.id.GetTransactionalId()
	resp, err := c.ta.producer.Produce(c.t.Context(), connect.NewRequest(req))
	if err != nil {
		return 0, err
	}
	c.seqs[k] += int32(n)
	return firstOffset(resp.Msg), nil
}

func (c *txnClient) end(commit bool) error {
	_, err := c.ta.producer.EndTxn(c.t.Context(), connect.NewRequest(&stratav1.EndTxnRequest{Producer: c.id, Commit: commit}))
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fetchValues fetches a partition from offset at the isolation level and
// returns the values and the next offset.
func (ta *testAgent) fetchValues(t *testing.T, topic string, p int32, offset int64, level stratav1.IsolationLevel) ([]string, int64) {
	t.Helper()
	resp, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{
		Topic: topic, Partition: p, Offset: offset, IsolationLevel: level}))
	if err != nil {
		t.Fatalf("fetch %s/%d from %d (%v): %v", topic, p, offset, level, err)
	}
	var out []string
	for _, r := range resp.Msg.GetRecords() {
		out = append(out, string(r.GetValue()))
	}
	return out, resp.Msg.GetNextOffset()
}

const (
	committed   = stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED
	uncommitted = stratav1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED
)

func wantValues(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
}

// TestTxnReadCommitted: the LSO holds read_committed readers back while a
// transaction is open and lets them go when it commits or aborts; aborted
// records are never visible to them, markers never to anyone; and
// read_uncommitted sees every record as it is written.
func TestTxnReadCommitted(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-rc", 2, nil)
	c := newTxnClient(t, ta, "rc", 0)

	must(t, c.addPartitions("txn-rc", 0, 1))
	if _, err := c.produce("txn-rc", 0, 2, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.produce("txn-rc", 1, 1, "c1p1"); err != nil {
		t.Fatal(err)
	}
	// A plain record after the open transaction's: held back with it.
	if _, err := produce(t.Context(), ta.producer, "txn-rc", &stratav1.Record{Partition: new(int32), Value: []byte("plain1")}); err != nil {
		t.Fatal(err)
	}
	got, next := ta.fetchValues(t, "txn-rc", 0, 0, committed)
	wantValues(t, "read_committed while open", got)
	if next != 0 {
		t.Fatalf("read_committed next offset %d while open, want 0", next)
	}
	got, _ = ta.fetchValues(t, "txn-rc", 0, 0, uncommitted)
	wantValues(t, "read_uncommitted while open", got, "c1-0", "c1-1", "plain1")
	// ListOffsets "latest": the LSO under read_committed, as in Kafka.
	for level, want := range map[stratav1.IsolationLevel]int64{committed: 0, uncommitted: 3} {
		lo, err := ta.consumer.ListOffsets(t.Context(), connect.NewRequest(&stratav1.ListOffsetsRequest{IsolationLevel: level,
			Partitions: []*stratav1.ListOffsetsPartition{{Topic: "txn-rc", Spec: &stratav1.ListOffsetsPartition_Latest{Latest: true}}}}))
		if err != nil || lo.Msg.GetPartitions()[0].GetOffset() != want {
			t.Fatalf("ListOffsets latest %v: %v, %v; want %d", level, lo, err, want)
		}
	}
	// The Go API the Kafka front-end uses, and the lookups by time: under
	// read_committed nothing at or past the LSO is found (Kafka's
	// Partition.fetchOffsetForTimestamp).
	for _, c := range []struct {
		ts            int64
		committed     bool
		off           int64
		wantTimestamp bool
	}{
		{agent.ListLatest, true, 0, false},
		{agent.ListLatest, false, 3, false},
		{agent.ListEarliest, true, 0, false},
		{agent.ListMaxTimestamp, true, -1, false},
		{agent.ListMaxTimestamp, false, 2, true},
		{0, true, -1, false},
		{0, false, 0, true},
	} {
		off, ts, err := ta.agent.ListOffset(t.Context(), "txn-rc", 0, c.ts, c.committed)
		if err != nil || off != c.off || (ts >= 0) != c.wantTimestamp {
			t.Errorf("ListOffset(%d, read_committed %v) = %d, %d, %v; want offset %d", c.ts, c.committed, off, ts, err, c.off)
		}
	}
	lo, err := ta.consumer.ListOffsets(t.Context(), connect.NewRequest(&stratav1.ListOffsetsRequest{IsolationLevel: committed,
		Partitions: []*stratav1.ListOffsetsPartition{{Topic: "txn-rc", Spec: &stratav1.ListOffsetsPartition_MaxTimestamp{MaxTimestamp: true}}}}))
	if err != nil || lo.Msg.GetPartitions()[0].GetOffset() != -1 {
		t.Fatalf("ListOffsets max timestamp read_committed while open: %v, %v; want -1", lo, err)
	}

	// A long poll at the LSO waits (the plain record is past it), and
	// answers empty.
	start := time.Now()
	resp, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "txn-rc", Offset: 0,
		IsolationLevel: committed, MaxWait: durationpb.New(200 * time.Millisecond)}))
	if err != nil || len(resp.Msg.GetRecords()) != 0 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("long poll at the LSO: %v %v after %v, want empty after 200ms", resp, err, time.Since(start))
	}

	must(t, c.end(true))
	got, next = ta.fetchValues(t, "txn-rc", 0, 0, committed)
	wantValues(t, "read_committed after commit", got, "c1-0", "c1-1", "plain1")
	if hw := ta.highWatermark(t, "txn-rc", 0); next != hw || hw != 4 {
		t.Fatalf("next offset %d, high watermark %d: want both 4 (past the commit marker)", next, hw)
	}
	got, _ = ta.fetchValues(t, "txn-rc", 1, 0, committed)
	wantValues(t, "partition 1 after commit", got, "c1p1-0")

	// An aborted transaction, with a plain record amid it.
	must(t, c.addPartitions("txn-rc", 0))
	if _, err := c.produce("txn-rc", 0, 2, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := produce(t.Context(), ta.producer, "txn-rc", &stratav1.Record{Partition: new(int32), Value: []byte("plain2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.produce("txn-rc", 0, 1, "a2"); err != nil {
		t.Fatal(err)
	}
	got, _ = ta.fetchValues(t, "txn-rc", 0, 4, committed)
	wantValues(t, "read_committed while the second is open", got)
	must(t, c.end(false))
	got, next = ta.fetchValues(t, "txn-rc", 0, 0, committed)
	wantValues(t, "read_committed after the abort", got, "c1-0", "c1-1", "plain1", "plain2")
	if hw := ta.highWatermark(t, "txn-rc", 0); next != hw {
		t.Fatalf("next offset %d, want the high watermark %d", next, hw)
	}
	got, _ = ta.fetchValues(t, "txn-rc", 0, 0, uncommitted)
	wantValues(t, "read_uncommitted after the abort", got, "c1-0", "c1-1", "plain1", "a1-0", "a1-1", "plain2", "a2-0")
	// From inside the aborted range too.
	got, _ = ta.fetchValues(t, "txn-rc", 0, 5, committed)
	wantValues(t, "read_committed from inside the abort", got, "plain2")

	// A subscription reads the same.
	stream, err := ta.consumer.Subscribe(t.Context(), connect.NewRequest(&stratav1.SubscribeRequest{Topic: "txn-rc",
		Partitions: []int32{0}, Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}, IsolationLevel: committed}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var sub []string
	for len(sub) < 4 && stream.Receive() {
		for _, r := range stream.Msg().GetRecords() {
			sub = append(sub, string(r.GetValue()))
		}
	}
	wantValues(t, "read_committed subscription", sub, "c1-0", "c1-1", "plain1", "plain2")
}

// TestTxnSubscribeWaitsForTheLSO: a read_committed subscription gets
// nothing past an open transaction, and the records once it commits.
func TestTxnSubscribeWaitsForTheLSO(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-sub", 1, nil)
	c := newTxnClient(t, ta, "sub", 0)
	must(t, c.addPartitions("txn-sub", 0))
	if _, err := c.produce("txn-sub", 0, 1, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := produce(t.Context(), ta.producer, "txn-sub", &stratav1.Record{Partition: new(int32), Value: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	// From the earliest offset, and from the latest: for read_committed,
	// that is the LSO, before the open transaction, as in Kafka.
	var streams []chan []string
	for _, req := range []*stratav1.SubscribeRequest{
		{Topic: "txn-sub", Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}, IsolationLevel: committed},
		{Topic: "txn-sub", Start: &stratav1.SubscribeRequest_Latest{Latest: true}, IsolationLevel: committed},
	} {
		stream, err := ta.consumer.Subscribe(t.Context(), connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		got := make(chan []string, 8)
		go func() {
			for stream.Receive() {
				var vs []string
				for _, r := range stream.Msg().GetRecords() {
					vs = append(vs, string(r.GetValue()))
				}
				if len(vs) > 0 {
					got <- vs
				}
			}
			close(got)
		}()
		streams = append(streams, got)
	}
	for i, got := range streams {
		select {
		case vs := <-got:
			t.Fatalf("stream %d: records %q past an open transaction", i, vs)
		case <-time.After(300 * time.Millisecond):
		}
	}
	must(t, c.end(true))
	for i, got := range streams {
		var all []string
		deadline := time.After(30 * time.Second)
		for len(all) < 2 {
			select {
			case vs, ok := <-got:
				if !ok {
					t.Fatalf("stream %d ended (got %q)", i, all)
				}
				all = append(all, vs...)
			case <-deadline:
				t.Fatalf("stream %d: after the commit got %q, want [t-0 plain]", i, all)
			}
		}
		wantValues(t, fmt.Sprintf("stream %d after the commit", i), all, "t-0", "plain")
	}
}

// TestTxnProduceChecks: a transactional produce needs its partitions added
// to an open transaction and the current epoch.
func TestTxnProduceChecks(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-chk", 2, nil)
	c := newTxnClient(t, ta, "chk", 0)
	_, err := c.produce("txn-chk", 0, 1, "x")
	wantConnectCode(t, err, connect.CodeInvalidArgument) // no transaction open
	must(t, c.addPartitions("txn-chk", 0))
	_, err = c.produce("txn-chk", 1, 1, "x")
	wantConnectCode(t, err, connect.CodeInvalidArgument) // partition 1 not added
	if _, err := c.produce("txn-chk", 0, 1, "x"); err != nil {
		t.Fatal(err)
	}
	err = c.addPartitions("txn-chk", 7)
	wantConnectCode(t, err, connect.CodeNotFound)
	// Not idempotent: refused.
	_, err = ta.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{TransactionalId: "chk",
		Topics: []*stratav1.TopicRecords{{Topic: "txn-chk", Records: []*stratav1.Record{rec("", "x")}}}}))
	wantConnectCode(t, err, connect.CodeInvalidArgument)
	// After the commit, a retried commit is answered again (Kafka's
	// retry), an abort is the wrong state.
	must(t, c.end(true))
	must(t, c.end(true))
	wantConnectCode(t, c.end(false), connect.CodeInvalidArgument)
	// A TxnOffsetCommit for a group never added.
	_, err = ta.producer.TxnOffsetCommit(t.Context(), connect.NewRequest(&stratav1.TxnOffsetCommitRequest{Producer: c.id, Group: "g",
		Offsets: []*stratav1.TxnOffset{{Topic: "txn-chk", Partition: 0, Offset: 1}}}))
	wantConnectCode(t, err, connect.CodeInvalidArgument)
	_, err = ta.producer.EndTxn(t.Context(), connect.NewRequest(&stratav1.EndTxnRequest{Producer: &stratav1.TxnProducer{ProducerId: 1}}))
	wantConnectCode(t, err, connect.CodeInvalidArgument)
}

// TestTxnNewProducerFencesTheOld: InitProducerId with the same
// transactional id fences the old producer and aborts its open
// transaction before it answers.
func TestTxnNewProducerFencesTheOld(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-fence", 1, nil)
	old := newTxnClient(t, ta, "app", 0)
	must(t, old.addPartitions("txn-fence", 0))
	if _, err := old.produce("txn-fence", 0, 3, "zombie"); err != nil {
		t.Fatal(err)
	}
	hw := ta.highWatermark(t, "txn-fence", 0)

	fresh := newTxnClient(t, ta, "app", 0)
	if fresh.id.GetProducerEpoch() != old.id.GetProducerEpoch()+1 || fresh.id.GetProducerId() != old.id.GetProducerId() {
		t.Fatalf("new producer %v, old %v: want the same id, epoch+1", fresh.id, old.id)
	}
	// The abort marker is written: the LSO is free, the records gone for
	// read_committed readers.
	if got := ta.highWatermark(t, "txn-fence", 0); got != hw+1 {
		t.Fatalf("high watermark %d after the new producer, want %d (the abort marker)", got, hw+1)
	}
	got, next := ta.fetchValues(t, "txn-fence", 0, 0, committed)
	wantValues(t, "read_committed after the fencing", got)
	if next != hw+1 {
		t.Fatalf("read_committed next %d, want %d", next, hw+1)
	}
	tp, err := ta.index.DescribeTopic(t.Context(), "txn-fence")
	must(t, err)
	aborted, err := ta.index.AbortedTransactions(t.Context(), tp.ID, 0, 0, hw)
	must(t, err)
	if len(aborted) != 1 || aborted[0].ProducerID != old.id.GetProducerId() || aborted[0].FirstOffset != 0 || aborted[0].LastOffset != hw {
		t.Fatalf("aborted transactions %+v, want producer %d [0, %d]", aborted, old.id.GetProducerId(), hw)
	}

	// The old producer is fenced everywhere.
	_, err = old.produce("txn-fence", 0, 1, "late")
	wantConnectCode(t, err, connect.CodeFailedPrecondition)
	wantConnectCode(t, old.end(true), connect.CodeFailedPrecondition)
	wantConnectCode(t, old.addPartitions("txn-fence", 0), connect.CodeFailedPrecondition)

	// The new one works.
	must(t, fresh.addPartitions("txn-fence", 0))
	if _, err := fresh.produce("txn-fence", 0, 1, "fresh"); err != nil {
		t.Fatal(err)
	}
	must(t, fresh.end(true))
	got, _ = ta.fetchValues(t, "txn-fence", 0, 0, committed)
	wantValues(t, "read_committed after the new producer's commit", got, "fresh-0")
}

// fetchOffset is the group's committed offset of the partition, -1 when
// none.
func (ta *testAgent) fetchOffset(t *testing.T, group, topic string, p int32) int64 {
	t.Helper()
	resp, err := ta.group.FetchOffsets(t.Context(), connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: group,
		Partitions: []*stratav1.TopicPartitions{{Topic: topic, Partitions: []int32{p}}}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range resp.Msg.GetOffsets() {
		if o.GetTopic() == topic && o.GetPartition() == p {
			return o.GetOffset()
		}
	}
	return -1
}

// TestTxnOffsetsCommitWithTheTransaction: offsets committed in a
// transaction become visible with it, and only then; an abort drops them.
func TestTxnOffsetsCommitWithTheTransaction(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-in", 1, nil)
	ta.createTopic(t, "txn-out", 1, nil)
	c := newTxnClient(t, ta, "ctp", 0)
	before := ta.fetchOffset(t, "etl", "txn-in", 0)

	stage := func(offset int64) {
		t.Helper()
		_, err := ta.producer.AddOffsetsToTxn(t.Context(), connect.NewRequest(&stratav1.AddOffsetsToTxnRequest{Producer: c.id, Group: "etl"}))
		must(t, err)
		_, err = ta.producer.TxnOffsetCommit(t.Context(), connect.NewRequest(&stratav1.TxnOffsetCommitRequest{Producer: c.id, Group: "etl",
			Offsets: []*stratav1.TxnOffset{{Topic: "txn-in", Partition: 0, Offset: offset, Metadata: "m"}}}))
		must(t, err)
	}
	must(t, c.addPartitions("txn-out", 0))
	if _, err := c.produce("txn-out", 0, 1, "out"); err != nil {
		t.Fatal(err)
	}
	stage(7)
	if got := ta.fetchOffset(t, "etl", "txn-in", 0); got != before {
		t.Fatalf("offset %d visible before the commit (was %d)", got, before)
	}
	must(t, c.end(true))
	if got := ta.fetchOffset(t, "etl", "txn-in", 0); got != 7 {
		t.Fatalf("offset %d after the commit, want 7", got)
	}

	stage(9)
	must(t, c.end(false))
	if got := ta.fetchOffset(t, "etl", "txn-in", 0); got != 7 {
		t.Fatalf("offset %d after an aborted transaction staged 9, want 7", got)
	}
}

// TestTxnReaperAbortsTimedOutTransactions: a transaction whose producer
// went away is aborted once its timeout passes, freeing the LSO.
func TestTxnReaperAbortsTimedOutTransactions(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 50 * time.Millisecond })
	ta.createTopic(t, "txn-reap", 1, nil)
	c := newTxnClient(t, ta, "dead", 300*time.Millisecond)
	must(t, c.addPartitions("txn-reap", 0))
	if _, err := c.produce("txn-reap", 0, 2, "lost"); err != nil {
		t.Fatal(err)
	}
	if _, err := produce(t.Context(), ta.producer, "txn-reap", &stratav1.Record{Partition: new(int32), Value: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	// Held back now (the timeout is short: this may already be past it,
	// so only the end is asserted strictly).
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := ta.fetchValues(t, "txn-reap", 0, 0, committed)
		if len(got) > 0 {
			wantValues(t, "read_committed after the reaper", got, "plain")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timed-out transaction still holds the LSO after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The markers release the readers before the reaper completes the
	// transaction in the index: wait for that too.
	for {
		txn, err := ta.index.DescribeTxn(t.Context(), "dead")
		must(t, err)
		if txn.State == coordinator.TxnCompleteAbort {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s after 30s, want %s", txn.State, coordinator.TxnCompleteAbort)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The producer, back too late, finds itself fenced: the abort bumped
	// its epoch.
	err := c.end(true)
	wantConnectCode(t, err, connect.CodeFailedPrecondition)
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a Connect error", err)
	}
}

// TestTxnReapTransactionsRunsUnderALease: a pass while another agent holds
// the reaper lease does nothing.
func TestTxnReapTransactionsRunsUnderALease(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-lease", 1, nil)
	c := newTxnClient(t, ta, "held", 100*time.Millisecond)
	must(t, c.addPartitions("txn-lease", 0))
	if _, err := c.produce("txn-lease", 0, 1, "x"); err != nil {
		t.Fatal(err)
	}
	lease, err := ta.index.AcquireLease(t.Context(), "txn-reaper", "other-agent", time.Minute)
	must(t, err)
	time.Sleep(150 * time.Millisecond) // past the transaction's timeout
	if n, err := ta.agent.ReapTransactions(t.Context()); err != nil || n != 0 {
		t.Fatalf("pass under another's lease: %d, %v; want 0, nil", n, err)
	}
	must(t, ta.index.ReleaseLease(t.Context(), lease))
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := ta.agent.ReapTransactions(t.Context())
		must(t, err)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired transaction was never reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, _ := ta.fetchValues(t, "txn-lease", 0, 0, committed)
	wantValues(t, "after the reaper", got)
	if _, next := ta.fetchValues(t, "txn-lease", 0, 0, committed); next != 2 {
		t.Fatalf("read_committed next %d, want 2 (past the abort marker)", next)
	}
}

// TestTxnReaperFencesTheTimedOutProducer: aborting a transaction past its
// timeout bumps the producer's epoch (Kafka's transaction coordinator does,
// KIP-360's bump on timeout), so the producer that left it, a zombie, is
// fenced: its late produce, a new transaction and its EndTxn are all
// refused, and its batches can never land after the abort marker and open a
// transaction nothing closes.
func TestTxnReaperFencesTheTimedOutProducer(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ta.createTopic(t, "txn-reap-fence", 1, nil)
	zombie := newTxnClient(t, ta, "slow", 100*time.Millisecond)
	must(t, zombie.addPartitions("txn-reap-fence", 0))
	if _, err := zombie.produce("txn-reap-fence", 0, 2, "timed-out"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := ta.agent.ReapTransactions(t.Context())
		must(t, err)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired transaction was never reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	txn, err := ta.index.DescribeTxn(t.Context(), "slow")
	must(t, err)
	if txn.State != coordinator.TxnCompleteAbort || txn.ProducerID != zombie.id.GetProducerId() ||
		int32(txn.ProducerEpoch) != zombie.id.GetProducerEpoch()+1 {
		t.Fatalf("after the reaper: %s producer %d epoch %d; want %s producer %d epoch %d (bumped)", txn.State,
			txn.ProducerID, txn.ProducerEpoch, coordinator.TxnCompleteAbort, zombie.id.GetProducerId(), zombie.id.GetProducerEpoch()+1)
	}
	got, next := ta.fetchValues(t, "txn-reap-fence", 0, 0, committed)
	wantValues(t, "read_committed after the reaper", got)
	if next != 3 {
		t.Fatalf("read_committed next %d, want 3 (past the abort marker)", next)
	}

	// The zombie is fenced everywhere.
	_, err = zombie.produce("txn-reap-fence", 0, 1, "late")
	wantConnectCode(t, err, connect.CodeFailedPrecondition)
	wantConnectCode(t, zombie.addPartitions("txn-reap-fence", 0), connect.CodeFailedPrecondition)
	wantConnectCode(t, zombie.end(true), connect.CodeFailedPrecondition)
	// Even a bare idempotent batch of its epoch: the abort marker carried
	// the new epoch to the partition.
	req := idemRequest("txn-reap-fence", 0, zombie.id.GetProducerId(), zombie.id.GetProducerEpoch(), 2, 1, "bare")
	_, err = ta.producer.Produce(t.Context(), connect.NewRequest(req))
	wantConnectCode(t, err, connect.CodeFailedPrecondition)
	if hw := ta.highWatermark(t, "txn-reap-fence", 0); hw != 3 {
		t.Fatalf("high watermark %d, want 3: a zombie's batch was appended", hw)
	}

	// A restarted producer takes the id over with the next epoch.
	fresh := newTxnClient(t, ta, "slow", 0)
	if fresh.id.GetProducerId() != zombie.id.GetProducerId() || fresh.id.GetProducerEpoch() != zombie.id.GetProducerEpoch()+2 {
		t.Fatalf("restarted producer %v, zombie %v: want the same id, epoch+2", fresh.id, zombie.id)
	}
	must(t, fresh.addPartitions("txn-reap-fence", 0))
	if _, err := fresh.produce("txn-reap-fence", 0, 1, "fresh"); err != nil {
		t.Fatal(err)
	}
	must(t, fresh.end(true))
	got, _ = ta.fetchValues(t, "txn-reap-fence", 0, 0, committed)
	wantValues(t, "read_committed after the restarted producer's commit", got, "fresh-0")
}
