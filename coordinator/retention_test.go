package coordinator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// commitN commits n one-entry segments of 10 records and 100 bytes each to
// partition p, entry i with max timestamp ts(i), and returns the commits.
func commitN(t *testing.T, r *coordinator.Redis, id uuid.UUID, p int32, n int, ts func(i int) int64) []coordinator.SegmentCommit {
	t.Helper()
	out := make([]coordinator.SegmentCommit, n)
	for i := range n {
		out[i] = segment(id, p, plain(0, 100, 10, ts(i)))
		commit(t, r, out[i])
	}
	return out
}

func wantState(t *testing.T, r *coordinator.Redis, id uuid.UUID, p int32, want coordinator.PartitionState) {
	t.Helper()
	st, err := r.PartitionState(t.Context(), id, p)
	if err != nil {
		t.Fatal(err)
	}
	// No transactions here: the last stable offset is the high watermark (issue 11).
	want.LastStableOffset = want.HighWatermark
	if st != want {
		t.Fatalf("partition state %+v, want %+v", st, want)
	}
}

func wantUse(t *testing.T, r *coordinator.Redis, id uuid.UUID, p int32, c coordinator.SegmentCommit, want coordinator.SegmentUse) {
	t.Helper()
	use, _, err := r.SegmentState(t.Context(), id, p, c.SegmentID, c.SegmentKey)
	if err != nil {
		t.Fatal(err)
	}
	if use != want {
		t.Fatalf("segment %s in partition %d: use %d, want %d", c.SegmentID, p, use, want)
	}
}

func releasedKeys(t *testing.T, r *coordinator.Redis, id uuid.UUID, p int32) []string {
	t.Helper()
	rs, err := r.ReleasedSegments(t.Context(), id, p, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(rs))
	for i, s := range rs {
		keys[i] = s.Key
	}
	return keys
}

func TestDeleteRecords(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		segs := commitN(t, r, tp.ID, 0, 3, func(i int) int64 { return int64(100 * (i + 1)) })

		res, err := r.DeleteRecords(ctx, tp.ID, 0, 15)
		if err != nil {
			t.Fatal(err)
		}
		if res.LogStartOffset != 15 || res.HighWatermark != 30 || res.EntriesRemoved != 1 || res.BytesRemoved != 100 || res.Bytes != 200 {
			t.Fatalf("DeleteRecords(15): %+v", res)
		}
		wantState(t, r, tp.ID, 0, coordinator.PartitionState{LogStartOffset: 15, HighWatermark: 30, Bytes: 200})
		// Below the log start: out of range with both bounds.
		_, st, err := r.Lookup(ctx, tp.ID, 0, 14, 1<<20)
		wantErr(t, err, coordinator.ErrOffsetOutOfRange)
		if st.LogStartOffset != 15 || st.HighWatermark != 30 {
			t.Fatalf("out-of-range bounds %+v", st)
		}
		// The entry partly below the log start still serves the rest of it.
		entries, _, err := r.Lookup(ctx, tp.ID, 0, 15, 1<<20)
		if err != nil || len(entries) != 2 || entries[0].BaseOffset != 10 {
			t.Fatalf("Lookup(15): %+v, %v", entries, err)
		}
		if got := releasedKeys(t, r, tp.ID, 0); fmt.Sprint(got) != fmt.Sprint([]string{segs[0].SegmentKey}) {
			t.Fatalf("released %v, want only %s", got, segs[0].SegmentKey)
		}
		wantUse(t, r, tp.ID, 0, segs[0], coordinator.SegmentReleased)
		wantUse(t, r, tp.ID, 0, segs[1], coordinator.SegmentInUse)

		// The log start never moves back.
		if res, err = r.DeleteRecords(ctx, tp.ID, 0, 5); err != nil || res.LogStartOffset != 15 || res.EntriesRemoved != 0 {
			t.Fatalf("DeleteRecords(5): %+v, %v", res, err)
		}
		// Above the high watermark: out of range, nothing moves.
		res, err = r.DeleteRecords(ctx, tp.ID, 0, 31)
		wantErr(t, err, coordinator.ErrOffsetOutOfRange)
		if res.LogStartOffset != 15 || res.HighWatermark != 30 {
			t.Fatalf("DeleteRecords(31) bounds %+v", res)
		}
		_, err = r.DeleteRecords(ctx, tp.ID, 0, -2)
		wantErr(t, err, coordinator.ErrInvalid)
		_, err = r.DeleteRecords(ctx, tp.ID, 1, 0)
		wantErr(t, err, coordinator.ErrNotFound)

		// -1 is the high watermark: everything goes.
		if res, err = r.DeleteRecords(ctx, tp.ID, 0, -1); err != nil || res.LogStartOffset != 30 || res.EntriesRemoved != 2 || res.Bytes != 0 {
			t.Fatalf("DeleteRecords(-1): %+v, %v", res, err)
		}
		if got := releasedKeys(t, r, tp.ID, 0); len(got) != 3 {
			t.Fatalf("released %v, want all 3 segments", got)
		}
		if entries, _, err = r.Lookup(ctx, tp.ID, 0, 30, 1<<20); err != nil || len(entries) != 0 {
			t.Fatalf("Lookup(hwm) on an empty log: %+v, %v", entries, err)
		}
		// The log goes on at the high watermark.
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, plain(0, 100, 5, 50)))[0], 30)
		wantState(t, r, tp.ID, 0, coordinator.PartitionState{LogStartOffset: 30, HighWatermark: 35, Bytes: 100})
		// The new entry's max timestamp (50) is below the running max (300),
		// yet ListOffsets by time still finds it.
		e, found, err := r.OffsetForTimestamp(ctx, tp.ID, 0, 10)
		if err != nil || !found || e.BaseOffset != 30 {
			t.Fatalf("OffsetForTimestamp(10) after trim: %+v %v %v", e, found, err)
		}
	})
}

func TestDeleteRecordsManyEntries(t *testing.T) {
	// More entries than one trim script removes: the call loops.
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		tp := createTopic(t, r, "t", 1)
		const n = 1205
		c := coordinator.SegmentCommit{SegmentID: "big", SegmentKey: "segments/big", Chunks: []coordinator.ChunkCommit{{TopicID: tp.ID}}}
		for i := range n {
			// Gaps between batches make one entry per batch.
			c.Chunks[0].Batches = append(c.Chunks[0].Batches, plain(int64(2*i), 1, 1, int64(i)))
		}
		commit(t, r, c)
		res, err := r.DeleteRecords(t.Context(), tp.ID, 0, -1)
		if err != nil || res.EntriesRemoved != n || res.LogStartOffset != n || res.Bytes != 0 {
			t.Fatalf("DeleteRecords(-1): %+v, %v", res, err)
		}
		if got := releasedKeys(t, r, tp.ID, 0); len(got) != 1 || got[0] != "segments/big" {
			t.Fatalf("released %v", got)
		}
	})
}

func TestEnforceRetention(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 2)
		now := time.UnixMilli(10_000)
		// Partition 0: entries with newest records at 1 s, 2 s, ..., 5 s.
		segs := commitN(t, r, tp.ID, 0, 5, func(i int) int64 { return int64(1000 * (i + 1)) })
		res, err := r.EnforceRetention(ctx, tp.ID, 0, now, 7500, -1)
		if err != nil || res.EntriesRemoved != 2 || res.LogStartOffset != 20 {
			t.Fatalf("retention.ms 7500 at 10 s: %+v, %v", res, err)
		}
		wantUse(t, r, tp.ID, 0, segs[1], coordinator.SegmentReleased)
		wantUse(t, r, tp.ID, 0, segs[2], coordinator.SegmentInUse)
		// Nothing more has expired: nothing moves.
		if res, err = r.EnforceRetention(ctx, tp.ID, 0, now, 7500, -1); err != nil || res.EntriesRemoved != 0 || res.LogStartOffset != 20 {
			t.Fatalf("second pass: %+v, %v", res, err)
		}
		// Everything expired: the log is empty and starts at the watermark.
		if res, err = r.EnforceRetention(ctx, tp.ID, 0, now.Add(time.Hour), 7500, -1); err != nil || res.LogStartOffset != 50 || res.Bytes != 0 {
			t.Fatalf("all expired: %+v, %v", res, err)
		}

		// Partition 1: 5 entries of 100 bytes, retention.bytes 250: Kafka
		// deletes the oldest while what stays is still at least 250 bytes.
		commitN(t, r, tp.ID, 1, 5, func(int) int64 { return now.UnixMilli() })
		res, err = r.EnforceRetention(ctx, tp.ID, 1, now, -1, 250)
		if err != nil || res.EntriesRemoved != 2 || res.Bytes != 300 || res.LogStartOffset != 20 {
			t.Fatalf("retention.bytes 250: %+v, %v", res, err)
		}
		// Both off: nothing happens.
		if res, err = r.EnforceRetention(ctx, tp.ID, 1, now.Add(1000*time.Hour), -1, -1); err != nil || res.Bytes != 300 {
			t.Fatalf("retention off: %+v, %v", res, err)
		}
	})
}

func TestSegmentStateAcrossPartitions(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 3)
		shared := coordinator.SegmentCommit{SegmentID: "shared", SegmentKey: "segments/shared", Chunks: []coordinator.ChunkCommit{
			{TopicID: tp.ID, Partition: 0, Batches: []coordinator.BatchCommit{plain(0, 10, 1, 1)}},
			{TopicID: tp.ID, Partition: 1, Batches: []coordinator.BatchCommit{plain(10, 10, 1, 1)}},
		}}
		commit(t, r, shared)
		orphan := coordinator.SegmentCommit{SegmentID: "orphan", SegmentKey: "segments/orphan"}
		wantUse(t, r, tp.ID, 0, orphan, coordinator.SegmentNeverAppended)
		wantUse(t, r, tp.ID, 2, shared, coordinator.SegmentNeverAppended)

		if _, err := r.DeleteRecords(ctx, tp.ID, 0, -1); err != nil {
			t.Fatal(err)
		}
		wantUse(t, r, tp.ID, 0, shared, coordinator.SegmentReleased)
		wantUse(t, r, tp.ID, 1, shared, coordinator.SegmentInUse)
		_, at, err := r.SegmentState(ctx, tp.ID, 0, shared.SegmentID, shared.SegmentKey)
		if err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
			t.Fatalf("released at %v (%v)", at, err)
		}
		// A retried commit of a released segment appends nothing again.
		res := commit(t, r, shared)
		if res[0].HighWatermark != 1 {
			t.Fatalf("retried commit moved the watermark: %+v", res[0])
		}
		wantState(t, r, tp.ID, 0, coordinator.PartitionState{LogStartOffset: 1, HighWatermark: 1})

		if err := r.ForgetSegment(ctx, tp.ID, 0, shared.SegmentID, shared.SegmentKey); err != nil {
			t.Fatal(err)
		}
		wantUse(t, r, tp.ID, 0, shared, coordinator.SegmentNeverAppended)
		if got := releasedKeys(t, r, tp.ID, 0); len(got) != 0 {
			t.Fatalf("released after forget: %v", got)
		}
		if err := r.DeleteSegmentRefs(ctx, shared.SegmentID); err != nil {
			t.Fatal(err)
		}
		if n, err := r.SegmentRefs(ctx, shared.SegmentID); err != nil || n != 0 {
			t.Fatalf("refs after delete: %d, %v", n, err)
		}
	})
}

func TestDropDeletedTopic(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		keep := createTopic(t, r, "keep", 1)
		tp := createTopic(t, r, "gone", 2)
		segs := commitN(t, r, tp.ID, 0, 3, func(int) int64 { return 1 })
		commitN(t, r, keep.ID, 0, 1, func(int) int64 { return 1 })
		if err := r.DeleteTopic(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		dts, err := r.DeletedTopics(ctx)
		if err != nil || len(dts) != 1 || dts[0].ID != tp.ID || dts[0].Partitions != 2 || time.Since(dts[0].DeletedAt) > time.Minute {
			t.Fatalf("DeletedTopics: %+v, %v", dts, err)
		}
		for p := range int32(2) {
			if err := r.DropPartition(ctx, tp.ID, p); err != nil {
				t.Fatal(err)
			}
		}
		wantUse(t, r, tp.ID, 0, segs[0], coordinator.SegmentPartitionGone)
		if done, err := r.PartitionCollected(ctx, tp.ID, 0); err != nil || done {
			t.Fatalf("partition 0 collected before its segments: %v %v", done, err)
		}
		if done, err := r.PartitionCollected(ctx, tp.ID, 1); err != nil || !done {
			t.Fatalf("empty partition 1 not collected: %v %v", done, err)
		}
		rs, err := r.ReleasedSegments(ctx, tp.ID, 0, time.Now().Add(time.Minute), 10)
		if err != nil || len(rs) != 3 {
			t.Fatalf("released %+v, %v", rs, err)
		}
		for _, c := range segs {
			if err := r.ForgetSegment(ctx, tp.ID, 0, c.SegmentID, c.SegmentKey); err != nil {
				t.Fatal(err)
			}
		}
		if done, err := r.PartitionCollected(ctx, tp.ID, 0); err != nil || !done {
			t.Fatalf("partition 0 not collected: %v %v", done, err)
		}
		// A late retry of a commit to the dropped partition appends nothing.
		res := commit(t, r, segment(tp.ID, 0, plain(0, 10, 1, 1)))
		wantErr(t, res[0].Batches[0].Err, coordinator.ErrTopicDeleted)
		if err := r.PurgeDeletedTopic(ctx, tp.ID); err != nil {
			t.Fatal(err)
		}
		if dts, err = r.DeletedTopics(ctx); err != nil || len(dts) != 0 {
			t.Fatalf("DeletedTopics after purge: %+v, %v", dts, err)
		}
		// The other topic is untouched.
		wantState(t, r, keep.ID, 0, coordinator.PartitionState{HighWatermark: 10, Bytes: 100})
		// The name can be used again.
		if _, err := r.CreateTopic(context.Background(), "gone", coordinator.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
	})
}
