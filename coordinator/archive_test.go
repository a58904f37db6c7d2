package coordinator_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

func TestArchiveSwap(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		// Max timestamps 100, 200, 150, 400, 500: the third entry is no rise.
		stamps := []int64{100, 200, 150, 400, 500}
		segs := commitN(t, r, tp.ID, 0, 5, func(i int) int64 { return stamps[i] })
		before, _, err := r.Lookup(ctx, tp.ID, 0, 0, 1<<20)
		if err != nil || len(before) != 5 {
			t.Fatalf("Lookup: %+v, %v", before, err)
		}

		lease, err := r.AcquireCompactionLease(ctx, tp.ID, 0, "a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.AcquireCompactionLease(ctx, tp.ID, 0, "b", time.Minute); !errors.Is(err, coordinator.ErrConflict) {
			t.Fatalf("second acquire: %v, want ErrConflict", err)
		}
		key := "archive/topic=t/partition=0/0000000000000000010-0000000000000000039-" + tp.ID.String() + ".parquet"
		repl := []coordinator.IndexEntry{
			{BaseOffset: 10, Records: 15, SegmentKey: key, ByteOffset: 4, ByteLength: 70, MaxTimestamp: 200},
			{BaseOffset: 25, Records: 15, SegmentKey: key, ByteOffset: 74, ByteLength: 80, MaxTimestamp: 400},
		}
		old := before[1:4]

		// Entries that are not the log's: nothing changes.
		stale := slices.Clone(old)
		stale[1].ByteLength++
		if _, err := r.SwapArchive(ctx, lease, stale, repl); !errors.Is(err, coordinator.ErrConflict) {
			t.Fatalf("swap of changed entries: %v, want ErrConflict", err)
		}
		if _, err := r.SwapArchive(ctx, lease, old[:1], repl); !errors.Is(err, coordinator.ErrInvalid) {
			t.Fatalf("swap past the replaced range: %v, want ErrInvalid", err)
		}

		res, err := r.SwapArchive(ctx, lease, old, repl)
		if err != nil || res.AlreadyDone || res.BytesRemoved != 300 || res.BytesAdded != 150 {
			t.Fatalf("swap: %+v, %v", res, err)
		}
		after, st, err := r.Lookup(ctx, tp.ID, 0, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := []coordinator.IndexEntry{before[0], repl[0], repl[1], before[4]}
		if fmt.Sprint(after) != fmt.Sprint(want) {
			t.Fatalf("entries after the swap:\n%+v\nwant\n%+v", after, want)
		}
		if !after[1].Archived() || after[0].Archived() {
			t.Fatalf("Archived: %v %v", after[0].Archived(), after[1].Archived())
		}
		if st != (coordinator.PartitionState{LogStartOffset: 0, HighWatermark: 50, Bytes: 350}) {
			t.Fatalf("state %+v", st)
		}
		// A lookup inside an archive entry finds it.
		if es, _, err := r.Lookup(ctx, tp.ID, 0, 30, 1); err != nil || len(es) != 1 || es[0] != repl[1] {
			t.Fatalf("Lookup(30): %+v, %v", es, err)
		}
		got := releasedKeys(t, r, tp.ID, 0)
		slices.Sort(got)
		wantRel := []string{segs[1].SegmentKey, segs[2].SegmentKey, segs[3].SegmentKey}
		slices.Sort(wantRel)
		if fmt.Sprint(got) != fmt.Sprint(wantRel) {
			t.Fatalf("released %v, want %v", got, wantRel)
		}
		wantUse(t, r, tp.ID, 0, segs[2], coordinator.SegmentReleased)
		wantUse(t, r, tp.ID, 0, segs[4], coordinator.SegmentInUse)

		// ListOffsets by time: the first entry whose running max reaches ts.
		for _, c := range []struct{ ts, base int64 }{{0, 0}, {100, 0}, {101, 10}, {200, 10}, {201, 25}, {400, 25}, {401, 40}, {500, 40}} {
			e, found, err := r.OffsetForTimestamp(ctx, tp.ID, 0, c.ts)
			if err != nil || !found || e.BaseOffset != c.base {
				t.Fatalf("OffsetForTimestamp(%d): %+v %v %v, want base %d", c.ts, e, found, err, c.base)
			}
		}
		if _, found, err := r.OffsetForTimestamp(ctx, tp.ID, 0, 501); err != nil || found {
			t.Fatalf("OffsetForTimestamp(501): found %v, %v", found, err)
		}

		// A retry finds it done.
		if res, err := r.SwapArchive(ctx, lease, old, repl); err != nil || !res.AlreadyDone {
			t.Fatalf("retried swap: %+v, %v", res, err)
		}

		// A lost lease changes nothing.
		if err := r.ReleaseCompactionLease(ctx, lease); err != nil {
			t.Fatal(err)
		}
		if _, err := r.RenewCompactionLease(ctx, lease, time.Minute); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("renew after release: %v, want ErrFenced", err)
		}
		lease2, err := r.AcquireCompactionLease(ctx, tp.ID, 0, "b", time.Minute)
		if err != nil || lease2.Token <= lease.Token {
			t.Fatalf("acquire after release: %+v, %v (old token %d)", lease2, err, lease.Token)
		}
		key2 := "archive/topic=t/partition=0/0000000000000000040-0000000000000000049-" + tp.ID.String() + ".parquet"
		repl2 := []coordinator.IndexEntry{{BaseOffset: 40, Records: 10, SegmentKey: key2, ByteOffset: 4, ByteLength: 50, MaxTimestamp: 500}}
		if _, err := r.SwapArchive(ctx, lease, before[4:], repl2); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("fenced swap: %v, want ErrFenced", err)
		}
		if now, _, _ := r.Lookup(ctx, tp.ID, 0, 0, 1<<20); fmt.Sprint(now) != fmt.Sprint(want) {
			t.Fatalf("the fenced swap changed the entries: %+v", now)
		}
		if _, err := r.SwapArchive(ctx, lease2, before[4:], repl2); err != nil {
			t.Fatalf("swap with the new lease: %v", err)
		}

		// Retention of everything releases the archive files too.
		if _, err := r.DeleteRecords(ctx, tp.ID, 0, -1); err != nil {
			t.Fatal(err)
		}
		got = releasedKeys(t, r, tp.ID, 0)
		if !slices.Contains(got, key) || !slices.Contains(got, key2) || !slices.Contains(got, segs[0].SegmentKey) {
			t.Fatalf("released after DeleteRecords: %v", got)
		}
	})
}
