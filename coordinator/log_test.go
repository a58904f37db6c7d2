package coordinator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
)

func TestCommitDenseOffsets(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		a := createTopic(t, r, "a", 2)
		b := createTopic(t, r, "b", 1)
		next := map[int32]int64{}
		for i := range 5 {
			sid := fmt.Sprintf("seg-%d", i)
			c := coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "k/" + sid, Chunks: []coordinator.ChunkCommit{
				{TopicID: a.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(0, 100, 3, 1), plain(100, 50, int32(i+1), 2)}},
				{TopicID: a.ID, Partition: 1, Batches: []coordinator.BatchCommit{plain(150, 10, 7, 1)}},
				{TopicID: b.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(160, 10, 1, 1)}},
			}}
			res := commit(t, r, c)
			wantOffsets(t, res[0], next[0], next[0]+3)
			next[0] += 3 + int64(i+1)
			wantOffsets(t, res[1], int64(7*i))
			wantOffsets(t, res[2], int64(i))
			if res[0].HighWatermark != next[0] || res[1].HighWatermark != int64(7*(i+1)) || res[2].HighWatermark != int64(i+1) {
				t.Fatalf("high watermarks %d %d %d", res[0].HighWatermark, res[1].HighWatermark, res[2].HighWatermark)
			}
		}
		st, err := r.PartitionState(t.Context(), a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st != (coordinator.PartitionState{LogStartOffset: 0, HighWatermark: next[0], Bytes: 5 * 150, LastStableOffset: next[0]}) {
			t.Fatalf("state %+v", st)
		}
		// Contiguous batches of one chunk merge into one index entry.
		entries, _, err := r.Lookup(t.Context(), a.ID, 0, 0, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 5 {
			t.Fatalf("%d entries, want 5 (one per segment): %+v", len(entries), entries)
		}
		var off int64
		for i, e := range entries {
			want := coordinator.IndexEntry{BaseOffset: off, Records: int64(3 + i + 1), SegmentKey: fmt.Sprintf("k/seg-%d", i),
				ByteOffset: 0, ByteLength: 150, MaxTimestamp: 2}
			if e != want {
				t.Fatalf("entry %d: %+v, want %+v", i, e, want)
			}
			off += want.Records
		}
	})
}

func TestCommitIdempotentRetry(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "t", 2)
		commit(t, r, segment(tp.ID, 0, plain(0, 10, 5, 1)))
		c := coordinator.SegmentCommit{SegmentID: "retry-me", SegmentKey: "k/retry-me", Chunks: []coordinator.ChunkCommit{
			{TopicID: tp.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(0, 10, 2, 1), plain(10, 10, 3, 1)}},
			{TopicID: tp.ID, Partition: 1, Batches: []coordinator.BatchCommit{plain(20, 10, 4, 1)}},
		}}
		first := commit(t, r, c)
		wantOffsets(t, first[0], 5, 7)
		wantOffsets(t, first[1], 0)
		for range 3 {
			again := commit(t, r, c)
			for i := range first {
				if fmt.Sprint(again[i]) != fmt.Sprint(first[i]) {
					t.Fatalf("retry chunk %d: %+v, first time %+v", i, again[i], first[i])
				}
			}
		}
		for p, hwm := range []int64{10, 4} {
			st, err := r.PartitionState(t.Context(), tp.ID, int32(p))
			if err != nil || st.HighWatermark != hwm {
				t.Fatalf("partition %d after retries: %+v, %v; want high watermark %d", p, st, err, hwm)
			}
		}
		entries, _, _ := r.Lookup(t.Context(), tp.ID, 0, 0, 1<<30)
		if len(entries) != 2 {
			t.Fatalf("retries added index entries: %+v", entries)
		}
		// A later commit continues after the retried one.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, plain(0, 1, 1, 1)))[0], 10)
	})
}

func TestCommitDeletedTopic(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		gone := createTopic(t, r, "gone", 1)
		live := createTopic(t, r, "live", 1)
		commit(t, r, segment(gone.ID, 0, plain(0, 10, 1, 1)))
		if err := r.DeleteTopic(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		c := coordinator.SegmentCommit{SegmentID: "after-delete", SegmentKey: "k", Chunks: []coordinator.ChunkCommit{
			{TopicID: gone.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(0, 10, 1, 1), plain(10, 10, 1, 1)}},
			{TopicID: live.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(20, 10, 1, 1)}},
			{TopicID: uuid.New(), Partition: 0, Batches: []coordinator.BatchCommit{plain(30, 10, 1, 1)}},
		}}
		res := commit(t, r, c)
		for _, i := range []int{0, 2} {
			for _, b := range res[i].Batches {
				wantErr(t, b.Err, coordinator.ErrTopicDeleted)
			}
		}
		wantOffsets(t, res[1], 0)
		// Only the live chunk keeps a reference to the segment.
		if n, err := r.SegmentRefs(ctx, "after-delete"); err != nil || n != 1 {
			t.Fatalf("SegmentRefs = %d, %v; want 1", n, err)
		}
		_, _, err := r.Lookup(ctx, gone.ID, 0, 0, 100)
		wantErr(t, err, coordinator.ErrNotFound)
		_, err = r.PartitionState(ctx, gone.ID, 0)
		wantErr(t, err, coordinator.ErrNotFound)
		_, _, err = r.OffsetForTimestamp(ctx, gone.ID, 0, 0)
		wantErr(t, err, coordinator.ErrNotFound)
		_, _, err = r.Lookup(ctx, live.ID, 7, 0, 100)
		wantErr(t, err, coordinator.ErrNotFound)
	})
}

func TestCommitRejectsBadInput(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "t", 1)
		ok := []coordinator.ChunkCommit{{TopicID: tp.ID, Batches: []coordinator.BatchCommit{plain(0, 1, 1, 1)}}}
		for _, c := range []coordinator.SegmentCommit{
			{SegmentID: "", SegmentKey: "k", Chunks: ok},
			{SegmentID: "a{b}", SegmentKey: "k", Chunks: ok},
			{SegmentID: "s", SegmentKey: "", Chunks: ok},
			{SegmentID: "s", SegmentKey: "k", Chunks: append(ok, ok...)},
			{SegmentID: "s", SegmentKey: "k", Chunks: []coordinator.ChunkCommit{{TopicID: tp.ID, Batches: []coordinator.BatchCommit{plain(0, 1, 0, 1)}}}},
		} {
			_, err := r.CommitSegment(t.Context(), c)
			wantErr(t, err, coordinator.ErrInvalid)
		}
	})
}

func TestLookup(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		// Entries: [0,10) 100 B, [10,15) 200 B, [15,35) 50 B, [35,36) 400 B.
		// The second segment holds two runs: its middle batch is a gap in
		// the bytes, so it cannot merge.
		commit(t, r, segment(tp.ID, 0, plain(0, 60, 6, 1), plain(60, 40, 4, 1)))
		commit(t, r, segment(tp.ID, 0, plain(0, 200, 5, 1), plain(300, 50, 20, 1)))
		commit(t, r, segment(tp.ID, 0, plain(0, 400, 1, 1)))

		bases := func(es []coordinator.IndexEntry) []int64 {
			var out []int64
			for _, e := range es {
				out = append(out, e.BaseOffset)
			}
			return out
		}
		for _, tc := range []struct {
			offset, maxBytes int64
			want             []int64
		}{
			{0, 1 << 20, []int64{0, 10, 15, 35}},
			{0, 0, []int64{0}},
			{0, 299, []int64{0}},
			{0, 300, []int64{0, 10}},
			{9, 350, []int64{0, 10, 15}},
			{10, 250, []int64{10, 15}},
			{14, 1, []int64{10}},
			{34, 450, []int64{15, 35}},
			{35, 1, []int64{35}},
			{36, 1 << 20, nil},
		} {
			es, st, err := r.Lookup(ctx, tp.ID, 0, tc.offset, tc.maxBytes)
			if err != nil {
				t.Fatalf("Lookup(%d, %d): %v", tc.offset, tc.maxBytes, err)
			}
			if fmt.Sprint(bases(es)) != fmt.Sprint(tc.want) {
				t.Errorf("Lookup(%d, %d) = %v, want %v", tc.offset, tc.maxBytes, bases(es), tc.want)
			}
			if st.HighWatermark != 36 || st.LogStartOffset != 0 || st.Bytes != 750 {
				t.Errorf("state %+v", st)
			}
			if len(es) > 0 && (es[0].BaseOffset > tc.offset || es[0].LastOffset() < tc.offset) {
				t.Errorf("first entry %+v does not hold offset %d", es[0], tc.offset)
			}
		}
		for _, off := range []int64{-1, 37, 1 << 40} {
			_, st, err := r.Lookup(ctx, tp.ID, 0, off, 100)
			wantErr(t, err, coordinator.ErrOffsetOutOfRange)
			if !strings.Contains(err.Error(), "log start 0, high watermark 36") || st.HighWatermark != 36 {
				t.Errorf("Lookup(%d): %v, state %+v: want both bounds", off, err, st)
			}
		}
		// An empty partition: offset 0 is the high watermark.
		empty := createTopic(t, r, "empty", 1)
		es, st, err := r.Lookup(ctx, empty.ID, 0, 0, 100)
		if err != nil || len(es) != 0 || st.HighWatermark != 0 {
			t.Fatalf("empty partition: %v %+v %v", es, st, err)
		}
	})
}

func TestOffsetForTimestamp(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		// Entry max timestamps, one entry per commit: they go back and forth.
		maxTs := []int64{100, 300, 200, 250, 500, 400, 600}
		for _, ts := range maxTs {
			commit(t, r, segment(tp.ID, 0, plain(0, 10, 2, ts)))
		}
		for _, tc := range []struct {
			ts        int64
			wantBase  int64
			wantFound bool
		}{
			{-5, 0, true},
			{100, 0, true},
			{101, 2, true},
			{200, 2, true}, // entry 2 (300) is the first that may hold >= 200
			{300, 2, true},
			{301, 8, true},
			{450, 8, true},
			{500, 8, true},
			{501, 12, true},
			{600, 12, true},
			{601, 0, false},
		} {
			e, found, err := r.OffsetForTimestamp(ctx, tp.ID, 0, tc.ts)
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.wantFound || (found && e.BaseOffset != tc.wantBase) {
				t.Errorf("OffsetForTimestamp(%d) = %+v, %v; want base %d, %v", tc.ts, e, found, tc.wantBase, tc.wantFound)
			}
			// Every record before the answer is older than ts.
			if found {
				es, _, _ := r.Lookup(ctx, tp.ID, 0, 0, 1<<30)
				for _, x := range es {
					if x.BaseOffset < e.BaseOffset && x.MaxTimestamp >= tc.ts {
						t.Errorf("ts %d: entry %+v before the answer has a newer record", tc.ts, x)
					}
				}
			}
		}
	})
}

func TestIdempotentProducer(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		pid, epoch, err := r.InitProducer(ctx)
		if err != nil || epoch != 0 {
			t.Fatalf("InitProducer: %d %d %v", pid, epoch, err)
		}
		// Six batches of 2 records: sequences 0,2,...,10; offsets 0,2,...,10.
		for i := range int32(6) {
			wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 2*i)))[0], int64(2*i))
		}
		// Each of the last five is a duplicate with its original offset.
		for i := int32(1); i < 6; i++ {
			res := commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 2*i)))[0].Batches[0]
			if !res.Duplicate || res.BaseOffset != int64(2*i) || res.Err != nil {
				t.Fatalf("resend of seq %d: %+v", 2*i, res)
			}
		}
		// The sixth back is beyond the window: out of order.
		res := commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 0)))[0].Batches[0]
		wantErr(t, res.Err, coordinator.ErrOutOfOrderSequence)
		// A gap.
		res = commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 14)))[0].Batches[0]
		wantErr(t, res.Err, coordinator.ErrOutOfOrderSequence)
		if !strings.Contains(res.Err.Error(), "expected sequence 12, got 14") {
			t.Errorf("gap message: %v", res.Err)
		}
		if st, _ := r.PartitionState(ctx, tp.ID, 0); st.HighWatermark != 12 {
			t.Fatalf("rejected batches moved the high watermark to %d", st.HighWatermark)
		}

		// A duplicate and a rejected batch split a chunk into separate runs:
		// their bytes are not part of the log.
		c := segment(tp.ID, 0,
			idem(0, 10, 2, pid, 0, 12),  // new: offset 12
			idem(10, 10, 2, pid, 0, 12), // duplicate of the one before
			idem(20, 10, 2, pid, 0, 14), // new: offset 14
			idem(30, 10, 2, pid, 0, 16), // new: offset 16, merges with 14
			plain(40, 10, 1, 1),         // plain: offset 18, merges too
		)
		out := commit(t, r, c)[0].Batches
		if out[0].BaseOffset != 12 || !out[1].Duplicate || out[1].BaseOffset != 12 || out[2].BaseOffset != 14 || out[3].BaseOffset != 16 || out[4].BaseOffset != 18 {
			t.Fatalf("mixed chunk: %+v", out)
		}
		es, _, _ := r.Lookup(ctx, tp.ID, 0, 12, 1<<20)
		if len(es) != 2 || es[0].ByteOffset != 0 || es[0].ByteLength != 10 || es[1].ByteOffset != 20 || es[1].ByteLength != 30 || es[1].Records != 5 {
			t.Fatalf("entries after a duplicate: %+v", es)
		}

		// A new epoch fences the old one on this partition.
		e1, err := r.BumpEpoch(ctx, pid)
		if err != nil || e1 != 1 {
			t.Fatalf("BumpEpoch: %d %v", e1, err)
		}
		res = commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 1, 5)))[0].Batches[0]
		wantErr(t, res.Err, coordinator.ErrOutOfOrderSequence) // a new epoch starts at 0
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 1, 0)))[0], 19)
		res = commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 18)))[0].Batches[0]
		wantErr(t, res.Err, coordinator.ErrFenced)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 1, 2)))[0], 21)

		// Sequences wrap at 2^31-1 like Kafka's.
		other, _, _ := r.InitProducer(ctx)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 3, other, 0, 2147483646)))[0], 23)
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 1, other, 0, 1)))[0], 26)

		_, err = r.BumpEpoch(ctx, 1<<40)
		wantErr(t, err, coordinator.ErrNotFound)
	})
}

func TestWatermarkNotifications(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		tp := createTopic(t, r, "t", 2)
		got := make(chan coordinator.Watermark, 16)
		if err := r.SubscribeWatermarks(ctx, func(w coordinator.Watermark) { got <- w }); err != nil {
			t.Fatal(err)
		}
		commit(t, r, segment(tp.ID, 1, plain(0, 10, 3, 1)))
		commit(t, r, segment(tp.ID, 0, plain(0, 10, 2, 1)))
		// On a cluster the two partitions publish from different nodes, so
		// their notifications may arrive in either order.
		want := map[coordinator.Watermark]bool{{TopicID: tp.ID, Partition: 1, HighWatermark: 3}: true, {TopicID: tp.ID, Partition: 0, HighWatermark: 2}: true}
		for range 2 {
			select {
			case g := <-got:
				if !want[g] {
					t.Fatalf("notification %+v, want one of %v", g, want)
				}
				delete(want, g)
			case <-time.After(5 * time.Second):
				t.Fatalf("no notification for %v", want)
			}
		}
		// A commit that appends nothing (a retry) does not notify.
		c := segment(tp.ID, 0, plain(0, 10, 1, 1))
		commit(t, r, c)
		<-got
		commit(t, r, c)
		select {
		case g := <-got:
			t.Fatalf("a retried commit notified %+v", g)
		case <-time.After(200 * time.Millisecond):
		}
		// After ctx ends, fn is not called any more.
		cancel()
		time.Sleep(50 * time.Millisecond)
		commit(t, r, segment(tp.ID, 0, plain(0, 10, 1, 1)))
		select {
		case g := <-got:
			t.Fatalf("notified %+v after the subscription's context ended", g)
		case <-time.After(200 * time.Millisecond):
		}
	})
}

func TestSegmentRefs(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 3)
		c := coordinator.SegmentCommit{SegmentID: "refs", SegmentKey: "k", Chunks: []coordinator.ChunkCommit{
			{TopicID: tp.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(0, 1, 1, 1)}},
			{TopicID: tp.ID, Partition: 1, Batches: []coordinator.BatchCommit{plain(1, 1, 1, 1)}},
			{TopicID: tp.ID, Partition: 2},
		}}
		commit(t, r, c)
		commit(t, r, c)
		if n, err := r.SegmentRefs(ctx, "refs"); err != nil || n != 2 {
			t.Fatalf("SegmentRefs = %d, %v; want 2", n, err)
		}
		if n, err := r.SegmentRefs(ctx, "never"); err != nil || n != 0 {
			t.Fatalf("SegmentRefs of an unknown segment = %d, %v", n, err)
		}
		// A chunk whose every batch is a duplicate refers to nothing.
		pid, _, _ := r.InitProducer(ctx)
		commit(t, r, segment(tp.ID, 0, idem(0, 1, 1, pid, 0, 0)))
		dup := segment(tp.ID, 0, idem(0, 1, 1, pid, 0, 0))
		if !commit(t, r, dup)[0].Batches[0].Duplicate {
			t.Fatal("resend was not a duplicate")
		}
		if n, _ := r.SegmentRefs(ctx, dup.SegmentID); n != 0 {
			t.Fatalf("all-duplicate segment has %d refs", n)
		}
	})
}

// TestCommitAfterScriptFlush: a server that lost its script cache (restart,
// failover) gets the scripts again and the commit goes through.
func TestCommitAfterScriptFlush(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 4)
		flush := func() {
			t.Helper()
			var err error
			if cc, ok := r.Client().(*redis.ClusterClient); ok {
				err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.ScriptFlush(ctx).Err() })
			} else {
				err = r.Client().ScriptFlush(ctx).Err()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			flush()
			c := coordinator.SegmentCommit{SegmentID: fmt.Sprint("s", i), SegmentKey: "k"}
			for p := range int32(4) {
				c.Chunks = append(c.Chunks, coordinator.ChunkCommit{TopicID: tp.ID, Partition: p, Batches: []coordinator.BatchCommit{plain(0, 1, 1, 1)}})
			}
			for _, res := range commit(t, r, c) {
				wantOffsets(t, res, int64(i))
			}
			flush()
			if es, _, err := r.Lookup(ctx, tp.ID, 3, int64(i), 1); err != nil || len(es) != 1 {
				t.Fatalf("Lookup after flush: %v %v", es, err)
			}
		}
	})
}

// TestWaitReplicas: with no replica to acknowledge, a commit reports a
// retryable error, and its retry returns the offsets it already got.
func TestWaitReplicas(t *testing.T) {
	forEachBackend(t, coordinator.Options{WaitReplicas: 1, WaitTimeout: 50}, func(t *testing.T, r *coordinator.Redis) {
		noWait, err := coordinator.NewRedis(r.Client(), coordinator.Options{Prefix: r.Options().Prefix})
		if err != nil {
			t.Fatal(err)
		}
		// Creating the topic would wait for the replica too.
		tp := createTopic(t, noWait, "t", 3)
		c := coordinator.SegmentCommit{SegmentID: "w", SegmentKey: "k"}
		for p := range int32(3) {
			c.Chunks = append(c.Chunks, coordinator.ChunkCommit{TopicID: tp.ID, Partition: p, Batches: []coordinator.BatchCommit{plain(0, 1, 1, 1)}})
		}
		_, err = r.CommitSegment(t.Context(), c)
		wantErr(t, err, coordinator.ErrUnavailable)
		wantErr(t, err, coordinator.ErrNotEnoughReplicas) // Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND
		if !strings.Contains(err.Error(), "replicas acknowledged") {
			t.Fatalf("error %v does not say why", err)
		}
		// Not durable, so not visible (see durability_test.go).
		for p := range int32(3) {
			wantInvisible(t, r, tp.ID, p, 0, 1)
		}
		for _, res := range commit(t, noWait, c) {
			wantOffsets(t, res, 0)
		}
		for p := range int32(3) {
			if st, err := r.PartitionState(t.Context(), tp.ID, p); err != nil || st.HighWatermark != 1 {
				t.Fatalf("partition %d after the retry: high watermark %d, %v; want 1", p, st.HighWatermark, err)
			}
		}
		// Other acknowledged writes wait too (on a cluster, on every
		// master); see TestAckedWritesWaitForReplica.
		err = r.CommitOffsets(t.Context(), "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
			{Topic: "t", Partition: 0}: {Offset: 1, TopicID: tp.ID}})
		wantErr(t, err, coordinator.ErrUnavailable)
		if !strings.Contains(err.Error(), "only 0 of 1 replicas acknowledged") {
			t.Fatalf("offset commit: %v does not say why", err)
		}
	})
}

// TestConcurrentCommits: many clients commit to the same partitions at
// once, some retrying their commits (also concurrently with the original).
// Per partition, the offsets handed out are unique and dense, and the log
// holds exactly the committed runs.
func TestConcurrentCommits(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 4)
		const goroutines, perGoroutine = 16, 25
		type got struct {
			p      int32
			base   int64
			n      int32
			segKey string
		}
		var mu sync.Mutex
		var all []got
		var wg sync.WaitGroup
		for g := range goroutines {
			// Several clients: every fourth goroutine shares a client with
			// the others, the rest get their own connection pools.
			cr := r
			if g%4 != 0 {
				cr = reopen(t, r)
			}
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for i := range perGoroutine {
					sid := fmt.Sprintf("g%d-%d", g, i)
					c := coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "k/" + sid}
					for p := range int32(4) {
						if rng.IntN(3) == 0 {
							continue
						}
						n := int32(1 + rng.IntN(5))
						c.Chunks = append(c.Chunks, coordinator.ChunkCommit{TopicID: tp.ID, Partition: p,
							Batches: []coordinator.BatchCommit{plain(int64(p)*100, 10, n, 1)}})
					}
					if len(c.Chunks) == 0 {
						continue
					}
					res, err := cr.CommitSegment(ctx, c)
					if err != nil {
						t.Errorf("commit %s: %v", sid, err)
						return
					}
					if rng.IntN(4) == 0 {
						// A retry, sometimes racing another retry.
						var again [2][]coordinator.ChunkResult
						var rwg sync.WaitGroup
						for k := range 2 {
							rwg.Go(func() { again[k], _ = cr.CommitSegment(ctx, c) })
						}
						rwg.Wait()
						for k := range 2 {
							if fmt.Sprint(again[k]) != fmt.Sprint(res) {
								t.Errorf("retry of %s: %v, first %v", sid, again[k], res)
							}
						}
					}
					mu.Lock()
					for j, ch := range c.Chunks {
						all = append(all, got{ch.Partition, res[j].Batches[0].BaseOffset, ch.Batches[0].Records, c.SegmentKey})
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for p := range int32(4) {
			seen := map[int64]string{}
			var total int64
			for _, g := range all {
				if g.p != p {
					continue
				}
				for o := g.base; o < g.base+int64(g.n); o++ {
					if prev, dup := seen[o]; dup {
						t.Fatalf("partition %d offset %d given to %s and %s", p, o, prev, g.segKey)
					}
					seen[o] = g.segKey
				}
				total += int64(g.n)
			}
			for o := range total {
				if _, ok := seen[o]; !ok {
					t.Fatalf("partition %d: offset %d missing of %d", p, o, total)
				}
			}
			es, st, err := r.Lookup(ctx, tp.ID, p, 0, 1<<40)
			if err != nil || st.HighWatermark != total {
				t.Fatalf("partition %d: high watermark %d, %v; %d offsets committed", p, st.HighWatermark, err, total)
			}
			var next int64
			for _, e := range es {
				if e.BaseOffset != next || seen[e.BaseOffset] != e.SegmentKey {
					t.Fatalf("partition %d: entry %+v, want base %d from %s", p, e, next, seen[e.BaseOffset])
				}
				next += e.Records
			}
			if next != total {
				t.Fatalf("partition %d: entries cover %d offsets, want %d", p, next, total)
			}
		}
	})
}

// reopen gives another client (own connection pool) on r's server and prefix.
func reopen(t *testing.T, r *coordinator.Redis) *coordinator.Redis {
	t.Helper()
	var c redis.UniversalClient
	switch rc := r.Client().(type) {
	case *redis.ClusterClient:
		c = redis.NewClusterClient(rc.Options())
	case *redis.Client:
		c = redis.NewClient(rc.Options())
	default:
		t.Fatalf("client %T", rc)
	}
	n, err := coordinator.NewRedis(c, r.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// TestLookupEntryCap: a huge maxBytes over tiny entries stops at 1000
// entries, so one lookup cannot block the server for long.
func TestLookupEntryCap(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "t", 1)
		c := segment(tp.ID, 0)
		// Alternate plain batches with gaps in the bytes, so none merge:
		// 1200 index entries from one commit.
		for i := range int64(1200) {
			c.Chunks[0].Batches = append(c.Chunks[0].Batches, plain(2*i, 1, 1, 1))
		}
		commit(t, r, c)
		es, _, err := r.Lookup(t.Context(), tp.ID, 0, 0, 1<<40)
		if err != nil || len(es) != 1000 || es[999].BaseOffset != 999 {
			t.Fatalf("Lookup: %d entries, %v", len(es), err)
		}
	})
}

// issue 12: a commit answers the partition's log start offset as it ran
// (Kafka's Produce v5+ log_start_offset), read by the commit script itself.
func TestCommitAnswersLogStartOffset(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "start", 1)
		if res := commit(t, r, segment(tp.ID, 0, plain(0, 10, 5, 1))); res[0].LogStartOffset != 0 {
			t.Fatalf("fresh partition: log start %d, want 0", res[0].LogStartOffset)
		}
		if _, err := r.DeleteRecords(t.Context(), tp.ID, 0, 3); err != nil {
			t.Fatal(err)
		}
		res := commit(t, r, segment(tp.ID, 0, plain(0, 10, 2, 1)))
		wantOffsets(t, res[0], 5)
		if res[0].LogStartOffset != 3 {
			t.Fatalf("after DeleteRecords before 3: log start %d, want 3", res[0].LogStartOffset)
		}
	})
}
