package coordinator_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// KIP-447: a transactional offset commit that names a group member is
// staged only while that member holds its lease at the epoch it sent,
// checked in the same script as the staging.
func TestTxnOffsetCommitMemberFence(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "live", Epoch: 5}, longTTL); err != nil {
			t.Fatal(err)
		}
		if err := r.PutMember(ctx, "g", coordinator.GroupMember{ID: "lapsed", Epoch: 1}, shortTTL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(expired)
		if _, err := r.InitTxn(ctx, "o", 3, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AddOffsetsToTxn(ctx, "o", 3, 0, "g"); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name  string
			fence *coordinator.MemberFence
			ok    bool
		}{
			{"older epoch", &coordinator.MemberFence{MemberID: "live", Epoch: 4}, false},
			{"newer epoch", &coordinator.MemberFence{MemberID: "live", Epoch: 6}, false},
			{"unknown member", &coordinator.MemberFence{MemberID: "ghost", Epoch: 5}, false},
			{"expired lease", &coordinator.MemberFence{MemberID: "lapsed", Epoch: 1}, false},
			{"current epoch", &coordinator.MemberFence{MemberID: "live", Epoch: 5}, true},
			{"no fence", nil, true},
		}
		for i, c := range cases {
			tp := coordinator.TopicPartition{Topic: "in", Partition: int32(i)}
			err := r.TxnOffsetCommit(ctx, "g", 3, 0, c.fence, map[coordinator.TopicPartition]coordinator.CommittedOffset{tp: {Offset: 10}})
			pending, perr := r.PendingTxnOffsets(ctx, "g")
			if perr != nil {
				t.Fatal(perr)
			}
			if c.ok {
				if err != nil || !pending[tp] {
					t.Fatalf("%s: %v, pending %v: want staged", c.name, err, pending)
				}
				continue
			}
			if !errors.Is(err, coordinator.ErrMemberFenced) || !errors.Is(err, coordinator.ErrFenced) {
				t.Fatalf("%s: %v, want ErrMemberFenced", c.name, err)
			}
			if pending[tp] {
				t.Fatalf("%s: refused, yet staged: %v", c.name, pending)
			}
		}
		// A producer's fence is not a member's.
		if _, err := r.InitTxn(ctx, "o", 3, 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CompleteTxn(ctx, "o", 3, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AddOffsetsToTxn(ctx, "o", 3, 1, "g"); err != nil {
			t.Fatal(err)
		}
		a := coordinator.TopicPartition{Topic: "in", Partition: 0}
		if err := r.TxnOffsetCommit(ctx, "g", 3, 1, nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 1}}); err != nil {
			t.Fatal(err)
		}
		err := r.TxnOffsetCommit(ctx, "g", 3, 0, &coordinator.MemberFence{MemberID: "live", Epoch: 5}, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 2}})
		if !errors.Is(err, coordinator.ErrFenced) || errors.Is(err, coordinator.ErrMemberFenced) {
			t.Fatalf("stale producer: %v, want ErrFenced and not ErrMemberFenced", err)
		}
		// Plain commits' fence failures are ErrMemberFenced too.
		err = r.CommitOffsets(ctx, "g", &coordinator.MemberFence{MemberID: "live", Epoch: 4}, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 2}})
		if !errors.Is(err, coordinator.ErrMemberFenced) {
			t.Fatalf("commit at a stale epoch: %v, want ErrMemberFenced", err)
		}
	})
}

// PendingTxnOffsets sees a transaction's staged partitions until it
// completes, whichever way, for every producer staging in the group.
func TestPendingTxnOffsets(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		a := coordinator.TopicPartition{Topic: "in", Partition: 0}
		b := coordinator.TopicPartition{Topic: "in", Partition: 1}
		c := coordinator.TopicPartition{Topic: "other", Partition: 0}
		wantPending := func(want ...coordinator.TopicPartition) {
			t.Helper()
			got, err := r.PendingTxnOffsets(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("pending %v, want %v", got, want)
			}
			for _, tp := range want {
				if !got[tp] {
					t.Fatalf("pending %v, want %v", got, want)
				}
			}
		}
		wantPending()
		stage := func(tid string, pid int64, offsets map[coordinator.TopicPartition]coordinator.CommittedOffset) {
			t.Helper()
			if _, err := r.InitTxn(ctx, tid, pid, 0, time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := r.AddOffsetsToTxn(ctx, tid, pid, 0, "g"); err != nil {
				t.Fatal(err)
			}
			if err := r.TxnOffsetCommit(ctx, "g", pid, 0, nil, offsets); err != nil {
				t.Fatal(err)
			}
		}
		stage("one", 11, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 1}, b: {Offset: 2}})
		stage("two", 12, map[coordinator.TopicPartition]coordinator.CommittedOffset{c: {Offset: 3}})
		wantPending(a, b, c)
		// Another group sees none of them.
		if got, err := r.PendingTxnOffsets(ctx, "h"); err != nil || len(got) != 0 {
			t.Fatalf("other group: %v, %v", got, err)
		}

		if _, err := r.EndTxn(ctx, "one", 11, 0, true); err != nil {
			t.Fatal(err)
		}
		wantPending(a, b, c) // decided, not yet completed
		if _, err := r.CompleteTxn(ctx, "one", 11, 0); err != nil {
			t.Fatal(err)
		}
		wantPending(c)
		if _, err := r.EndTxn(ctx, "two", 12, 0, false); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CompleteTxn(ctx, "two", 12, 0); err != nil {
			t.Fatal(err)
		}
		wantPending()
		if o, _ := fetchOne(t, r, "g", a); o != 1 {
			t.Fatalf("committed offset %d, want 1", o)
		}
		if _, ok := fetchOne(t, r, "g", c); ok {
			t.Fatal("aborted offset committed")
		}
	})
}

// The committed leader epoch (KIP-320) is kept as sent, through plain and
// transactional commits, alongside the topic id; none sent reads back nil.
func TestCommittedLeaderEpoch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		epoch := func(e int32) *int32 { return &e }
		id := uuid.New()
		a := coordinator.TopicPartition{Topic: "in", Partition: 0}
		b := coordinator.TopicPartition{Topic: "in", Partition: 1}
		c := coordinator.TopicPartition{Topic: "in", Partition: 2}
		if err := r.CommitOffsets(ctx, "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
			a: {Offset: 5, Metadata: "x:y", TopicID: id, LeaderEpoch: epoch(7)},
			b: {Offset: 6, LeaderEpoch: epoch(0)},
			c: {Offset: 7, TopicID: id},
		}); err != nil {
			t.Fatal(err)
		}
		got, err := r.FetchOffsets(ctx, "g", nil)
		if err != nil {
			t.Fatal(err)
		}
		if o := got[a]; o.Offset != 5 || o.Metadata != "x:y" || o.TopicID != id || o.LeaderEpoch == nil || *o.LeaderEpoch != 7 {
			t.Fatalf("a: %+v", o)
		}
		if o := got[b]; o.Offset != 6 || o.TopicID != uuid.Nil || o.LeaderEpoch == nil || *o.LeaderEpoch != 0 {
			t.Fatalf("b: %+v", o)
		}
		if o := got[c]; o.Offset != 7 || o.LeaderEpoch != nil {
			t.Fatalf("c: %+v", o)
		}
		err = r.CommitOffsets(ctx, "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 1, LeaderEpoch: epoch(-1)}})
		wantErr(t, err, coordinator.ErrInvalid)

		// Through a transaction.
		if _, err := r.InitTxn(ctx, "o", 3, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := r.AddOffsetsToTxn(ctx, "o", 3, 0, "g"); err != nil {
			t.Fatal(err)
		}
		if err := r.TxnOffsetCommit(ctx, "g", 3, 0, nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{a: {Offset: 9, TopicID: id, LeaderEpoch: epoch(2)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.EndTxn(ctx, "o", 3, 0, true); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CompleteTxn(ctx, "o", 3, 0); err != nil {
			t.Fatal(err)
		}
		got, err = r.FetchOffsets(ctx, "g", []coordinator.TopicPartition{a})
		if o := got[a]; err != nil || o.Offset != 9 || o.TopicID != id || o.LeaderEpoch == nil || *o.LeaderEpoch != 2 {
			t.Fatalf("after the transaction: %+v, %v", o, err)
		}
		// Deleting a topic's offsets still tells them by topic id.
		n, err := r.DeleteTopicOffsets(ctx, "g", id, []coordinator.TopicPartition{a, b, c})
		if err != nil || n != 2 {
			t.Fatalf("deleted %d, %v: want a and c", n, err)
		}
		if _, ok := fetchOne(t, r, "g", b); !ok {
			t.Fatal("b, committed without a topic id, was deleted")
		}
	})
}

// KIP-360 and KIP-588: only the transactional id's current pair bumps its
// epoch; the pair the holder's own bump or the timeout fence replaced gets
// the current one back; a new producer's init fences every older pair.
func TestBumpTransactionalProducer(t *testing.T) {
	t.Parallel()
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		pid, e0, err := r.InitTransactionalProducer(ctx, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		bump := func(p int64, e int16) (int64, int16, error) {
			return r.BumpTransactionalProducer(ctx, "k", time.Minute, p, e)
		}
		want := func(what string, gotPID int64, gotEpoch int16, err error, wantEpoch int16) {
			t.Helper()
			if err != nil || gotPID != pid || gotEpoch != wantEpoch {
				t.Fatalf("%s: %d/%d %v, want %d/%d", what, gotPID, gotEpoch, err, pid, wantEpoch)
			}
		}
		p, e, err := bump(pid, e0)
		want("the current pair", p, e, err, e0+1)
		p, e, err = bump(pid, e0)
		want("a retry", p, e, err, e0+1)
		_, _, err = bump(pid+1, e0+1)
		wantErr(t, err, coordinator.ErrFenced)
		_, _, err = bump(pid, e0+2)
		wantErr(t, err, coordinator.ErrFenced)

		// The reaper's fence of a timed-out transaction: the holder comes
		// back with its pair (KIP-588).
		p, e, err = r.FenceTransactionalProducer(ctx, "k", time.Minute)
		want("the fence", p, e, err, e0+2)
		p, e, err = bump(pid, e0+1)
		want("the fenced holder's return", p, e, err, e0+2)
		p, e, err = bump(pid, e0+2)
		want("the current pair after the fence", p, e, err, e0+3)

		// A new producer (no pair) fences every older one for good.
		p, e, err = r.InitTransactionalProducer(ctx, "k", time.Minute)
		want("a new producer", p, e, err, e0+4)
		for _, old := range []int16{e0 + 3, e0 + 2, e0} {
			_, _, err = bump(pid, old)
			wantErr(t, err, coordinator.ErrFenced)
		}
		// An id no producer holds takes any pair.
		if _, e, err := r.BumpTransactionalProducer(ctx, "unbound", time.Minute, 77, 3); err != nil || e != 0 {
			t.Fatalf("unbound id: epoch %d, %v; want a new producer at 0", e, err)
		}
	})
}
