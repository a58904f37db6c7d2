package coordinator_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// TestSwapCleaned: the log cleaner's swap replaces archive entries by
// rewritten ones with gaps, writes its state with them, and a fenced or
// refused swap writes neither.
func TestSwapCleaned(t *testing.T) {
	forEachBackend(t, coordinator.Options{}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		commitN(t, r, tp.ID, 0, 3, func(i int) int64 { return int64(100 * (i + 1)) })
		hot, _, err := r.Lookup(ctx, tp.ID, 0, 0, 1<<20)
		if err != nil || len(hot) != 3 {
			t.Fatalf("Lookup: %+v, %v", hot, err)
		}
		if cs, err := r.CleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 0 || cs.Horizons != nil {
			t.Fatalf("state of a partition never cleaned: %+v, %v", cs, err)
		}
		lease, err := r.AcquireCompactionLease(ctx, tp.ID, 0, "a", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// Hot entries are not the cleaner's to replace.
		key := func(first, last int64, gen int) string {
			k := fmt.Sprintf("archive/topic=t/partition=0/%019d-%019d-%s", first, last, tp.ID)
			if gen > 0 {
				k += fmt.Sprintf("-c%d", gen)
			}
			return k + ".parquet"
		}
		end := hot[2].BaseOffset + hot[2].Records
		arch := []coordinator.IndexEntry{{BaseOffset: 0, Records: end, SegmentKey: key(0, end-1, 0), ByteOffset: 4, ByteLength: 100, MaxTimestamp: 300}}
		if _, err := r.SwapCleaned(ctx, lease, hot, arch, nil); !errors.Is(err, coordinator.ErrInvalid) {
			t.Fatalf("cleaning hot entries: %v, want ErrInvalid", err)
		}
		if _, err := r.SwapArchive(ctx, lease, hot, arch); err != nil {
			t.Fatal(err)
		}
		// The rewrite keeps offsets 3 and end-1: gaps before, between and
		// none at the end.
		cleaned := []coordinator.IndexEntry{
			{BaseOffset: 3, Records: 1, SegmentKey: key(3, end-1, 7), ByteOffset: 4, ByteLength: 10, MaxTimestamp: 100},
			{BaseOffset: end - 1, Records: 1, SegmentKey: key(3, end-1, 7), ByteOffset: 14, ByteLength: 10, MaxTimestamp: 300},
		}
		cs := coordinator.CleanerState{Checkpoint: end, Horizons: []coordinator.TombstoneHorizon{{End: end, FirstCleanedMs: 1234}}}
		tooMany := coordinator.CleanerState{Checkpoint: end, Horizons: make([]coordinator.TombstoneHorizon, coordinator.MaxTombstoneHorizons+1)}
		if _, err := r.SwapCleaned(ctx, lease, arch, cleaned, &tooMany); !errors.Is(err, coordinator.ErrInvalid) {
			t.Fatalf("too many horizons: %v, want ErrInvalid", err)
		}
		other, err := r.AcquireCompactionLease(ctx, tp.ID, 0, "a", time.Minute)
		if err == nil {
			t.Fatalf("acquired a held lease: %+v", other)
		}
		if err := r.ReleaseCompactionLease(ctx, lease); err != nil {
			t.Fatal(err)
		}
		if other, err = r.AcquireCompactionLease(ctx, tp.ID, 0, "b", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := r.SwapCleaned(ctx, lease, arch, cleaned, &cs); !errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("fenced clean: %v, want ErrFenced", err)
		}
		if got, err := r.CleanerState(ctx, tp.ID, 0); err != nil || got.Checkpoint != 0 {
			t.Fatalf("the fenced swap wrote the state: %+v, %v", got, err)
		}
		if es, _, _ := r.Lookup(ctx, tp.ID, 0, 0, 1<<20); fmt.Sprint(es) != fmt.Sprint(arch) {
			t.Fatalf("the fenced swap changed the entries: %+v", es)
		}

		res, err := r.SwapCleaned(ctx, other, arch, cleaned, &cs)
		if err != nil || res.BytesRemoved != 100 || res.BytesAdded != 20 {
			t.Fatalf("clean: %+v, %v", res, err)
		}
		got, err := r.CleanerState(ctx, tp.ID, 0)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(cs) {
			t.Fatalf("state %+v, %v; want %+v", got, err, cs)
		}
		if ms, ok := got.FirstCleaned(end - 1); !ok || ms != 1234 {
			t.Fatalf("FirstCleaned(%d) = %d, %v", end-1, ms, ok)
		}
		if _, ok := got.FirstCleaned(end); ok {
			t.Fatalf("FirstCleaned past the horizons found one")
		}
		// Lookups over the gaps find the next record's entry.
		for _, c := range []struct{ at, base int64 }{{0, 3}, {2, 3}, {3, 3}, {4, end - 1}, {end - 2, end - 1}} {
			es, st, err := r.Lookup(ctx, tp.ID, 0, c.at, 1)
			if err != nil || len(es) == 0 || es[0].BaseOffset != c.base || st.Bytes != 20 {
				t.Fatalf("Lookup(%d): %+v %+v %v, want the entry at %d", c.at, es, st, err, c.base)
			}
		}
		// By time: 100 is in the first entry, above it the second.
		for _, c := range []struct{ ts, base int64 }{{50, 3}, {100, 3}, {101, end - 1}, {300, end - 1}} {
			e, found, err := r.OffsetForTimestamp(ctx, tp.ID, 0, c.ts)
			if err != nil || !found || e.BaseOffset != c.base {
				t.Fatalf("OffsetForTimestamp(%d): %+v %v %v, want %d", c.ts, e, found, err, c.base)
			}
		}
		if rel := releasedKeys(t, r, tp.ID, 0); !contains(rel, arch[0].SegmentKey) {
			t.Fatalf("the replaced file is not released: %v", rel)
		}
		// A retry finds it done.
		if res, err := r.SwapCleaned(ctx, other, arch, cleaned, &cs); err != nil || !res.AlreadyDone {
			t.Fatalf("retry: %+v, %v", res, err)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
