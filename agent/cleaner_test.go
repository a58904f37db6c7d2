package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// kv is a keyed record; value "<nil>" is a tombstone.
func kv(key, value string, ts int64) objectlog.Record {
	r := objectlog.Record{Key: []byte(key), Timestamp: ts}
	if value != "<nil>" {
		r.Value = []byte(value)
	}
	return r
}

// compactedTopic creates a topic with the given config keys set.
func (e *readEnv) compactedTopic(t *testing.T, set map[string]string) coordinator.Topic {
	t.Helper()
	tp := e.createTopic(t, 1)
	tp, err := e.redis.UpdateTopicConfig(t.Context(), tp.Name, set)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// cleanerLog writes four flushes of keyed records with tombstones, each
// archived by its own compaction (at a clock that archives that flush
// only), and returns what a reader of the cleaned log must see: offset ->
// "key=value", tombstones "key=<nil>". The second compaction merges the
// first flush's small file with the second flush (archive_merge.go: four
// offsets against four), the later ones do not (8 against 3, 3 against 2):
//
//	file 1, offsets 0-3:  a=1 b=1 c=1 d=1      (all superseded)
//	        offsets 4-7:  a=2 b=<nil> c=2 e=1  (b's tombstone, e stay)
//	file 2, offsets 8-10: a=3 d=<nil> d=2      (a, d=2 stay)
//	file 3, offsets 11-12: f=1 c=3             (both stay)
func cleanerLog(t *testing.T, a *Agent, tp coordinator.Topic) (latest map[int64]string, all map[int64]string) {
	t.Helper()
	flushes := [][]objectlog.Record{
		{kv("a", "1", 10_000), kv("b", "1", 10_001), kv("c", "1", 10_002), kv("d", "1", 10_003)},
		{kv("a", "2", 20_000), kv("b", "<nil>", 20_001), kv("c", "2", 20_002), kv("e", "1", 20_003)},
		{kv("a", "3", 30_000), kv("d", "<nil>", 30_001), kv("d", "2", 30_002)},
		{kv("f", "1", 40_000), kv("c", "3", 40_001)},
	}
	all = map[int64]string{}
	var off int64
	for i, recs := range flushes {
		write(t, a, tp, 0, objectlog.NoProducer, recs...)
		for _, r := range recs {
			v := "<nil>"
			if r.Value != nil {
				v = string(r.Value)
			}
			all[off] = string(r.Key) + "=" + v
			off++
		}
		// Archive this flush alone: its newest record is past the archive
		// age, the next flush's is not.
		now := time.UnixMilli(int64(10_000*(i+1)) + 5000 + tp.Config.ArchiveAfterMs)
		if rep, err := a.RunCompaction(t.Context(), now); err != nil || rep.Files != 1 {
			t.Fatalf("compaction of flush %d: %+v, %v", i, rep, err)
		}
	}
	latest = map[int64]string{}
	for _, o := range []int64{5, 7, 8, 10, 11, 12} {
		latest[o] = all[o]
	}
	return latest, all
}

// render is a record as "key=value" ("<nil>" for a null value).
func render(key, value []byte) string {
	v := "<nil>"
	if value != nil {
		v = string(value)
	}
	return string(key) + "=" + v
}

// checkReads reads the partition every way a consumer can and checks it
// sees exactly want (offset -> record), offsets as they were, and that
// every read from an offset in a gap moves on to the next record.
func checkReads(t *testing.T, a *Agent, tp coordinator.Topic, want map[int64]string) {
	t.Helper()
	ctx := t.Context()
	st, err := a.index.PartitionState(ctx, tp.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	offsets := slices.Sorted(func(yield func(int64) bool) {
		for o := range want {
			if !yield(o) {
				return
			}
		}
	})
	nextAt := func(off int64) (int64, bool) {
		i, _ := slices.BinarySearch(offsets, off)
		if i == len(offsets) {
			return 0, false
		}
		return offsets[i], true
	}
	// Connect Fetch, from the log start in small steps, and from every offset.
	got := map[int64]string{}
	for off := st.LogStartOffset; off < st.HighWatermark; {
		req := fetchReq(tp, 0, off)
		req.MaxBytes = 1
		resp, err := doFetch(ctx, a, req)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		if resp.NextOffset <= off {
			t.Fatalf("fetch at %d: next offset %d does not move on", off, resp.NextOffset)
		}
		for _, r := range resp.Records {
			got[r.Offset] = render(r.Key, r.Value)
		}
		off = resp.NextOffset
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetched\n%v\nwant\n%v", got, want)
	}
	for off := st.LogStartOffset; off < st.HighWatermark; off++ {
		req := fetchReq(tp, 0, off)
		req.MaxBytes = 1
		resp, err := doFetch(ctx, a, req)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		next, ok := nextAt(off)
		if !ok {
			if len(resp.Records) != 0 || resp.NextOffset <= off {
				t.Fatalf("fetch at %d past the last record: %s, next %d", off, offsetsOf(resp.Records), resp.NextOffset)
			}
			continue
		}
		// The next offset is past the record, at most at the one after it.
		after, ok := nextAt(next + 1)
		if !ok {
			after = st.HighWatermark
		}
		if len(resp.Records) == 0 || resp.Records[0].Offset != next || resp.NextOffset <= next || resp.NextOffset > after {
			t.Fatalf("fetch at %d: %s next %d; want record %d first, next in (%d, %d]", off, offsetsOf(resp.Records), resp.NextOffset, next, next, after)
		}
	}
	// Subscribe from the log start.
	s := subscribeCore(t, a, &stratav1.SubscribeRequest{Topic: tp.Name, Partitions: []int32{0},
		Start: &stratav1.SubscribeRequest_Offset{Offset: st.LogStartOffset}, MaxBytes: 1})
	streamed := map[int64]string{}
	for _, r := range s.next(len(want), 0) {
		streamed[r.Offset] = render(r.Key, r.Value)
	}
	if fmt.Sprint(streamed) != fmt.Sprint(want) {
		t.Fatalf("streamed\n%v\nwant\n%v", streamed, want)
	}
	// The Kafka path: a consumer's loop over whole batches from each offset.
	for from := st.LogStartOffset; from < st.HighWatermark; from++ {
		seen := map[int64]string{}
		for off := from; off < st.HighWatermark; {
			res, err := a.ReadBatches(ctx, []BatchRead{{Topic: tp.Name, Partition: 0, Offset: off}}, 0, 1, 1)
			if err != nil || res[0].Err != nil {
				t.Fatalf("ReadBatches at %d: %v %v", off, err, res[0].Err)
			}
			batches, err := objectlog.DecodeChunk(res[0].Batches, -1)
			if err != nil || len(batches) == 0 {
				t.Fatalf("ReadBatches at %d: %d batches, %v", off, len(batches), err)
			}
			for i := range batches {
				b := &batches[i]
				recs, err := b.AppendRecords(nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if r.Offset < b.BaseOffset || r.Offset >= b.NextOffset() {
						t.Fatalf("batch %d..%d holds record %d", b.BaseOffset, b.NextOffset()-1, r.Offset)
					}
					if r.Offset >= off {
						seen[r.Offset] = render(r.Key, r.Value)
					}
				}
				if b.NextOffset() <= off {
					t.Fatalf("ReadBatches at %d: batch ending at %d", off, b.NextOffset())
				}
				off = b.NextOffset()
			}
		}
		wantFrom := map[int64]string{}
		for o, v := range want {
			if o >= from {
				wantFrom[o] = v
			}
		}
		if fmt.Sprint(seen) != fmt.Sprint(wantFrom) {
			t.Fatalf("Kafka consumer from %d saw\n%v\nwant\n%v", from, seen, wantFrom)
		}
	}
}

func TestCleaningKeepsTheLatestRecordPerKey(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"})
	latest, all := cleanerLog(t, a, tp)
	ctx := t.Context()
	checkReads(t, a, tp, all)
	before, _, err := env.redis.Lookup(ctx, tp.ID, 0, 0, 1<<40)
	if err != nil || len(before) != 3 || before[0].Records != 8 {
		t.Fatalf("archive entries before cleaning: %+v, %v", before, err)
	}

	now := time.Now()
	rep, err := a.RunCleaning(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Partitions != 1 || rep.RecordsRead != 13 || rep.RecordsRemoved != 7 || rep.BytesRemoved <= 0 {
		t.Fatalf("cleaning report %+v; want 13 records read, 7 removed", rep)
	}
	checkReads(t, a, tp, latest)
	cold, _ := env.startAgent(t, manualCompaction)
	checkReads(t, cold, tp, latest)
	after, st, err := env.redis.Lookup(ctx, tp.ID, 0, 0, 1<<40)
	if err != nil || st.HighWatermark != 13 || st.LogStartOffset != 0 {
		t.Fatalf("after cleaning: %+v %+v %v", after, st, err)
	}
	for _, e := range after {
		parts, err := objectlog.ParseArchiveKey(e.SegmentKey)
		if err != nil || parts.Generation == 0 {
			t.Fatalf("entry %+v: not a cleaned archive file (%+v, %v)", e, parts, err)
		}
	}
	// The replaced files are released for the janitor.
	rel, err := env.redis.ReleasedSegments(ctx, tp.ID, 0, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range before {
		if !slices.ContainsFunc(rel, func(r coordinator.ReleasedSegment) bool { return r.Key == e.SegmentKey }) {
			t.Fatalf("replaced file %s not released (%+v)", e.SegmentKey, rel)
		}
	}
	// The janitor deletes them after its grace (no retention: compact alone
	// never deletes by retention.ms, though the records are from 1970).
	if _, err := a.RunJanitor(ctx, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var inUse []string
	for _, e := range after {
		if !slices.Contains(inUse, e.SegmentKey) {
			inUse = append(inUse, e.SegmentKey)
		}
	}
	if files := archiveObjects(t, env.store); fmt.Sprint(files) != fmt.Sprint(inUse) {
		t.Fatalf("archive files after the janitor: %v; want those in use %v", files, inUse)
	}
	checkReads(t, cold, tp, latest)
	// Lookups by time land on the next record kept.
	for _, c := range []struct{ ts, off int64 }{{0, 5}, {10_003, 5}, {20_001, 5}, {20_002, 7}, {30_001, 10}, {40_001, 12}} {
		off, _, err := a.ListOffset(ctx, tp.Name, 0, c.ts, false)
		if err != nil || off != c.off {
			t.Fatalf("ListOffset(%d) = %d, %v; want %d", c.ts, off, err, c.off)
		}
	}
	cs, err := env.redis.CleanerState(ctx, tp.ID, 0)
	if err != nil || cs.Checkpoint != 13 || len(cs.Horizons) != 1 || cs.Horizons[0] != (coordinator.TombstoneHorizon{End: 13, FirstCleanedMs: now.UnixMilli()}) {
		t.Fatalf("cleaner state %+v, %v", cs, err)
	}

	// Nothing dirty, no tombstone due: no pass.
	if rep, err := a.RunCleaning(ctx, now.Add(time.Minute)); err != nil || rep.Partitions != 0 {
		t.Fatalf("second pass: %+v, %v; want none", rep, err)
	}
	// The tombstone stays until delete.retention.ms after the first pass
	// that found it cleanable, whatever its own timestamp (1970).
	if rep, err := a.RunCleaning(ctx, now.Add(time.Hour-time.Second)); err != nil || rep.Partitions != 0 {
		t.Fatalf("pass before delete.retention.ms: %+v, %v; want none", rep, err)
	}
	checkReads(t, a, tp, latest)
	rep, err = a.RunCleaning(ctx, now.Add(time.Hour))
	if err != nil || rep.Partitions != 1 || rep.RecordsRemoved != 1 {
		t.Fatalf("pass at delete.retention.ms: %+v, %v; want the tombstone removed", rep, err)
	}
	delete(latest, 5)
	checkReads(t, a, tp, latest)
	if cs, err := env.redis.CleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 13 || len(cs.Horizons) != 0 {
		t.Fatalf("cleaner state after the tombstone went: %+v, %v", cs, err)
	}
	// And then nothing more to do.
	if rep, err := a.RunCleaning(ctx, now.Add(2*time.Hour)); err != nil || rep.Partitions != 0 {
		t.Fatalf("pass after: %+v, %v; want none", rep, err)
	}
}

func TestCleaningKeepsTheLastTombstoneAndHonoursLagAndRatio(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "1000",
		"min.compaction.lag.ms": "3600000", "min.cleanable.dirty.ratio": "0.9"})
	ctx := t.Context()
	base := time.Now().Add(-30 * time.Minute).UnixMilli()
	write(t, a, tp, 0, objectlog.NoProducer, kv("a", "1", base), kv("a", "2", base+1), kv("b", "<nil>", base+2))
	if rep, err := a.RunCompaction(ctx, time.Now()); err != nil || rep.Files != 1 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	// min.compaction.lag.ms: the records are 30 minutes old, the lag an hour.
	if rep, err := a.RunCleaning(ctx, time.Now()); err != nil || rep.Partitions != 0 {
		t.Fatalf("cleaning within min.compaction.lag.ms: %+v, %v; want none", rep, err)
	}
	now := time.Now().Add(time.Hour)
	if rep, err := a.RunCleaning(ctx, now); err != nil || rep.Partitions != 1 || rep.RecordsRemoved != 1 {
		t.Fatalf("cleaning past min.compaction.lag.ms: %+v, %v", rep, err)
	}
	// b's tombstone is the log's last record: it stays past
	// delete.retention.ms, or a consumer at offset 2 would wait forever.
	want := map[int64]string{1: "a=2", 2: "b=<nil>"}
	if rep, err := a.RunCleaning(ctx, now.Add(time.Minute)); err != nil || rep.RecordsRemoved != 0 {
		t.Fatalf("cleaning the last tombstone: %+v, %v; want it kept", rep, err)
	}
	checkReads(t, a, tp, want)

	// The dirty ratio: a little new data against 0.9 waits.
	write(t, a, tp, 0, objectlog.NoProducer, kv("a", "3", base+10))
	if rep, err := a.RunCompaction(ctx, time.Now()); err != nil || rep.Files != 1 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	entries, _, _ := env.redis.Lookup(ctx, tp.ID, 0, 0, 1<<40)
	var dirty, total int64
	for _, e := range entries {
		total += e.ByteLength
		if e.BaseOffset >= 3 {
			dirty += e.ByteLength
		}
	}
	if float64(dirty) >= 0.9*float64(total) {
		t.Fatalf("test setup: dirty %d of %d bytes", dirty, total)
	}
	if rep, err := a.RunCleaning(ctx, now.Add(2*time.Minute)); err != nil || rep.Partitions != 0 {
		t.Fatalf("cleaning below the dirty ratio: %+v, %v; want none", rep, err)
	}
	if _, err := env.redis.UpdateTopicConfig(ctx, tp.Name, map[string]string{"min.cleanable.dirty.ratio": "0.1"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.RunCleaning(ctx, now.Add(3*time.Minute)); err != nil || rep.Partitions != 1 {
		t.Fatalf("cleaning above the dirty ratio: %+v, %v", rep, err)
	}
	// a=2 superseded; b's tombstone, no longer last, counts its
	// delete.retention.ms from this pass (the one before kept it as the
	// last record, without a horizon).
	checkReads(t, a, tp, map[int64]string{2: "b=<nil>", 3: "a=3"})
	if rep, err := a.RunCleaning(ctx, now.Add(4*time.Minute)); err != nil || rep.Partitions != 1 || rep.RecordsRemoved != 1 {
		t.Fatalf("cleaning the due tombstone: %+v, %v", rep, err)
	}
	checkReads(t, a, tp, map[int64]string{3: "a=3"})
}

func TestCompactDeletePolicies(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	ctx := t.Context()
	old := time.Now().Add(-48 * time.Hour).UnixMilli()
	for _, c := range []struct {
		policy     string
		cleaned    bool
		retainedTo int64 // the log start after the janitor
	}{
		{"compact", true, 0},
		{"compact,delete", true, 4},
		{"delete", false, 4},
	} {
		tp, err := env.redis.CreateTopic(ctx, "t-"+t.Name()+"-"+strings.ReplaceAll(c.policy, ",", "-"),
			coordinator.TopicConfig{CleanupPolicy: c.policy, RetentionMs: 24 * 3600 * 1000})
		if err != nil {
			t.Fatal(err)
		}
		write(t, a, tp, 0, objectlog.NoProducer, kv("a", "1", old), kv("a", "2", old+1))
		write(t, a, tp, 0, objectlog.NoProducer, kv("b", "1", old+2), kv("b", "2", old+3))
		if _, err := a.RunCompaction(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		rep, err := a.RunCleaning(ctx, time.Now())
		if err != nil || (rep.RecordsRemoved == 2) != c.cleaned {
			t.Fatalf("%s: cleaning %+v, %v", c.policy, rep, err)
		}
		if _, err := a.RunJanitor(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		st, err := env.redis.PartitionState(ctx, tp.ID, 0)
		if err != nil || st.LogStartOffset != c.retainedTo {
			t.Fatalf("%s: after the janitor %+v, %v; want log start %d", c.policy, st, err, c.retainedTo)
		}
	}
}

// cleanFencingIndex lets another holder take the compaction lease just
// before the cleaner's swap.
type cleanFencingIndex struct{ *coordinator.Redis }

func (f cleanFencingIndex) SwapCleaned(ctx context.Context, l coordinator.CompactionLease, old, repl []coordinator.IndexEntry, cs *coordinator.CleanerState) (coordinator.SwapResult, error) {
	if err := f.ReleaseCompactionLease(ctx, l); err != nil {
		return coordinator.SwapResult{}, err
	}
	other, err := f.AcquireCompactionLease(ctx, l.TopicID, l.Partition, "other", time.Minute)
	if err != nil {
		return coordinator.SwapResult{}, err
	}
	defer func() { _ = f.ReleaseCompactionLease(ctx, other) }()
	return f.Redis.SwapCleaned(ctx, l, old, repl, cs)
}

func TestCleaningFencedChangesNothing(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact"})
	_, all := cleanerLog(t, a, tp)
	ctx := t.Context()
	entriesBefore, _, _ := env.redis.Lookup(ctx, tp.ID, 0, 0, 1<<40)
	filesBefore := archiveObjects(t, env.store)

	fenced, _ := (&readEnv{store: env.store, index: cleanFencingIndex{env.redis}, redis: env.redis}).startAgent(t, manualCompaction)
	_, err := fenced.RunCleaning(ctx, time.Now())
	if !errors.Is(err, coordinator.ErrFenced) {
		t.Fatalf("cleaning with a lost lease: %v, want ErrFenced", err)
	}
	if entries, _, _ := env.redis.Lookup(ctx, tp.ID, 0, 0, 1<<40); fmt.Sprint(entries) != fmt.Sprint(entriesBefore) {
		t.Fatalf("the fenced cleaner changed the index:\n%+v\n%+v", entries, entriesBefore)
	}
	if files := archiveObjects(t, env.store); fmt.Sprint(files) != fmt.Sprint(filesBefore) {
		t.Fatalf("the fenced cleaner left files: %v, before %v", files, filesBefore)
	}
	if cs, err := env.redis.CleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 0 || len(cs.Horizons) != 0 {
		t.Fatalf("the fenced cleaner wrote its state: %+v, %v", cs, err)
	}
	checkReads(t, a, tp, all)
}

func TestCleaningDedupeBufferBound(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	// Room for about 21845 keys: the first file's 20000 fit, the second's
	// 5000 more do not. (The second file is smaller than the first, so the
	// compactor does not merge the two: archive_merge.go.)
	a, _ := env.startAgent(t, func(c *Config) { manualCompaction(c); c.CleanerDedupeBufferBytes = 1 << 20 })
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"})
	ctx := t.Context()
	for f := range 2 {
		recs := make([]objectlog.Record, 20000-15000*f)
		for i := range recs {
			recs[i] = kv(fmt.Sprintf("k%d-%d", f, i), "v", int64(10_000*(f+1)))
		}
		recs[0] = kv("dup", strings.Repeat("x", f), int64(10_000*(f+1)))
		write(t, a, tp, 0, objectlog.NoProducer, recs...)
		now := time.UnixMilli(int64(10_000*(f+1)) + 5000 + tp.Config.ArchiveAfterMs)
		if rep, err := a.RunCompaction(ctx, now); err != nil || rep.Files != 1 {
			t.Fatalf("compaction %d: %+v, %v", f, rep, err)
		}
	}
	// The map fills in the second file: the pass cleans the first only.
	// The second file's "dup", mapped before the map filled, is in the log:
	// the first "dup" goes.
	rep, err := a.RunCleaning(ctx, time.Now())
	if err != nil || rep.Partitions != 1 || rep.RecordsRead != 20000 || rep.RecordsRemoved != 1 {
		t.Fatalf("first pass: %+v, %v; want only the first file (the map full)", rep, err)
	}
	cs, err := env.redis.CleanerState(ctx, tp.ID, 0)
	if err != nil || cs.Checkpoint != 20000 {
		t.Fatalf("checkpoint after the first pass: %+v, %v; want 20000", cs, err)
	}
	// The next pass maps the second file alone.
	rep, err = a.RunCleaning(ctx, time.Now())
	if err != nil || rep.Partitions != 1 || rep.RecordsRead != 24999 || rep.RecordsRemoved != 0 {
		t.Fatalf("second pass: %+v, %v", rep, err)
	}
	if cs, err = env.redis.CleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 25000 {
		t.Fatalf("checkpoint after the second pass: %+v, %v; want 25000", cs, err)
	}
	// A map too small for one file's keys is an error naming the flag.
	small, _ := env.startAgent(t, func(c *Config) { manualCompaction(c); c.CleanerDedupeBufferBytes = 1 << 20 })
	recs := make([]objectlog.Record, 30000)
	for i := range recs {
		recs[i] = kv(fmt.Sprintf("n%d", i), "v", 50_000)
	}
	write(t, small, tp, 0, objectlog.NoProducer, recs...)
	if _, err := small.RunCompaction(ctx, time.UnixMilli(60_000+tp.Config.ArchiveAfterMs)); err != nil {
		t.Fatal(err)
	}
	if _, err := small.RunCleaning(ctx, time.Now()); err == nil || !strings.Contains(err.Error(), "--cleaner-dedupe-buffer-bytes") {
		t.Fatalf("a file over the map: %v", err)
	}
}

func TestCompactedTopicRefusesNullKeys(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact,delete"})
	ctx := t.Context()
	produce := func(recs ...*stratav1.Record) error {
		_, err := a.Produce(ctx, &stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{{Topic: tp.Name, Records: recs}}})
		return err
	}
	// The Connect front-end answers ErrInvalidRecord INVALID_ARGUMENT with
	// Kafka's INVALID_RECORD (agent/connectapi's error table test).
	err := produce(&stratav1.Record{Key: []byte("k"), Value: []byte("v")}, &stratav1.Record{Value: []byte("no key")})
	if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "Compacted topic cannot accept message without key") {
		t.Fatalf("produce of a null key to a compacted topic: %v, want ErrInvalidRecord", err)
	}
	if err := produce(&stratav1.Record{Key: []byte{}, Value: []byte("empty key is a key")}); err != nil {
		t.Fatalf("an empty key: %v", err)
	}
	// The Kafka path: a client's batch with a null key.
	raw := encodedBatch(t, objectlog.NoProducer, kv("k", "v", 1), objectlog.Record{Value: []byte("x"), Timestamp: 1})
	if _, err := a.AppendBatch(ctx, tp.Name, 0, raw); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("AppendBatch of a null key: %v, want ErrInvalidRecord", err)
	}
	appendBatch(t, a, tp.Name, 0, encodedBatch(t, objectlog.NoProducer, kv("k", "v", 1)))
}

func TestCleaningNeverShowsAbortedRecordsOrMarkers(t *testing.T) {
	// The compactor leaves aborted transactions and markers out of the
	// archive; a cleaning of the archive therefore neither keeps nor
	// brings them back, and an aborted write of a key does not count as
	// its latest record.
	t.Parallel()
	base := newReadEnv(t)
	env := &readEnv{store: base.store, redis: base.redis,
		index: txnIndex{Redis: base.redis, lso: 1 << 40, aborted: []coordinator.AbortedTxn{{ProducerID: 7, FirstOffset: 2, LastOffset: 4}}}}
	a, _ := env.startAgent(t, manualCompaction)
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact"})
	txn := objectlog.BatchSpec{ProducerID: 7, ProducerEpoch: 0, BaseSequence: 0, Transactional: true}
	marker := objectlog.BatchSpec{ProducerID: 7, ProducerEpoch: 0, BaseSequence: 2, Transactional: true, Control: true}
	write(t, a, tp, 0, objectlog.NoProducer, kv("a", "1", 1000), kv("b", "1", 1000)) // 0-1
	write(t, a, tp, 0, txn, kv("a", "aborted", 1000), kv("c", "aborted", 1000))      // 2-3, aborted
	write(t, a, tp, 0, marker, kv("", "abort", 1000))                                // 4
	write(t, a, tp, 0, objectlog.NoProducer, kv("b", "2", 1000))                     // 5
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Records != 3 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	rep, err := a.RunCleaning(t.Context(), time.Now())
	if err != nil || rep.Partitions != 1 || rep.RecordsRead != 3 || rep.RecordsRemoved != 1 {
		t.Fatalf("cleaning: %+v, %v; want b=1 removed of the 3 committed records", rep, err)
	}
	checkReads(t, a, tp, map[int64]string{0: "a=1", 5: "b=2"})
}

// TestTombstoneDueNeverOverflows: delete.retention.ms at Long.MAX (Kafka's
// way of keeping tombstones for ever) keeps them; an addition of the first
// cleaning time and the retention overflowed into the past and removed them
// at the first pass.
func TestTombstoneDueNeverOverflows(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixMilli()
	cases := []struct {
		first, retention int64
		want             bool
	}{
		{now, math.MaxInt64, false},
		{now - 1000, math.MaxInt64, false},
		{now - 1000, 1000, true},
		{now - 999, 1000, false},
		{now, 0, true},
	}
	for _, c := range cases {
		if got := tombstoneDue(c.first, c.retention, now); got != c.want {
			t.Errorf("tombstoneDue(now%+d, %d) = %v, want %v", c.first-now, c.retention, got, c.want)
		}
	}
}
