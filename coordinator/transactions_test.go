package coordinator_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
)

// txnBatch is a transactional producer's data batch.
func txnBatch(off, size int64, records int32, pid int64, epoch int16, seq int32) coordinator.BatchCommit {
	b := idem(off, size, records, pid, epoch, seq)
	b.Transactional = true
	return b
}

// marker is a transaction marker (a control batch of one record).
func marker(off int64, pid int64, epoch int16, controlType int16) coordinator.BatchCommit {
	return coordinator.BatchCommit{ByteOffset: off, ByteLength: 10, Records: 1, MaxTimestamp: 1, ProducerID: pid,
		ProducerEpoch: epoch, BaseSequence: -1, Transactional: true, Control: true, ControlType: controlType}
}

func wantTxnState(t testing.TB, txn coordinator.Txn, err error, state coordinator.TxnState) coordinator.Txn {
	t.Helper()
	if err != nil {
		t.Fatalf("want state %s, got error %v", state, err)
	}
	if txn.State != state {
		t.Fatalf("state %s, want %s (%+v)", txn.State, state, txn)
	}
	return txn
}

func TestTxnStateMachine(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "txn-sm", 3)
		p0, p1 := coordinator.TxnPartition{TopicID: tp.ID, Partition: 0}, coordinator.TxnPartition{TopicID: tp.ID, Partition: 1}

		_, err := r.AddPartitionsToTxn(ctx, "sm", 7, 0, []coordinator.TxnPartition{p0})
		wantErr(t, err, coordinator.ErrNotFound)
		_, err = r.DescribeTxn(ctx, "sm")
		wantErr(t, err, coordinator.ErrNotFound)

		txn, err := r.InitTxn(ctx, "sm", 7, 0, time.Minute)
		txn = wantTxnState(t, txn, err, coordinator.TxnEmpty)
		if txn.ProducerID != 7 || txn.ProducerEpoch != 0 || txn.Timeout != time.Minute || !txn.Started.IsZero() {
			t.Fatalf("after init: %+v", txn)
		}
		// EndTxn with nothing ongoing is Kafka's INVALID_TXN_STATE.
		_, err = r.EndTxn(ctx, "sm", 7, 0, true)
		wantErr(t, err, coordinator.ErrInvalidTxnState)

		txn, err = r.AddPartitionsToTxn(ctx, "sm", 7, 0, []coordinator.TxnPartition{p1})
		txn = wantTxnState(t, txn, err, coordinator.TxnOngoing)
		if txn.Started.IsZero() || !txn.Deadline.Equal(txn.Started.Add(time.Minute)) || txn.DataProducerID != 7 {
			t.Fatalf("started transaction: %+v", txn)
		}
		started := txn.Started
		txn, err = r.AddPartitionsToTxn(ctx, "sm", 7, 0, []coordinator.TxnPartition{p0, p1})
		txn = wantTxnState(t, txn, err, coordinator.TxnOngoing)
		if !txn.Started.Equal(started) || !slices.Equal(txn.Partitions, []coordinator.TxnPartition{p0, p1}) {
			t.Fatalf("second add: %+v (started %v)", txn, started)
		}
		txn, err = r.AddOffsetsToTxn(ctx, "sm", 7, 0, "g1")
		txn = wantTxnState(t, txn, err, coordinator.TxnOngoing)
		if !slices.Equal(txn.Groups, []string{"g1"}) {
			t.Fatalf("groups %v", txn.Groups)
		}

		txn, err = r.EndTxn(ctx, "sm", 7, 0, true)
		txn = wantTxnState(t, txn, err, coordinator.TxnPrepareCommit)
		if !slices.Equal(txn.Partitions, []coordinator.TxnPartition{p0, p1}) || !slices.Equal(txn.Groups, []string{"g1"}) {
			t.Fatalf("prepared: %+v", txn)
		}
		// A retried EndTxn gets the same answer; the other outcome is refused.
		again, err := r.EndTxn(ctx, "sm", 7, 0, true)
		wantTxnState(t, again, err, coordinator.TxnPrepareCommit)
		if !slices.Equal(again.Partitions, txn.Partitions) {
			t.Fatalf("retried EndTxn: %+v", again)
		}
		_, err = r.EndTxn(ctx, "sm", 7, 0, false)
		wantErr(t, err, coordinator.ErrInvalidTxnState)
		_, err = r.AddPartitionsToTxn(ctx, "sm", 7, 0, []coordinator.TxnPartition{p0})
		wantErr(t, err, coordinator.ErrConcurrentTransactions)
		wantErr(t, err, coordinator.ErrConflict)

		txn, err = r.CompleteTxn(ctx, "sm", 7, 0)
		txn = wantTxnState(t, txn, err, coordinator.TxnCompleteCommit)
		if len(txn.Partitions) != 0 || len(txn.Groups) != 0 || !txn.Started.IsZero() {
			t.Fatalf("completed: %+v", txn)
		}
		txn, err = r.CompleteTxn(ctx, "sm", 7, 0)
		wantTxnState(t, txn, err, coordinator.TxnCompleteCommit)
		txn, err = r.EndTxn(ctx, "sm", 7, 0, true)
		wantTxnState(t, txn, err, coordinator.TxnCompleteCommit)
		_, err = r.EndTxn(ctx, "sm", 7, 0, false)
		wantErr(t, err, coordinator.ErrInvalidTxnState)

		// The next add starts a new transaction, which can abort.
		txn, err = r.AddPartitionsToTxn(ctx, "sm", 7, 0, []coordinator.TxnPartition{p0})
		txn = wantTxnState(t, txn, err, coordinator.TxnOngoing)
		if !slices.Equal(txn.Partitions, []coordinator.TxnPartition{p0}) || len(txn.Groups) != 0 {
			t.Fatalf("new transaction kept old partitions or groups: %+v", txn)
		}
		txn, err = r.EndTxn(ctx, "sm", 7, 0, false)
		wantTxnState(t, txn, err, coordinator.TxnPrepareAbort)
		_, err = r.CompleteTxn(ctx, "sm", 7, 0)
		wantErr(t, err, nil)
		txn, err = r.DescribeTxn(ctx, "sm")
		wantTxnState(t, txn, err, coordinator.TxnCompleteAbort)
	})
}

func TestTxnBadInput(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		for _, c := range []struct {
			name    string
			id      string
			timeout time.Duration
		}{{"empty id", "", time.Minute}, {"braces", "a{b}", time.Minute}, {"zero timeout", "x", 0},
			{"timeout over max", "x", coordinator.MaxTxnTimeout + time.Millisecond}} {
			_, err := r.InitTxn(ctx, c.id, 1, 0, c.timeout)
			if !errors.Is(err, coordinator.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", c.name, err)
			}
		}
		tp := createTopic(t, r, "txn-bad", 1)
		for _, b := range []coordinator.BatchCommit{
			marker(0, -1, 0, coordinator.ControlAbort), // a marker needs a producer
			marker(0, 5, 0, 2),                         // control types are 0 and 1
			{ByteLength: 10, Records: 1, ProducerID: -1, Transactional: true},
		} {
			_, err := r.CommitSegment(ctx, segment(tp.ID, 0, b))
			wantErr(t, err, coordinator.ErrInvalid)
		}
		_, err := r.AbortedTransactions(ctx, tp.ID, 0, 10, 5)
		wantErr(t, err, coordinator.ErrInvalid)
	})
}

func TestTxnFencing(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "txn-fence", 2)
		p0 := coordinator.TxnPartition{TopicID: tp.ID, Partition: 0}
		if _, err := r.InitTxn(ctx, "f", 7, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AddPartitionsToTxn(ctx, "f", 7, 0, []coordinator.TxnPartition{p0}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AddOffsetsToTxn(ctx, "f", 7, 0, "fg"); err != nil {
			t.Fatal(err)
		}
		// An epoch the index never handed out is refused too.
		_, err := r.AddPartitionsToTxn(ctx, "f", 7, 1, []coordinator.TxnPartition{p0})
		wantErr(t, err, coordinator.ErrFenced)
		_, err = r.AddPartitionsToTxn(ctx, "f", 8, 0, []coordinator.TxnPartition{p0})
		wantErr(t, err, coordinator.ErrFenced)

		// The new incarnation aborts the old one's open transaction.
		txn, err := r.InitTxn(ctx, "f", 7, 1, 2*time.Minute)
		txn = wantTxnState(t, txn, err, coordinator.TxnPrepareAbort)
		if txn.ProducerEpoch != 1 || txn.DataProducerID != 7 || !slices.Equal(txn.Partitions, []coordinator.TxnPartition{p0}) ||
			!slices.Equal(txn.Groups, []string{"fg"}) {
			t.Fatalf("re-init: %+v", txn)
		}
		// A retried init answers the same.
		txn, err = r.InitTxn(ctx, "f", 7, 1, 2*time.Minute)
		wantTxnState(t, txn, err, coordinator.TxnPrepareAbort)

		// Every call of the old epoch is fenced.
		_, err = r.InitTxn(ctx, "f", 7, 0, time.Minute)
		wantErr(t, err, coordinator.ErrFenced)
		_, err = r.AddPartitionsToTxn(ctx, "f", 7, 0, []coordinator.TxnPartition{p0})
		wantErr(t, err, coordinator.ErrFenced)
		_, err = r.AddOffsetsToTxn(ctx, "f", 7, 0, "fg")
		wantErr(t, err, coordinator.ErrFenced)
		_, err = r.EndTxn(ctx, "f", 7, 0, true)
		wantErr(t, err, coordinator.ErrFenced)
		_, err = r.CompleteTxn(ctx, "f", 7, 0)
		wantErr(t, err, coordinator.ErrFenced)
		// The new one cannot start before the abort is complete.
		_, err = r.AddPartitionsToTxn(ctx, "f", 7, 1, []coordinator.TxnPartition{p0})
		wantErr(t, err, coordinator.ErrConcurrentTransactions)
		txn, err = r.CompleteTxn(ctx, "f", 7, 1)
		wantTxnState(t, txn, err, coordinator.TxnCompleteAbort)
		txn, err = r.AddPartitionsToTxn(ctx, "f", 7, 1, []coordinator.TxnPartition{p0})
		txn = wantTxnState(t, txn, err, coordinator.TxnOngoing)
		if txn.Timeout != 2*time.Minute {
			t.Fatalf("timeout %v, want the new init's", txn.Timeout)
		}

		// A new producer id (the old one's epochs ran out) takes over too;
		// the markers of the aborted transaction carry the old id.
		txn, err = r.InitTxn(ctx, "f", 9, 0, time.Minute)
		txn = wantTxnState(t, txn, err, coordinator.TxnPrepareAbort)
		if txn.ProducerID != 9 || txn.DataProducerID != 7 {
			t.Fatalf("new producer id: %+v", txn)
		}
		_, err = r.EndTxn(ctx, "f", 7, 1, false)
		wantErr(t, err, coordinator.ErrFenced)
	})
}

func fetchOne(t testing.TB, r *coordinator.Redis, group string, tp coordinator.TopicPartition) (int64, bool) {
	t.Helper()
	got, err := r.FetchOffsets(context.Background(), group, []coordinator.TopicPartition{tp})
	if err != nil {
		t.Fatal(err)
	}
	o, ok := got[tp]
	return o.Offset, ok
}

func TestTxnOffsets(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		a := coordinator.TopicPartition{Topic: "in", Partition: 0}
		b := coordinator.TopicPartition{Topic: "in", Partition: 1}
		if err := r.CommitOffsets(ctx, "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 5}}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.InitTxn(ctx, "o", 3, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		begin := func(epoch int16, offsets map[coordinator.TopicPartition]coordinator.CommittedOffset) {
			t.Helper()
			if _, err := r.AddOffsetsToTxn(ctx, "o", 3, epoch, "g"); err != nil {
				t.Fatal(err)
			}
			if err := r.TxnOffsetCommit(ctx, "g", 3, epoch, nil, offsets); err != nil {
				t.Fatal(err)
			}
		}

		// Committed: visible only once the transaction completes.
		topicID := uuid.New()
		begin(0, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 10, Metadata: "m", TopicID: topicID}, b: {Offset: 7}})
		if o, _ := fetchOne(t, r, "g", a); o != 5 {
			t.Fatalf("pending offset visible: %d", o)
		}
		if _, ok := fetchOne(t, r, "g", b); ok {
			t.Fatal("pending offset of b visible")
		}
		if all, err := r.FetchOffsets(ctx, "g", nil); err != nil || len(all) != 1 {
			t.Fatalf("all offsets %v, %v: want only the plain commit", all, err)
		}
		if _, err := r.EndTxn(ctx, "o", 3, 0, true); err != nil {
			t.Fatal(err)
		}
		if o, _ := fetchOne(t, r, "g", a); o != 5 {
			t.Fatalf("offset visible before completion: %d", o)
		}
		if _, err := r.CompleteTxn(ctx, "o", 3, 0); err != nil {
			t.Fatal(err)
		}
		got, err := r.FetchOffsets(ctx, "g", nil)
		if err != nil || got[a].Offset != 10 || got[a].Metadata != "m" || got[a].TopicID != topicID || got[b].Offset != 7 {
			t.Fatalf("after commit: %v, %v", got, err)
		}

		// Aborted: never visible, not even after a retried completion.
		begin(0, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 20}})
		if _, err := r.EndTxn(ctx, "o", 3, 0, false); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := r.CompleteTxn(ctx, "o", 3, 0); err != nil {
				t.Fatal(err)
			}
			if o, _ := fetchOne(t, r, "g", a); o != 10 {
				t.Fatalf("aborted offset visible: %d", o)
			}
		}

		// A re-init aborts the staged offsets of the old epoch, and the old
		// epoch can stage no more.
		begin(0, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 30}})
		txn, err := r.InitTxn(ctx, "o", 3, 1, time.Minute)
		wantTxnState(t, txn, err, coordinator.TxnPrepareAbort)
		if _, err := r.CompleteTxn(ctx, "o", 3, 1); err != nil {
			t.Fatal(err)
		}
		if o, _ := fetchOne(t, r, "g", a); o != 10 {
			t.Fatalf("offset of the fenced transaction visible: %d", o)
		}
		begin(1, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 40}})
		err = r.TxnOffsetCommit(ctx, "g", 3, 0, nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 99}})
		wantErr(t, err, coordinator.ErrFenced)
		if _, err := r.EndTxn(ctx, "o", 3, 1, true); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CompleteTxn(ctx, "o", 3, 1); err != nil {
			t.Fatal(err)
		}
		if o, _ := fetchOne(t, r, "g", a); o != 40 {
			t.Fatalf("after the new epoch's commit: %d, want 40", o)
		}
	})
}

func wantLSO(t testing.TB, r *coordinator.Redis, tp coordinator.Topic, hwm, lso int64) {
	t.Helper()
	st, err := r.PartitionState(context.Background(), tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.HighWatermark != hwm || st.LastStableOffset != lso {
		t.Fatalf("high watermark %d, LSO %d; want %d, %d", st.HighWatermark, st.LastStableOffset, hwm, lso)
	}
}

func wantAborted(t testing.TB, r *coordinator.Redis, tp coordinator.Topic, from, to int64, want ...coordinator.AbortedTxn) {
	t.Helper()
	got, err := r.AbortedTransactions(context.Background(), tp.ID, 0, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("aborted in [%d, %d]: %+v, want %+v", from, to, got, want)
	}
}

func TestTxnLastStableOffset(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "txn-lso", 1)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, plain(0, 100, 10, 1)))[0], 0)
		wantLSO(t, r, tp, 10, 10)

		// Producer 7's transaction starts at 10 and holds the LSO there while
		// the log grows, whoever writes.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 50, 5, 7, 0, 0)))[0], 10)
		wantLSO(t, r, tp, 15, 10)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, plain(0, 50, 5, 1), txnBatch(50, 50, 5, 7, 0, 5)))[0], 15, 20)
		wantLSO(t, r, tp, 25, 10)
		// Producer 8's transaction starts at 25.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 30, 3, 8, 0, 0)))[0], 25)
		wantLSO(t, r, tp, 28, 10)

		// 7 commits: the LSO moves to 8's first offset.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 7, 0, coordinator.ControlCommit)))[0], 28)
		wantLSO(t, r, tp, 29, 25)
		wantAborted(t, r, tp, 0, 100)

		// 8 aborts, the marker at 30: nothing open, and its range is aborted.
		// The retried commit of the marker's segment answers the same and
		// records the abort once.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 1, 8, 0, 3)))[0], 29)
		abort := segment(tp.ID, 0, marker(0, 8, 0, coordinator.ControlAbort))
		first := commit(t, r, abort)
		wantOffsets(t, first[0], 30)
		wantLSO(t, r, tp, 31, 31)
		retry := commit(t, r, abort)
		wantOffsets(t, retry[0], 30)
		if retry[0].HighWatermark != first[0].HighWatermark {
			t.Fatalf("retried marker commit: %+v, first %+v", retry, first)
		}
		aborted8 := coordinator.AbortedTxn{ProducerID: 8, FirstOffset: 25, LastOffset: 30}
		wantAborted(t, r, tp, 0, 100, aborted8)
		wantLSO(t, r, tp, 31, 31)

		// A new transaction of 7, aborted too, then ranges around both.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 20, 2, 7, 0, 10), plain(20, 10, 1, 1)))[0], 31, 33)
		wantLSO(t, r, tp, 34, 31)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 7, 0, coordinator.ControlAbort)))[0], 34)
		wantLSO(t, r, tp, 35, 35)
		aborted7 := coordinator.AbortedTxn{ProducerID: 7, FirstOffset: 31, LastOffset: 34}
		wantAborted(t, r, tp, 0, 100, aborted8, aborted7)
		wantAborted(t, r, tp, 0, 24)
		wantAborted(t, r, tp, 25, 25, aborted8)
		wantAborted(t, r, tp, 30, 30, aborted8)
		wantAborted(t, r, tp, 30, 31, aborted8, aborted7)
		wantAborted(t, r, tp, 31, 40, aborted7)
		wantAborted(t, r, tp, 35, 40)

		// A marker with nothing open on the partition records nothing.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 9, 0, coordinator.ControlAbort)))[0], 35)
		wantLSO(t, r, tp, 36, 36)
		wantAborted(t, r, tp, 0, 100, aborted8, aborted7)
	})
}

func TestTxnExpired(t *testing.T) {
	prefix := uniquePrefix(t)
	forEachBackend(t, coordinator.Options{Prefix: prefix}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "txn-exp", 1)
		parts := []coordinator.TxnPartition{{TopicID: tp.ID, Partition: 0}}
		// An add to an unknown id leaves a candidate in the reaper's index,
		// which the next listing drops.
		_, err := r.AddPartitionsToTxn(ctx, "ghost", 1, 0, parts)
		wantErr(t, err, coordinator.ErrNotFound)
		deadlines := prefix + "{m}:txn-deadlines"
		if err := r.Client().ZScore(ctx, deadlines, "ghost").Err(); err != nil {
			t.Fatalf("ghost candidate: %v", err)
		}
		if _, err := r.ListExpiredTxns(ctx, 100); err != nil {
			t.Fatal(err)
		}
		if err := r.Client().ZScore(ctx, deadlines, "ghost").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("ghost candidate still indexed: %v", err)
		}
		for _, c := range []struct {
			id      string
			timeout time.Duration
		}{{"short", 50 * time.Millisecond}, {"long", coordinator.MaxTxnTimeout}, {"idle", 50 * time.Millisecond}} {
			if _, err := r.InitTxn(ctx, c.id, 1, 0, c.timeout); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"short", "long"} {
			if _, err := r.AddPartitionsToTxn(ctx, id, 1, 0, parts); err != nil {
				t.Fatal(err)
			}
		}
		// "idle" never started a transaction: it never expires.
		ids := func() []string {
			txns, err := r.ListExpiredTxns(ctx, 100)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, x := range txns {
				out = append(out, x.TransactionalID)
			}
			return out
		}
		deadline := time.Now().Add(30 * time.Second)
		for !slices.Equal(ids(), []string{"short"}) {
			if time.Now().After(deadline) {
				t.Fatalf("expired transactions %v, want [short]", ids())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Aborting it (as the reaper does) takes it off the list.
		if _, err := r.EndTxn(ctx, "short", 1, 0, false); err != nil {
			t.Fatal(err)
		}
		if got := ids(); !slices.Equal(got, []string{"short"}) {
			t.Fatalf("a prepared abort past its deadline must stay listed until complete: %v", got)
		}
		if _, err := r.CompleteTxn(ctx, "short", 1, 0); err != nil {
			t.Fatal(err)
		}
		if got := ids(); len(got) != 0 {
			t.Fatalf("expired after completion: %v", got)
		}
	})
}

// TestTxnEmbeddedRestart: the embedded index keeps a transaction across a
// crash (its snapshot, as the file is when the process dies): the state,
// the partition's held-back LSO and the staged offsets, and the
// transaction completes after the restart.
func TestTxnEmbeddedRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r := openEmbedded(t, dir, coordinator.Options{})
	t.Cleanup(func() { _ = r.Close() })
	tp := createTopic(t, r, "txn-restart", 1)
	a := coordinator.TopicPartition{Topic: "txn-restart", Partition: 0}
	if _, err := r.InitTxn(ctx, "rs", 4, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddPartitionsToTxn(ctx, "rs", 4, 0, []coordinator.TxnPartition{{TopicID: tp.ID, Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddOffsetsToTxn(ctx, "rs", 4, 0, "rg"); err != nil {
		t.Fatal(err)
	}
	wantOffsets(t, commit(t, r, segment(tp.ID, 0, plain(0, 10, 2, 1), txnBatch(10, 10, 3, 4, 0, 0)))[0], 0, 2)
	if err := r.TxnOffsetCommit(ctx, "rg", 4, 0, nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 2}}); err != nil {
		t.Fatal(err)
	}

	r2 := openEmbedded(t, copySnapshot(t, dir), coordinator.Options{})
	t.Cleanup(func() { _ = r2.Close() })
	txn, err := r2.DescribeTxn(ctx, "rs")
	txn = wantTxnState(t, txn, err, coordinator.TxnOngoing)
	if len(txn.Partitions) != 1 || !slices.Equal(txn.Groups, []string{"rg"}) {
		t.Fatalf("restored transaction: %+v", txn)
	}
	wantLSO(t, r2, tp, 5, 2)
	if _, ok := fetchOne(t, r2, "rg", a); ok {
		t.Fatal("staged offset visible after restart")
	}
	if _, err := r2.EndTxn(ctx, "rs", 4, 0, true); err != nil {
		t.Fatal(err)
	}
	wantOffsets(t, commit(t, r2, segment(tp.ID, 0, marker(0, 4, 0, coordinator.ControlCommit)))[0], 5)
	if _, err := r2.CompleteTxn(ctx, "rs", 4, 0); err != nil {
		t.Fatal(err)
	}
	wantLSO(t, r2, tp, 6, 6)
	if o, ok := fetchOne(t, r2, "rg", a); !ok || o != 2 {
		t.Fatalf("committed offset after restart: %d, %v", o, ok)
	}
}

// TestTxnMarkerFences: the abort marker a re-init writes with the bumped
// epoch fences the old epoch's late batches on the partition, so a zombie
// cannot open a transaction that would hold the LSO back; an old epoch's
// marker is refused.
func TestTxnMarkerFences(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "txn-zombie", 1)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 2, 7, 0, 0)))[0], 0)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 7, 1, coordinator.ControlAbort)))[0], 2)
		wantLSO(t, r, tp, 3, 3)
		res := commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 2, 7, 0, 2), marker(10, 7, 0, coordinator.ControlCommit)))[0]
		for i, b := range res.Batches {
			if !errors.Is(b.Err, coordinator.ErrFenced) {
				t.Fatalf("zombie batch %d: %+v, want ErrFenced", i, b)
			}
		}
		wantLSO(t, r, tp, 3, 3)
		wantAborted(t, r, tp, 0, 10, coordinator.AbortedTxn{ProducerID: 7, FirstOffset: 0, LastOffset: 2})
		// The new epoch writes and commits.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 2, 7, 1, 0)))[0], 3)
		wantLSO(t, r, tp, 5, 3)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 7, 1, coordinator.ControlCommit)))[0], 5)
		wantLSO(t, r, tp, 6, 6)
	})
}

// TestTxnTrim: DeleteRecords drops the aborted transactions wholly below
// the new log start and keeps the one it cuts through; the LSO never falls
// below the log start.
func TestTxnTrim(t *testing.T) {
	prefix := uniquePrefix(t)
	forEachBackend(t, coordinator.Options{Prefix: prefix}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "txn-trim", 1)
		// Producer 1 aborts [0, 2], producer 2 aborts [3, 6] with producer
		// 3's open transaction starting at 4.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 2, 1, 0, 0)))[0], 0)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 1, 0, coordinator.ControlAbort)))[0], 2)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 1, 2, 0, 0)))[0], 3)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, txnBatch(0, 10, 2, 3, 0, 0)))[0], 4)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, marker(0, 2, 0, coordinator.ControlAbort)))[0], 6)
		a1 := coordinator.AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 2}
		a2 := coordinator.AbortedTxn{ProducerID: 2, FirstOffset: 3, LastOffset: 6}
		wantAborted(t, r, tp, 0, 10, a1, a2)
		wantLSO(t, r, tp, 7, 4)

		if _, err := r.DeleteRecords(ctx, tp.ID, 0, 5); err != nil {
			t.Fatal(err)
		}
		wantAborted(t, r, tp, 0, 10, a2)
		wantLSO(t, r, tp, 7, 5)

		// Dropping the deleted topic's partition deletes its transaction keys.
		if err := r.DeleteTopic(ctx, "txn-trim"); err != nil {
			t.Fatal(err)
		}
		if err := r.DropPartition(ctx, tp.ID, 0); err != nil {
			t.Fatal(err)
		}
		tag := prefix + "{t:" + tp.ID.String() + ":0}:"
		if n, err := r.Client().Exists(ctx, tag+"txn-open", tag+"txn-aborted").Result(); err != nil || n != 0 {
			t.Fatalf("transaction keys left after the drop: %d, %v", n, err)
		}
	})
}

// TestTxnWithTransactionalProducer: InitProducerId with a transactional id
// is InitTransactionalProducer, then InitTxn with what it returned; the
// second incarnation aborts the first one's open transaction and fences it.
// The transaction's keys expire like the binding.
func TestTxnWithTransactionalProducer(t *testing.T) {
	prefix := uniquePrefix(t)
	forEachBackend(t, coordinator.Options{Prefix: prefix}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "txn-tp", 1)
		parts := []coordinator.TxnPartition{{TopicID: tp.ID, Partition: 0}}
		pid, epoch, err := r.InitTransactionalProducer(ctx, "app", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		txn, err := r.InitTxn(ctx, "app", pid, epoch, time.Minute)
		wantTxnState(t, txn, err, coordinator.TxnEmpty)
		if _, err := r.AddPartitionsToTxn(ctx, "app", pid, epoch, parts); err != nil {
			t.Fatal(err)
		}
		ttl, err := r.Client().PTTL(ctx, prefix+"{x:app}:txn").Result()
		if err != nil || ttl <= 0 || ttl > coordinator.ProducerIDExpiry {
			t.Fatalf("transaction key TTL %v, %v: want in (0, %v]", ttl, err, coordinator.ProducerIDExpiry)
		}

		pid2, epoch2, err := r.InitTransactionalProducer(ctx, "app", time.Minute)
		if err != nil || pid2 != pid || epoch2 != epoch+1 {
			t.Fatalf("second init: %d/%d, %v; want %d/%d", pid2, epoch2, err, pid, epoch+1)
		}
		txn, err = r.InitTxn(ctx, "app", pid2, epoch2, time.Minute)
		txn = wantTxnState(t, txn, err, coordinator.TxnPrepareAbort)
		if !slices.Equal(txn.Partitions, parts) || txn.DataProducerID != pid {
			t.Fatalf("aborting: %+v", txn)
		}
		_, err = r.EndTxn(ctx, "app", pid, epoch, true)
		wantErr(t, err, coordinator.ErrFenced)
		txn, err = r.CompleteTxn(ctx, "app", pid2, epoch2)
		wantTxnState(t, txn, err, coordinator.TxnCompleteAbort)
	})
}
