package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/client"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// readCommitted reads a partition from 0 with read_committed and returns
// the values.
func (ta *testAgent) readCommitted(t *testing.T, topic string, p int32) []string {
	t.Helper()
	consumer := stratav1connect.NewConsumerServiceClient(ta.http, ta.url)
	var out []string
	var next int64
	for {
		resp, err := consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: topic, Partition: p, Offset: next,
			IsolationLevel: stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED}))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Msg.GetRecords() {
			out = append(out, string(r.GetValue()))
		}
		if resp.Msg.GetNextOffset() == next || resp.Msg.GetNextOffset() >= resp.Msg.GetHighWatermark() {
			return out
		}
		next = resp.Msg.GetNextOffset()
	}
}

func newTxnProducer(t *testing.T, ta *testAgent, id string) *client.Producer {
	t.Helper()
	p, err := client.NewProducer(ta.http, ta.url, client.TransactionalID(id, 0), client.Linger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(t.Context()) })
	if err := p.InitTransactions(t.Context()); err != nil {
		t.Fatal(err)
	}
	return p
}

func values(prefix string, n int) []*client.Record {
	out := make([]*client.Record, n)
	for i := range out {
		out[i] = &client.Record{Topic: "tx", Value: fmt.Appendf(nil, "%s%d", prefix, i)}
	}
	return out
}

// TestProducerTransactions: committed transactions are read by
// read_committed readers, aborted ones never; offsets sent to a
// transaction commit with it; a new producer with the same transactional
// id fences the old one.
func TestProducerTransactions(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "tx", 1)
	ctx := t.Context()
	p := newTxnProducer(t, ta, "app")

	if err := p.ProduceSync(ctx, values("none", 1)...); !errors.Is(err, client.ErrNoTransaction) {
		t.Fatalf("produce outside a transaction: %v, want ErrNoTransaction", err)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, values("c", 3)...); err != nil {
		t.Fatal(err)
	}
	if got := ta.readCommitted(t, "tx", 0); len(got) != 0 {
		t.Fatalf("read_committed before the commit: %q", got)
	}
	if err := p.SendOffsetsToTransaction(ctx, "etl", []client.PartitionOffset{{Topic: "tx", Partition: 0, Offset: 3}}); err != nil {
		t.Fatal(err)
	}
	if got := ta.committed(t, "etl"); len(got) != 0 {
		t.Fatalf("offsets before the commit: %v", got)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ta.committed(t, "etl")[client.TopicPartition{Topic: "tx", Partition: 0}]; got != 3 {
		t.Fatalf("offset after the commit %d, want 3", got)
	}

	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, values("a", 2)...); err != nil {
		t.Fatal(err)
	}
	if err := p.AbortTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := ta.readCommitted(t, "tx", 0), []string{"c0", "c1", "c2"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed: %q, want %q", got, want)
	}

	// A new producer of the id fences this one, aborting its transaction.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, values("z", 1)...); err != nil {
		t.Fatal(err)
	}
	q := newTxnProducer(t, ta, "app")
	if err := p.CommitTransaction(ctx); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("commit of the fenced producer: %v, want failed_precondition", err)
	}
	if err := q.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := q.ProduceSync(ctx, values("q", 1)...); err != nil {
		t.Fatal(err)
	}
	if err := q.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := ta.readCommitted(t, "tx", 0), []string{"c0", "c1", "c2", "q0"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed after the fencing: %q, want %q", got, want)
	}
}

// TestReadCommittedLatestStartsAtTheLSO: a read_committed group member
// that starts a partition at "latest" starts at the last stable offset, not
// the high watermark (Kafka's ListOffsets LATEST under read_committed,
// KIP-98): the records of a transaction open when it joined are read once
// the transaction commits, not skipped.
func TestReadCommittedLatestStartsAtTheLSO(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "tx", 1)
	ctx := t.Context()
	ta.produce(t, "tx", 1, 0, 2) // before the member: not read
	p := newTxnProducer(t, ta, "open-while-joining")
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, values("t", 2)...); err != nil {
		t.Fatal(err)
	}

	cfg := ta.config("latest-rc", "tx")
	cfg.Reset, cfg.ReadCommitted = client.ResetLatest, true
	c := newConsumer(t, cfg)
	// Assignments are applied inside Poll.
	deadline := time.Now().Add(15 * time.Second)
	for len(c.Assignment()) == 0 {
		if recs := pollFor(t, c, 100*time.Millisecond); len(recs) != 0 {
			t.Fatalf("read %q while the transaction is open", recs[0].Value)
		}
		if time.Now().After(deadline) {
			t.Fatal("the member got no partitions in 15s")
		}
	}
	if recs := pollFor(t, c, 300*time.Millisecond); len(recs) != 0 {
		t.Fatalf("read %d records while the transaction is open", len(recs))
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	pollUntil(t, c, "the committed transaction", func(recs []client.Record) bool {
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
		return len(got) >= 2
	})
	if want := []string{"t0", "t1"}; !slices.Equal(got, want) {
		t.Fatalf("read %q, want %q (the transaction open when the member started)", got, want)
	}
}

// TestSeekToCommitted: a member moves back to its group's committed
// offsets, the reset policy's end where there are none, as a
// consume-transform-produce loop does after an abort; offsets committed in
// a transaction are where it lands once the transaction commits.
func TestSeekToCommitted(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "tx", 1)
	ta.produce(t, "tx", 1, 0, 5)
	cfg := ta.config("seek", "tx")
	cfg.ManualCommit = true
	c := newConsumer(t, cfg)
	firstAfterSeek := func(what string) int64 {
		t.Helper()
		var first int64 = -1
		pollUntil(t, c, what, func(recs []client.Record) bool {
			if len(recs) > 0 && first < 0 {
				first = recs[0].Offset
			}
			return first >= 0
		})
		return first
	}
	var read int
	pollUntil(t, c, "5 records", func(recs []client.Record) bool { read += len(recs); return read >= 5 })

	tp := client.TopicPartition{Topic: "tx", Partition: 0}
	if err := c.SeekToCommitted(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := firstAfterSeek("a record after the seek"); got != 0 {
		t.Fatalf("first record after seeking without a committed offset: %d, want 0 (earliest)", got)
	}

	p := newTxnProducer(t, ta, "seeker")
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.SendOffsetsToTransaction(t.Context(), "seek", []client.PartitionOffset{{Topic: "tx", Partition: 0, Offset: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := p.CommitTransaction(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.SeekToCommitted(t.Context(), tp, client.TopicPartition{Topic: "tx", Partition: 7}); err != nil {
		t.Fatal(err)
	}
	if got := firstAfterSeek("a record after the second seek"); got != 3 {
		t.Fatalf("first record after seeking to the transaction's offset: %d, want 3", got)
	}
}

// TestSendGroupOffsetsFencesZombies: offsets sent with a member's group
// metadata are staged while it is in the group at that epoch, and refused
// (KIP-447) for a member id the group does not know or an epoch it left.
func TestSendGroupOffsetsFencesZombies(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "tx", 1)
	ta.produce(t, "tx", 1, 0, 5)
	cfg := ta.config("members", "tx")
	cfg.ManualCommit = true
	c := newConsumer(t, cfg)
	var read int
	pollUntil(t, c, "5 records", func(recs []client.Record) bool { read += len(recs); return read >= 5 })
	m := c.GroupMetadata()
	if m.Group != "members" || m.MemberID == "" || m.MemberEpoch <= 0 {
		t.Fatalf("GroupMetadata = %+v, want the group, a member id and an epoch", m)
	}
	p := newTxnProducer(t, ta, "member-txn")
	offsets := []client.PartitionOffset{{Topic: "tx", Partition: 0, Offset: 4}}
	for _, bad := range []client.GroupMetadata{
		{Group: m.Group, MemberID: "not-a-member", MemberEpoch: m.MemberEpoch},
		{Group: m.Group, MemberID: m.MemberID, MemberEpoch: m.MemberEpoch - 1},
	} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		err := p.SendGroupOffsetsToTransaction(t.Context(), bad, offsets)
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("offsets of %+v: %v, want FAILED_PRECONDITION", bad, err)
		}
		if err := p.AbortTransaction(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.SendGroupOffsetsToTransaction(t.Context(), m, offsets); err != nil {
		t.Fatal(err)
	}
	if err := p.CommitTransaction(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.SeekToCommitted(t.Context()); err != nil {
		t.Fatal(err)
	}
	var first int64 = -1
	pollUntil(t, c, "a record after the seek", func(recs []client.Record) bool {
		if len(recs) > 0 {
			first = recs[0].Offset
		}
		return first >= 0
	})
	if first != 4 {
		t.Fatalf("first record after seeking to the member's transactional offset: %d, want 4", first)
	}
}

// lossyRPC fails the first calls of the RPCs whose path ends with one of
// its suffixes, as an agent killed mid-call does: before sending (the
// connection refused) or after the agent has answered (the answer lost, so
// the call took effect).
type lossyRPC struct {
	next    http.RoundTripper
	fails   map[string]int // suffix -> calls still to fail
	after   bool           // fail after the agent answered
	mu      sync.Mutex
	injured atomic.Int64
}

func (l *lossyRPC) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	fail := false
	for s, n := range l.fails {
		if n > 0 && strings.HasSuffix(req.URL.Path, s) {
			l.fails[s], fail = n-1, true
		}
	}
	l.mu.Unlock()
	if !fail {
		return l.next.RoundTrip(req)
	}
	l.injured.Add(1)
	if !l.after {
		return nil, errors.New("injected: connection refused")
	}
	resp, err := l.next.RoundTrip(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return nil, io.ErrUnexpectedEOF
}

// TestTransactionRPCsRetried: a transactional producer rides out an agent
// that fails its transaction RPCs as a restart does. Calls refused before
// they reach the agent are retried; a commit whose answer was lost after
// it committed is retried and answered with success, committing once.
func TestTransactionRPCsRetried(t *testing.T) {
	t.Parallel()
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after=%v", after), func(t *testing.T) {
			t.Parallel()
			ta := startAgent(t)
			ta.createTopic(t, "tx", 2)
			ctx := t.Context()
			lossy := &lossyRPC{after: after, fails: map[string]int{"/InitProducerId": 1, "/AddPartitionsToTxn": 2,
				"/AddOffsetsToTxn": 1, "/TxnOffsetCommit": 1, "/EndTxn": 2}}
			hc := h2cClient(t, func(rt http.RoundTripper) http.RoundTripper { lossy.next = rt; return lossy })
			p, err := client.NewProducer(hc, ta.url, client.TransactionalID("lossy", 0), client.Linger(time.Millisecond),
				client.ManualPartitioner(), client.RetryBackoff(5*time.Millisecond, 20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close(context.Background()) })
			if err := p.InitTransactions(ctx); err != nil {
				t.Fatalf("InitTransactions: %v", err)
			}
			for i, prefix := range []string{"a", "b"} {
				if err := p.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				recs := values(prefix, 4)
				for j, r := range recs {
					r.Partition = int32(j % 2)
				}
				if err := p.ProduceSync(ctx, recs...); err != nil {
					t.Fatalf("transaction %d: produce: %v", i, err)
				}
				if err := p.SendOffsetsToTransaction(ctx, "etl", []client.PartitionOffset{{Topic: "tx", Partition: 0, Offset: int64(i + 1)}}); err != nil {
					t.Fatalf("transaction %d: send offsets: %v", i, err)
				}
				if err := p.CommitTransaction(ctx); err != nil {
					t.Fatalf("transaction %d: commit: %v", i, err)
				}
			}
			if n := lossy.injured.Load(); n != 7 {
				t.Fatalf("%d calls failed by the test, want 7", n)
			}
			if got, want := ta.readCommitted(t, "tx", 0), []string{"a0", "a2", "b0", "b2"}; !slices.Equal(got, want) {
				t.Fatalf("read_committed partition 0: %q, want %q", got, want)
			}
			if got, want := ta.readCommitted(t, "tx", 1), []string{"a1", "a3", "b1", "b3"}; !slices.Equal(got, want) {
				t.Fatalf("read_committed partition 1: %q, want %q", got, want)
			}
			if got := ta.committed(t, "etl")[client.TopicPartition{Topic: "tx", Partition: 0}]; got != 2 {
				t.Fatalf("group offset %d, want 2", got)
			}
		})
	}
}

// TestEndTxnOtherOutcomeRefused: once a transaction committed, an EndTxn
// asking to abort it (a confused retry) is INVALID_TXN_STATE, and the
// same commit again is answered with success.
func TestEndTxnOtherOutcomeRefused(t *testing.T) {
	t.Parallel()
	ta := startAgent(t)
	ta.createTopic(t, "tx", 1)
	ctx := t.Context()
	p := newTxnProducer(t, ta, "other")
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, values("c", 1)...); err != nil {
		t.Fatal(err)
	}
	if err := p.CommitTransaction(ctx); err != nil {
		t.Fatal(err)
	}
	pid, epoch := p.ProducerID()
	id := &stratav1.TxnProducer{TransactionalId: "other", ProducerId: pid, ProducerEpoch: int32(epoch)}
	if _, err := ta.producer.EndTxn(ctx, connect.NewRequest(&stratav1.EndTxnRequest{Producer: id, Commit: true})); err != nil {
		t.Fatalf("retried commit: %v", err)
	}
	_, err := ta.producer.EndTxn(ctx, connect.NewRequest(&stratav1.EndTxnRequest{Producer: id, Commit: false}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "CompleteCommit") {
		t.Fatalf("abort after the commit: %v, want invalid_argument naming CompleteCommit", err)
	}
	if got := ta.readCommitted(t, "tx", 0); !slices.Equal(got, []string{"c0"}) {
		t.Fatalf("read_committed: %q", got)
	}
}
