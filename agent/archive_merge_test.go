package agent

import (
	"crypto/rand"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// mergeFlush writes pass i's flush, as a trickle's: a transaction marker
// (left out of the archive, so each file starts after a gap of one offset),
// then records with a null key, an empty key, headers with null and empty
// values, a null value, and timestamps that do not always rise. It returns
// timestamps to look offsets up by.
func mergeFlush(t *testing.T, a *Agent, topic coordinator.Topic, p int32, i int) []int64 {
	t.Helper()
	control := objectlog.BatchSpec{ProducerID: 5, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}
	write(t, a, topic, p, control, values(1, "marker")...)
	base := int64(10_000 + 1000*i)
	spec := objectlog.NoProducer
	spec.Codec = []objectlog.Codec{objectlog.CodecNone, objectlog.CodecZstd, objectlog.CodecLZ4}[i%3]
	write(t, a, topic, p, spec,
		objectlog.Record{Key: nil, Value: []byte(fmt.Sprintf("v%d", i)), Timestamp: base,
			Headers: []objectlog.Header{{Key: "h", Value: nil}, {Key: "h", Value: []byte("x")}, {Key: "", Value: []byte{}}}},
		objectlog.Record{Key: []byte{}, Value: nil, Timestamp: base + 1},
		objectlog.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte{}, Timestamp: base - 700},
		objectlog.Record{Key: []byte("big"), Value: []byte(strings.Repeat("x", 100+i)), Timestamp: base + 2})
	return []int64{base - 700, base, base + 1, base + 2, base + 3}
}

// indexedFiles returns the archive files the partition's index entries
// point at, in offset order; with allArchived, it fails on a hot entry.
func indexedFiles(t *testing.T, idx *coordinator.Redis, topic coordinator.Topic, p int32, allArchived bool) []string {
	t.Helper()
	entries, _, err := idx.Lookup(t.Context(), topic.ID, p, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if !e.Archived() && !allArchived {
			continue
		}
		if !e.Archived() {
			t.Fatalf("hot entry left after compaction: %+v", e)
		}
		if !slices.Contains(files, e.SegmentKey) {
			files = append(files, e.SegmentKey)
		}
	}
	return files
}

// TestCompactionMergesSmallFiles: a trickle compacted one flush at a time
// does not collect a file per pass. The tail merges as a binary counter
// (archive_merge.go): after pass i the partition has as many archive files
// as i has one bits, one after 16 passes. Reads (Fetch, Subscribe,
// ListOffsets, the Kafka whole-batch path) stay what they were, on the
// compacting agent and a cold one; the replaced files are released and
// the janitor deletes them after its grace, and only them.
func TestCompactionMergesSmallFiles(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	cold, _ := env.startAgent(t, manualCompaction)
	// No retention: the records are from 1970, and the janitor runs here.
	topic, err := env.index.CreateTopic(t.Context(), "merges", coordinator.TopicConfig{Partitions: 1, RetentionMs: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var inUse, replaced []string
	var at []int64
	merged := 0
	for i := 1; i <= 16; i++ {
		at = append(at, mergeFlush(t, a, topic, 0, i)...)
		prev := indexedFiles(t, env.redis, topic, 0, false)
		before := viewPartition(t, a, topic, 0, at)
		rep, err := a.RunCompaction(ctx, time.Now())
		if err != nil || rep.Files != 1 || rep.Records != 4 {
			t.Fatalf("pass %d: %+v, %v; want one file, 4 records archived", i, rep, err)
		}
		files := indexedFiles(t, env.redis, topic, 0, true)
		if len(files) != bits.OnesCount(uint(i)) {
			t.Fatalf("pass %d: %d archive files %v; want %d", i, len(files), files, bits.OnesCount(uint(i)))
		}
		if rep.FilesMerged != len(prev)+1-len(files) {
			t.Fatalf("pass %d: report %+v, %d files before and %d after", i, rep, len(prev), len(files))
		}
		merged += rep.FilesMerged
		for _, k := range prev {
			if !slices.Contains(files, k) {
				replaced = append(replaced, k)
			}
		}
		// A merged file's key carries the job's generation.
		if parts, err := objectlog.ParseArchiveKey(files[len(files)-1]); err != nil || (rep.FilesMerged > 0) != (parts.Generation > 0) {
			t.Fatalf("pass %d: new file %s (%+v, %v), %d merged", i, files[len(files)-1], parts, err, rep.FilesMerged)
		}
		sameMergedView(t, fmt.Sprintf("after pass %d", i), before, viewPartition(t, a, topic, 0, at))
		if i%4 == 0 {
			sameMergedView(t, fmt.Sprintf("after pass %d, cold agent", i), before, viewPartition(t, cold, topic, 0, at))
		}
		inUse = files
	}
	// 1+1+0+2+0+1+0+3+... : every file but the last, 15 of them.
	if merged != 15 || len(replaced) != 15 {
		t.Fatalf("%d files merged, %d replaced; want 15", merged, len(replaced))
	}
	rel, err := env.redis.ReleasedSegments(ctx, topic.ID, 0, time.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range replaced {
		if !slices.ContainsFunc(rel, func(r coordinator.ReleasedSegment) bool { return r.Key == k }) {
			t.Fatalf("replaced file %s not released", k)
		}
	}
	final := viewPartition(t, cold, topic, 0, at)
	// Within the grace the replaced files stay (readers in flight); after
	// it only the file in use is left.
	if _, err := a.RunJanitor(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if keys := archiveObjects(t, env.store); len(keys) != 16 {
		t.Fatalf("within the grace: %d archive objects, want all 16", len(keys))
	}
	if _, err := a.RunJanitor(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys := archiveObjects(t, env.store); !slices.Equal(keys, inUse) {
		t.Fatalf("after the janitor: archive objects %v; want the one in use %v", keys, inUse)
	}
	sameMergedView(t, "after the janitor", final, viewPartition(t, cold, topic, 0, at))
}

// TestCompactionMergeStopsAtTheSizeLimit: files reach the small-file
// threshold (a quarter of --archive-file-bytes) and stay; no file passes
// --archive-file-bytes, and the small files at the tail stay few.
func TestCompactionMergeStopsAtTheSizeLimit(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *Config) { manualCompaction(c); c.ArchiveFileBytes = 1 << 20 })
	topic := env.createTopic(t, 1)
	ctx := t.Context()
	small := smallArchiveFileBytes(1 << 20)
	for i := range 24 {
		recs := make([]objectlog.Record, 12)
		for j := range recs {
			v := make([]byte, 8000)
			_, _ = rand.Read(v) // incompressible: ~96 KB a pass
			recs[j] = objectlog.Record{Value: v, Timestamp: int64(1000 + i)}
		}
		write(t, a, topic, 0, objectlog.NoProducer, recs...)
		if _, err := a.RunCompaction(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	indexedFiles(t, env.redis, topic, 0, true) // all archived
	entries, _, err := env.redis.Lookup(ctx, topic.ID, 0, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	var order []string
	for _, e := range entries {
		if _, ok := sizes[e.SegmentKey]; !ok {
			order = append(order, e.SegmentKey)
		}
		sizes[e.SegmentKey] += e.ByteLength
	}
	tail := 0
	for i, k := range order {
		info, err := env.store.Attributes(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size > 1<<20+64<<10 {
			t.Fatalf("file %s: %d bytes, past --archive-file-bytes", k, info.Size)
		}
		if sizes[k] < small {
			tail++
		} else if tail > 0 {
			t.Fatalf("files %v (%v): a small file before a large one at %d", order, sizes, i)
		}
	}
	// 24 passes of ~96 KB, 2.3 MB: at least two files reached the
	// threshold, and the small ones at the tail are at most log2(24)+1.
	if len(order)-tail < 2 || tail > 5 {
		t.Fatalf("files %v: %d small at the tail; want at least 2 large and at most 5 small", sizes, tail)
	}
}

// TestCompactionFencedMergeChangesNothing: a compactor fenced at the swap of
// a merge leaves the index, the released set, the small files and reads as
// they were, and deletes what it uploaded.
func TestCompactionFencedMergeChangesNothing(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 1)
	at := mergeFlush(t, a, topic, 0, 1)
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Files != 1 {
		t.Fatalf("first pass: %+v, %v", rep, err)
	}
	at = append(at, mergeFlush(t, a, topic, 0, 2)...)
	before := viewPartition(t, a, topic, 0, at)
	entriesBefore, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	filesBefore := archiveObjects(t, env.store)
	relBefore, _ := env.redis.ReleasedSegments(t.Context(), topic.ID, 0, time.Now().Add(time.Hour), 1000)

	fenced, _ := (&readEnv{store: env.store, index: fencingIndex{env.redis}, redis: env.redis}).startAgent(t, manualCompaction)
	_, err := fenced.RunCompaction(t.Context(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("merge with a lost lease: %v, want fenced", err)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if fmt.Sprint(entries) != fmt.Sprint(entriesBefore) {
		t.Fatalf("the fenced merge changed the index:\n%+v\n%+v", entries, entriesBefore)
	}
	if keys := archiveObjects(t, env.store); !slices.Equal(keys, filesBefore) {
		t.Fatalf("archive objects %v after the fenced merge; want %v", keys, filesBefore)
	}
	if rel, _ := env.redis.ReleasedSegments(t.Context(), topic.ID, 0, time.Now().Add(time.Hour), 1000); fmt.Sprint(rel) != fmt.Sprint(relBefore) {
		t.Fatalf("the fenced merge released %v (before %v)", rel, relBefore)
	}
	sameMergedView(t, "after the fenced merge", before, viewPartition(t, a, topic, 0, at))

	// The next, unfenced pass merges.
	rep, err := a.RunCompaction(t.Context(), time.Now())
	if err != nil || rep.FilesMerged != 1 || len(indexedFiles(t, env.redis, topic, 0, true)) != 1 {
		t.Fatalf("pass after the fenced one: %+v, %v; want the small file merged", rep, err)
	}
	sameMergedView(t, "after the merge", before, viewPartition(t, a, topic, 0, at))
}

// sameMergedView is sameView, where a fetch's next offset may point at an
// offset without a record (a marker's, left out of the archive) or past it:
// before a merge a file may end right before such an offset, after it the
// row group goes on past it; the same for the next offsets of the walk
// in steps of max_bytes. A fetch from such an offset is compared by
// sameView's marker rule only when it is hot before; here it is left out.
func sameMergedView(t *testing.T, what string, before, after readView) {
	t.Helper()
	has := map[int64]bool{}
	for _, r := range before.fetched {
		has[r.Offset] = true
	}
	norm := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			offs, rest, _ := strings.Cut(l, ":")
			off, err := strconv.ParseInt(offs, 10, 64)
			if err != nil {
				t.Fatalf("%s: fetch line %q", what, l)
			}
			if !has[off] {
				continue
			}
			head, next, ok := strings.Cut(rest, " next ")
			n, err := strconv.ParseInt(next, 10, 64)
			if !ok || err != nil {
				t.Fatalf("%s: fetch line %q", what, l)
			}
			for !has[n] && n < int64(len(lines)) {
				n++
			}
			out = append(out, offs+":"+head+" next "+strconv.FormatInt(n, 10))
		}
		return out
	}
	if len(before.fromEvery) != len(after.fromEvery) {
		t.Fatalf("%s: fetches from %d offsets, then %d", what, len(before.fromEvery), len(after.fromEvery))
	}
	skip := func(nexts []int64) []int64 {
		out := slices.Clone(nexts)
		for i := range out {
			for !has[out[i]] && out[i] < int64(len(before.fromEvery)) {
				out[i]++
			}
		}
		return out
	}
	b, a := before, after
	b.fromEvery, a.fromEvery = norm(before.fromEvery), norm(after.fromEvery)
	b.nexts, a.nexts = skip(before.nexts), skip(after.nexts)
	sameView(t, what, b, a)
}

// TestCompactionMergesCleanedFiles: a compacted topic's cleaned files (with
// gaps where the cleaner removed records) merge with newly archived
// records; the gaps stay gaps, every read path sees the same records, and
// the cleaner goes on from its checkpoint over the merged file.
func TestCompactionMergesCleanedFiles(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	tp := env.compactedTopic(t, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "3600000"})
	ctx := t.Context()
	latest, _ := cleanerLog(t, a, tp)
	now := time.Now()
	if rep, err := a.RunCleaning(ctx, now); err != nil || rep.Partitions != 1 {
		t.Fatalf("cleaning: %+v, %v", rep, err)
	}
	checkReads(t, a, tp, latest)
	// 13 new records (offsets 13-25): as many offsets as the cleaned files
	// span, so they take them along.
	var recs []objectlog.Record
	want := maps.Clone(latest)
	for i := range 13 {
		recs = append(recs, kv(fmt.Sprintf("n%d", i), strconv.Itoa(i), 50_000))
		want[int64(13+i)] = fmt.Sprintf("n%d=%d", i, i)
	}
	write(t, a, tp, 0, objectlog.NoProducer, recs...)
	rep, err := a.RunCompaction(ctx, time.UnixMilli(55_000+tp.Config.ArchiveAfterMs))
	if err != nil || rep.Files != 1 || rep.FilesMerged < 1 {
		t.Fatalf("compaction: %+v, %v; want the cleaned files merged", rep, err)
	}
	if files := indexedFiles(t, env.redis, tp, 0, true); len(files) != 1 {
		t.Fatalf("files after the merge: %v; want one", files)
	}
	checkReads(t, a, tp, want)
	cold, _ := env.startAgent(t, manualCompaction)
	checkReads(t, cold, tp, want)
	// The cleaner cleans the merged file's new part; nothing of it is
	// superseded, and the tombstone's delete.retention.ms has not passed.
	crep, err := a.RunCleaning(ctx, now.Add(time.Minute))
	if err != nil || crep.Partitions != 1 || crep.RecordsRemoved != 0 {
		t.Fatalf("cleaning after the merge: %+v, %v", crep, err)
	}
	checkReads(t, cold, tp, want)
	if cs, err := env.redis.CleanerState(ctx, tp.ID, 0); err != nil || cs.Checkpoint != 26 {
		t.Fatalf("cleaner state %+v, %v; want checkpoint 26", cs, err)
	}
}

// TestCompactionMergeKeepsRetentionPrompt: for a topic that deletes by
// retention.ms, a file is not merged with records more than a tenth of
// retention.ms newer than its own, so retention, which deletes whole files,
// is never held up by a merge for more than that (a long run with
// retention.ms=60000 kept records 100 s old before this rule).
func TestCompactionMergeKeepsRetentionPrompt(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic, err := env.index.CreateTopic(t.Context(), "prompt", coordinator.TopicConfig{Partitions: 1, RetentionMs: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Record times of three passes, in ms: the second is 20 s (over a tenth
	// of retention.ms) after the first, the third 1 s after the second.
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i, ts := range []int64{base, base + 20_000, base + 21_000} {
		write(t, a, topic, 0, objectlog.NoProducer, kv(fmt.Sprintf("k%d", i), "v", ts), kv("x", "y", ts))
		rep, err := a.RunCompaction(ctx, time.Now())
		if err != nil || rep.Records != 2 {
			t.Fatalf("pass %d: %+v, %v; want 2 records archived", i, rep, err)
		}
		want := []int{0, 0, 1}[i]
		if rep.FilesMerged != want {
			t.Fatalf("pass %d: %d files merged, want %d", i, rep.FilesMerged, want)
		}
	}
	if files := indexedFiles(t, env.redis, topic, 0, true); len(files) != 2 {
		t.Fatalf("%d archive files %v; want 2: the first pass's alone, the later two merged", len(files), files)
	}
}
