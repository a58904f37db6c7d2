package agentcore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KIP-447 with franz-go's GroupTransactSession: a consume-transform-produce
// member is killed after a committed transaction; another session, with
// its own transactional id, takes its partitions over and resumes from the
// committed offsets (RequireStable). The killed member's producer epoch is
// still valid (nothing fenced its transactional id), so only its group
// generation can refuse it: its TxnOffsetCommit, sent as the zombie would
// with its old member id and generation, is refused, and the output read
// with read_committed holds every input record exactly once.
func TestGroupTransactSessionZombieFenced(t *testing.T) {
	t.Parallel()
	w := newWireClient(t, kafkaAgents(t, 1)[0])
	ctx := w.ctx
	const in, out, group, records = "eos-in", "eos-out", "eos-group", 20
	w.createTopic(in, 2)
	w.createTopic(out, 1)
	prod, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var want []string
	for i := range records {
		v := fmt.Sprintf("r%02d", i)
		want = append(want, v)
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: in, Partition: int32(i % 2), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	session := func(tid string, d *cuttable) *kgo.GroupTransactSession {
		t.Helper()
		opts := []kgo.Opt{
			kgo.SeedBrokers(w.addr), kgo.TransactionalID(tid), kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(in), kgo.DefaultProduceTopic(out),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
			kgo.RebalanceTimeout(10 * time.Second), kgo.TransactionTimeout(10 * time.Second),
			kgo.FetchMaxWait(200 * time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		}
		if d != nil {
			opts = append(opts, kgo.Dialer(d.dial))
		}
		s, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// transact runs one poll's records through a transaction: whether it
	// committed any.
	transact := func(s *kgo.GroupTransactSession, pctx context.Context) (bool, error) {
		fs := s.PollRecords(pctx, 5)
		if pctx.Err() != nil {
			return false, pctx.Err()
		}
		if fs.Empty() {
			return false, nil
		}
		if err := s.Begin(); err != nil {
			return false, err
		}
		var rs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { rs = append(rs, &kgo.Record{Value: r.Value}) })
		if err := s.ProduceSync(pctx, rs...).FirstErr(); err != nil {
			_, _ = s.End(pctx, kgo.TryAbort)
			return false, err
		}
		committed, err := s.End(pctx, kgo.TryCommit)
		return committed && len(rs) > 0, err
	}

	// Member A commits one transaction, then is killed: its connections
	// are cut, so its session expires; its client never closes.
	dA := &cuttable{}
	a := session("eos-a", dA)
	for {
		ok, err := transact(a, ctx)
		if err != nil {
			t.Fatalf("member A: %v", err)
		}
		if ok {
			break
		}
	}
	memberA, genA := a.Client().GroupMetadata()
	pidA, epochA, err := a.Client().ProducerID(ctx)
	if err != nil || memberA == "" {
		t.Fatalf("member A's identity: %q generation %d, producer %d/%d: %v", memberA, genA, pidA, epochA, err)
	}
	dA.kill()

	// Member B takes every partition over and finishes the input.
	b := session("eos-b", nil)
	defer b.Close()
	bctx, stopB := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for bctx.Err() == nil {
			if _, err := transact(b, bctx); err != nil && bctx.Err() == nil {
				t.Logf("member B: %v", err)
			}
		}
	}()
	readOut := func(min int) []string {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(w.addr), kgo.ConsumeTopics(out),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var got []string
		for len(got) < min {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("read_committed of the output after %q: %v", got, err)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		cl.PollFetches(short).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		cancel()
		slices.Sort(got)
		return got
	}
	if got := readOut(records); !slices.Equal(got, want) {
		t.Fatalf("output %q, want each input once: %q", got, want)
	}
	memberB, genB := b.Client().GroupMetadata()
	if memberB == "" || genB <= genA {
		t.Fatalf("member B %q at generation %d after taking over from A's %d", memberB, genB, genA)
	}
	stopB()
	wg.Wait()
	committed := w.offsetFetch(group, in, []int32{0, 1}, true)
	if committed[0].offset != records/2 || committed[1].offset != records/2 {
		t.Fatalf("committed offsets %+v, want %d on each partition", committed, records/2)
	}

	// The zombie A, its producer epoch still current, stages offsets of its
	// old generation: refused by the group, so its commit moves nothing.
	zombie := wireProducer{"eos-a", pidA, epochA}
	w.beginOffsets(zombie, group)
	code := w.txnCommit(zombie, group, memberA, "", genA, in, 0, 1, -1)
	if code != kerr.IllegalGeneration.Code && code != kerr.UnknownMemberID.Code {
		t.Fatalf("the zombie's TxnOffsetCommit: %v, want ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID", kerr.ErrorForCode(code))
	}
	if code := w.endTxn(zombie, true); code != 0 {
		t.Fatalf("the zombie's EndTxn: %v", kerr.ErrorForCode(code))
	}
	if got := w.offsetFetch(group, in, []int32{0, 1}, true); got[0] != committed[0] || got[1] != committed[1] {
		t.Fatalf("after the zombie's commit: %+v, want %+v", got, committed)
	}
}
