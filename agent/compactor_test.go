package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func manualCompaction(c *Config) { c.CompactionInterval = 0; c.JanitorInterval = 0 }

// readView is everything a reader can learn of a partition: every record
// through Fetch (in steps of a small max_bytes, with each answer's next
// offset) and Subscribe, and ListOffsets by time, by max timestamp and at
// the ends.
type readView struct {
	fetched   []*stratav1.ConsumedRecord
	nexts     []int64
	streamed  []*stratav1.ConsumedRecord
	byTime    []string
	maxTs     string
	fromEvery []string // the first record of a fetch from each offset
	// batched are the records of whole-batch reads (the Kafka listener's
	// path), control batches aside, rendered with every field.
	batched []string
}

func viewPartition(t *testing.T, a *Agent, topic coordinator.Topic, p int32, stamps []int64) readView {
	t.Helper()
	ctx := t.Context()
	var v readView
	st, err := a.index.PartitionState(ctx, topic.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	for off := st.LogStartOffset; off < st.HighWatermark; {
		req := fetchReq(topic, p, off)
		req.MaxBytes = 300
		resp, err := doFetch(ctx, a, req)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		v.fetched = append(v.fetched, resp.Records...)
		v.nexts = append(v.nexts, resp.NextOffset)
		if resp.NextOffset <= off {
			t.Fatalf("fetch at %d: next %d", off, resp.NextOffset)
		}
		off = resp.NextOffset
	}
	for off := st.LogStartOffset; off < st.HighWatermark; off++ {
		req := fetchReq(topic, p, off)
		req.MaxBytes = 1
		resp, err := doFetch(ctx, a, req)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		v.fromEvery = append(v.fromEvery, fmt.Sprintf("%d:%s next %d", off, offsetsOf(resp.Records), resp.NextOffset))
	}
	s := subscribeCore(t, a, &stratav1.SubscribeRequest{Topic: topic.Name, Partitions: []int32{p},
		Start: &stratav1.SubscribeRequest_Offset{Offset: st.LogStartOffset}, MaxBytes: 500})
	v.streamed = s.next(len(v.fetched), 0)
	for _, ts := range stamps {
		off, rts, err := a.ListOffset(ctx, topic.Name, p, ts, false)
		v.byTime = append(v.byTime, fmt.Sprintf("%d:%d/%d/%v", ts, off, rts, err))
	}
	r, found, err := a.listOffset(ctx, topic.Name, p, offsetMaxTimestamp, 0)
	v.maxTs = fmt.Sprintf("%+v %v %v", r, found, err)
	for off := st.LogStartOffset; off < st.HighWatermark; {
		res, err := a.ReadBatches(ctx, []BatchRead{{Topic: topic.Name, Partition: p, Offset: off}}, 0, 0, 700)
		if err != nil || res[0].Err != nil {
			t.Fatalf("whole-batch read at %d: %v %v", off, err, res)
		}
		batches, err := objectlog.DecodeChunk(res[0].Batches, -1)
		if err != nil || len(batches) == 0 {
			t.Fatalf("whole-batch read at %d: %d batches, %v", off, len(batches), err)
		}
		for i := range batches {
			b := &batches[i]
			off = b.NextOffset()
			if b.Attrs.Control() {
				continue
			}
			recs, err := b.AppendRecords(nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				v.batched = append(v.batched, fmt.Sprintf("%d/%d/%q/%q/%v/%v/%v", r.Offset, r.Timestamp, r.Key, r.Value,
					r.Key == nil, r.Value == nil, r.Headers))
			}
		}
	}
	return v
}

func sameView(t *testing.T, what string, a, b readView) {
	t.Helper()
	eq := func(x, y []*stratav1.ConsumedRecord) bool {
		return slices.EqualFunc(x, y, func(p, q *stratav1.ConsumedRecord) bool { return proto.Equal(p, q) })
	}
	switch {
	case !eq(a.fetched, b.fetched):
		t.Fatalf("%s: fetched records differ:\n%v\n%v", what, a.fetched, b.fetched)
	case !eq(a.streamed, b.streamed):
		t.Fatalf("%s: subscribed records differ", what)
	case !slices.Equal(a.nexts, b.nexts):
		t.Fatalf("%s: fetch next offsets %v, then %v", what, a.nexts, b.nexts)
	case !slices.Equal(a.fromEvery, b.fromEvery) && !sameButMarkers(a.fromEvery, b.fromEvery):
		t.Fatalf("%s: fetches from each offset:\n%v\n%v", what, a.fromEvery, b.fromEvery)
	case !slices.Equal(a.byTime, b.byTime):
		t.Fatalf("%s: ListOffsets by time:\n%v\n%v", what, a.byTime, b.byTime)
	case !slices.Equal(a.batched, b.batched):
		t.Fatalf("%s: whole-batch reads:\n%v\n%v", what, a.batched, b.batched)
	case a.maxTs != b.maxTs:
		t.Fatalf("%s: max timestamp %s, then %s", what, a.maxTs, b.maxTs)
	}
}

// sameButMarkers reports whether the fetches from each offset (before,
// after) differ only around control markers: the archive leaves markers
// out (DESIGN.md), so after compaction a fetch from a marker's offset
// answers what a fetch from the next offset did before, and a next offset
// that pointed at a marker points past it.
func sameButMarkers(before, after []string) bool {
	if len(before) != len(after) {
		return false
	}
	markers := map[int64]bool{}
	for _, b := range before {
		var off, next int64
		if _, err := fmt.Sscanf(b, "%d: next %d", &off, &next); err == nil {
			markers[off] = true
		}
	}
	norm := func(s string) string {
		head, next, ok := strings.Cut(s, " next ")
		n, err := strconv.ParseInt(next, 10, 64)
		if !ok || err != nil {
			return s
		}
		for markers[n] {
			n++
		}
		return head + " next " + strconv.FormatInt(n, 10)
	}
	for i := range before {
		want := norm(before[i])
		var off int64
		if _, err := fmt.Sscanf(before[i], "%d:", &off); err == nil && markers[off] {
			if i+1 >= len(before) {
				return false
			}
			_, rest, _ := strings.Cut(norm(before[i+1]), ":")
			want = fmt.Sprintf("%d:%s", off, rest)
		}
		if norm(after[i]) != want {
			return false
		}
	}
	return true
}

// writeMixed writes n batches of varied records to the partition, one flush
// each, cycling through the codecs, with a control batch in the middle;
// it returns the timestamps worth asking ListOffsets about.
func writeMixed(t *testing.T, a *Agent, topic coordinator.Topic, p int32, n int) []int64 {
	t.Helper()
	codecs := []objectlog.Codec{objectlog.CodecNone, objectlog.CodecGzip, objectlog.CodecSnappy, objectlog.CodecLZ4, objectlog.CodecZstd}
	var stamps []int64
	for i := range n {
		spec := objectlog.NoProducer
		spec.Codec = codecs[i%len(codecs)]
		if i == n/2 {
			// A marker of a producer with no open transaction here (the
			// index wants a producer id on control batches).
			control := objectlog.BatchSpec{ProducerID: 5, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}
			write(t, a, topic, p, control, values(1, "marker")...)
		}
		// Timestamps rise, but not always.
		base := int64(10_000 + 1000*i)
		if i%4 == 3 {
			base -= 2500
		}
		recs := []objectlog.Record{
			{Key: nil, Value: []byte(fmt.Sprintf("v%d-0", i)), Timestamp: base,
				Headers: []objectlog.Header{{Key: "h", Value: nil}, {Key: "h", Value: []byte("x")}, {Key: "", Value: []byte{}}}},
			{Key: []byte{}, Value: nil, Timestamp: base + 1},
			{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte{}, Timestamp: base + 2},
			{Key: []byte("big"), Value: []byte(strings.Repeat("x", 100+i)), Timestamp: base - 5},
		}
		write(t, a, topic, p, spec, recs...)
		stamps = append(stamps, base-5, base, base+1, base+2, base+3)
	}
	return append(stamps, 0, 1, 1<<50)
}

func archiveObjects(t *testing.T, b objectlog.BucketReader) []string {
	t.Helper()
	var keys []string
	for info, err := range b.List(t.Context(), "archive/") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

func TestCompactionKeepsReadsUnchanged(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 2)
	stamps := writeMixed(t, a, topic, 0, 25)
	// Partition 1 gets records too new to archive.
	write(t, a, topic, 1, objectlog.NoProducer, values(time.Now().UnixMilli(), "fresh")...)

	before := viewPartition(t, a, topic, 0, stamps)
	if len(before.fetched) != 100 {
		t.Fatalf("read %d records before compaction, want 100", len(before.fetched))
	}
	entriesBefore, _, err := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if err != nil || len(entriesBefore) != 26 {
		t.Fatalf("entries before: %d, %v", len(entriesBefore), err)
	}

	rep, err := a.RunCompaction(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Partitions != 1 || rep.Files != 1 || rep.Records != 100 || rep.BytesRemoved <= 0 {
		t.Fatalf("compaction report %+v, want partition 0 in one file of 100 records", rep)
	}
	entries, _, err := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !entries[0].Archived() {
		t.Fatalf("entries after compaction: %+v, want one archive entry", entries)
	}
	if keys := archiveObjects(t, env.store); len(keys) != 1 || keys[0] != entries[0].SegmentKey {
		t.Fatalf("archive objects %v, index points at %s", keys, entries[0].SegmentKey)
	}
	if _, err := objectlog.ParseArchiveKey(entries[0].SegmentKey); err != nil {
		t.Fatal(err)
	}
	if e1, _, _ := env.redis.Lookup(t.Context(), topic.ID, 1, 0, 1<<40); len(e1) != 1 || e1[0].Archived() {
		t.Fatalf("partition 1 (records newer than archive.after.ms): %+v", e1)
	}
	// Every replaced segment is released, for the janitor.
	rel, err := env.redis.ReleasedSegments(t.Context(), topic.ID, 0, time.Now().Add(time.Hour), 100)
	if err != nil || len(rel) != 26 {
		t.Fatalf("released %d segments, %v; want 26", len(rel), err)
	}

	// Describe shows the archived and hot ranges.
	desc, err := a.DescribeTopic(t.Context(), &stratav1.DescribeTopicRequest{Name: topic.Name})
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := desc.Partitions[0], desc.Partitions[1]
	if p0.ArchiveEndOffset != 101 || p0.ArchivedBytes != entries[0].ByteLength || p0.Bytes != p0.ArchivedBytes || p0.HighWatermark != 101 {
		t.Fatalf("partition 0 described as %v", p0)
	}
	if p1.ArchiveEndOffset != 0 || p1.ArchivedBytes != 0 || p1.Bytes <= 0 {
		t.Fatalf("partition 1 described as %v", p1)
	}

	// The same reads, on the agent that compacted and on a cold one.
	sameView(t, "after compaction", before, viewPartition(t, a, topic, 0, stamps))
	cold, _ := env.startAgent(t, manualCompaction)
	sameView(t, "after compaction, cold agent", before, viewPartition(t, cold, topic, 0, stamps))

	// More records, compacted again: a second file after the first.
	more := writeMixed(t, a, topic, 0, 6)
	before = viewPartition(t, a, topic, 0, append(stamps, more...))
	if rep, err = a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Files != 1 {
		t.Fatalf("second compaction: %+v, %v", rep, err)
	}
	sameView(t, "after the second compaction", before, viewPartition(t, cold, topic, 0, append(stamps, more...)))
	if entries, _, _ = env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40); len(entries) != 2 || !entries[1].Archived() {
		t.Fatalf("entries after the second compaction: %+v", entries)
	}
	// Nothing left to do.
	if rep, err = a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Files != 0 {
		t.Fatalf("third compaction: %+v, %v", rep, err)
	}
}

func TestCompactionRowGroupsAndFiles(t *testing.T) {
	// Small files: several files, several row groups, one entry per group.
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *Config) { manualCompaction(c); c.ArchiveFileBytes = 1 << 20 })
	topic := env.createTopic(t, 1)
	rng := rand.NewChaCha8([32]byte{})
	for i := range 12 {
		recs := make([]objectlog.Record, 40)
		for j := range recs {
			v := make([]byte, 8000)
			_, _ = rng.Read(v) // incompressible, so files fill up
			recs[j] = objectlog.Record{Value: v, Timestamp: int64(1000 + i)}
		}
		write(t, a, topic, 0, objectlog.NoProducer, recs...)
	}
	before := viewPartition(t, a, topic, 0, []int64{1000, 1005, 1011, 1012})
	rep, err := a.RunCompaction(t.Context(), time.Now())
	if err != nil || rep.Files < 2 {
		t.Fatalf("compaction: %+v, %v; want several files of at most 1 MiB", rep, err)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	files := map[string]bool{}
	for _, e := range entries {
		if !e.Archived() {
			t.Fatalf("hot entry left: %+v", e)
		}
		files[e.SegmentKey] = true
	}
	if len(files) != rep.Files || len(entries) <= len(files) {
		t.Fatalf("%d entries in %d files, report %+v: want several row groups per file", len(entries), len(files), rep)
	}
	sameView(t, "after compaction", before, viewPartition(t, a, topic, 0, []int64{1000, 1005, 1011, 1012}))
}

func TestCompactionRaceOneWins(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	b, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 1)
	stamps := writeMixed(t, a, topic, 0, 10)
	before := viewPartition(t, b, topic, 0, stamps)

	var wg sync.WaitGroup
	reps := make([]CompactionReport, 2)
	errs := make([]error, 2)
	for i, ag := range []*Agent{a, b} {
		wg.Go(func() { reps[i], errs[i] = ag.RunCompaction(t.Context(), time.Now()) })
	}
	wg.Wait()
	// One compacts; the other finds the lease held or the work done. An
	// upload that lost the race to the same key is an error, nothing more.
	if reps[0].Files+reps[1].Files != 1 {
		t.Fatalf("reports %+v %+v (errors %v %v): want one file written in all", reps[0], reps[1], errs[0], errs[1])
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if len(entries) != 1 || !entries[0].Archived() {
		t.Fatalf("entries %+v", entries)
	}
	if keys := archiveObjects(t, env.store); len(keys) != 1 || keys[0] != entries[0].SegmentKey {
		t.Fatalf("archive objects %v, index points at %s", keys, entries[0].SegmentKey)
	}
	sameView(t, "after the race", before, viewPartition(t, a, topic, 0, stamps))
}

func TestCompactionFencedSwapChangesNothing(t *testing.T) {
	// A compactor whose lease another agent took (it stalled past the
	// lease's TTL) is fenced at the swap: the index stays as it was and
	// its files go.
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 1)
	stamps := writeMixed(t, a, topic, 0, 5)
	before := viewPartition(t, a, topic, 0, stamps)
	entriesBefore, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)

	fenced, _ := (&readEnv{store: env.store, index: fencingIndex{env.redis}, redis: env.redis}).startAgent(t, manualCompaction)
	_, err := fenced.RunCompaction(t.Context(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "fenced") {
		t.Fatalf("compaction with a lost lease: %v, want fenced", err)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if fmt.Sprint(entries) != fmt.Sprint(entriesBefore) {
		t.Fatalf("the fenced compactor changed the index:\n%+v\n%+v", entries, entriesBefore)
	}
	if keys := archiveObjects(t, env.store); len(keys) != 0 {
		t.Fatalf("the fenced compactor left files %v", keys)
	}
	if rel, _ := env.redis.ReleasedSegments(t.Context(), topic.ID, 0, time.Now().Add(time.Hour), 100); len(rel) != 0 {
		t.Fatalf("the fenced compactor released %v", rel)
	}
	sameView(t, "after the fenced compaction", before, viewPartition(t, a, topic, 0, stamps))
}

// fencingIndex lets another holder take the compaction lease (as after an
// expiry) just before the swap.
type fencingIndex struct{ *coordinator.Redis }

func (f fencingIndex) SwapArchive(ctx context.Context, l coordinator.CompactionLease, old, repl []coordinator.IndexEntry) (coordinator.SwapResult, error) {
	if err := f.ReleaseCompactionLease(ctx, l); err != nil {
		return coordinator.SwapResult{}, err
	}
	other, err := f.AcquireCompactionLease(ctx, l.TopicID, l.Partition, "other", time.Minute)
	if err != nil {
		return coordinator.SwapResult{}, err
	}
	defer func() { _ = f.ReleaseCompactionLease(ctx, other) }()
	return f.Redis.SwapArchive(ctx, l, old, repl)
}

func TestCompactionLeftoversCollected(t *testing.T) {
	// What a compactor killed at each step leaves, and what the janitor
	// makes of it: a file written but never swapped in (killed after the
	// upload) goes after --orphan-grace; the segments a swap released
	// (killed after the swap) go after --unreferenced-grace; the archive
	// file in use stays, and reads stay the same throughout. Once
	// DeleteRecords removes its entries, the archive file goes too.
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic, err := env.index.CreateTopic(t.Context(), "leftovers", coordinator.TopicConfig{Partitions: 1, RetentionMs: -1})
	if err != nil {
		t.Fatal(err)
	}
	stamps := writeMixed(t, a, topic, 0, 8)
	before := viewPartition(t, a, topic, 0, stamps)
	var segs []string
	for info, err := range env.store.List(t.Context(), "segments/") {
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, info.Key)
	}
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Files != 1 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	inUse := entries[0].SegmentKey
	orphan, err := objectlog.ArchiveKey(objectlog.ArchiveKeyParts{
		ArchivePartition: objectlog.ArchivePartition{Topic: topic.Name, TopicID: topic.ID, Partition: 0}, FirstOffset: 3, LastOffset: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.PutIfAbsent(t.Context(), orphan, strings.NewReader("PAR1"), 4); err != nil {
		t.Fatal(err)
	}

	exists := func(key string) bool {
		_, err := env.store.Attributes(t.Context(), key)
		return err == nil
	}
	// Within the graces nothing goes.
	if _, err := a.RunJanitor(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if !exists(orphan) || !exists(inUse) || !exists(segs[0]) {
		t.Fatal("the janitor deleted something within its graces")
	}
	rep, err := a.RunJanitor(t.Context(), time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if exists(orphan) || !exists(inUse) {
		t.Fatalf("after the graces: orphan exists %v, file in use exists %v (%+v)", exists(orphan), exists(inUse), rep)
	}
	for _, k := range segs {
		if exists(k) {
			t.Fatalf("released segment %s not deleted (%+v)", k, rep)
		}
	}
	if rep.OrphansDeleted != 1 || rep.SegmentsDeleted != int64(len(segs))+1 {
		t.Fatalf("janitor report %+v, want %d segments and one orphan", rep, len(segs))
	}
	cold, _ := env.startAgent(t, manualCompaction)
	sameView(t, "after the janitor", before, viewPartition(t, cold, topic, 0, stamps))

	// DeleteRecords into the file keeps it (its row group is still partly
	// above the log start); past its end it releases the file.
	if _, err := env.redis.DeleteRecords(t.Context(), topic.ID, 0, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunJanitor(t.Context(), time.Now().Add(4*time.Hour)); err != nil || !exists(inUse) {
		t.Fatalf("file cut into by DeleteRecords: exists %v, %v", exists(inUse), err)
	}
	if _, err := env.redis.DeleteRecords(t.Context(), topic.ID, 0, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunJanitor(t.Context(), time.Now().Add(6*time.Hour)); err != nil || exists(inUse) {
		t.Fatalf("file released by DeleteRecords: exists %v, %v", exists(inUse), err)
	}
	if rel, _ := env.redis.ReleasedSegments(t.Context(), topic.ID, 0, time.Now().Add(time.Hour), 100); len(rel) != 0 {
		t.Fatalf("released set keeps %v", rel)
	}
}

func TestCompactorRunsOnItsInterval(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *Config) { c.CompactionInterval = 20 * time.Millisecond; c.JanitorInterval = 0 })
	topic := env.createTopic(t, 1)
	write(t, a, topic, 0, objectlog.NoProducer, values(1000, "a", "b")...)
	write(t, a, topic, 0, objectlog.NoProducer, values(2000, "c")...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _, err := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		// The loop may have taken the first write before the second came.
		archived := 0
		for _, e := range entries {
			if e.Archived() {
				archived += int(e.Records)
			}
		}
		if archived == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not compacted within 30 s: %+v", entries)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
	if err != nil || offsetsOf(resp.Records) != "0,1,2" || string(resp.Records[2].Value) != "c" {
		t.Fatalf("fetch after compaction: %v, %v", resp, err)
	}
}

// txnIndex stands in for the transaction index: a last stable offset and
// aborted transactions the test sets (the write path does not open
// transactions yet).
type txnIndex struct {
	*coordinator.Redis
	lso     int64
	aborted []coordinator.AbortedTxn
}

func (x txnIndex) PartitionState(ctx context.Context, id uuid.UUID, p int32) (coordinator.PartitionState, error) {
	st, err := x.Redis.PartitionState(ctx, id, p)
	st.LastStableOffset = min(st.LastStableOffset, x.lso)
	return st, err
}

func (x txnIndex) AbortedTransactions(context.Context, uuid.UUID, int32, int64, int64) ([]coordinator.AbortedTxn, error) {
	return x.aborted, nil
}

func TestCompactionLeavesOutAbortedAndOpenTransactions(t *testing.T) {
	t.Parallel()
	base := newReadEnv(t)
	env := &readEnv{store: base.store, redis: base.redis,
		index: txnIndex{Redis: base.redis, lso: 8, aborted: []coordinator.AbortedTxn{{ProducerID: 7, FirstOffset: 2, LastOffset: 5}}}}
	a, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 1)
	txn := objectlog.BatchSpec{ProducerID: 7, ProducerEpoch: 0, BaseSequence: 0, Transactional: true}
	marker := objectlog.BatchSpec{ProducerID: 7, ProducerEpoch: 0, BaseSequence: 3, Transactional: true, Control: true}
	write(t, a, topic, 0, objectlog.NoProducer, values(1000, "a", "b")...)    // 0-1
	write(t, a, topic, 0, txn, values(1000, "x", "y", "z")...)                // 2-4, aborted
	write(t, a, topic, 0, marker, values(1000, "abort")...)                   // 5
	write(t, a, topic, 0, objectlog.NoProducer, values(1000, "c", "d")...)    // 6-7
	write(t, a, topic, 0, objectlog.NoProducer, values(1000, "open", "e")...) // 8-9, past the LSO

	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Records != 4 {
		t.Fatalf("compaction: %+v, %v; want the 4 committed records below the LSO", rep, err)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if len(entries) != 2 || !entries[0].Archived() || entries[0].BaseOffset != 0 || entries[0].LastOffset() != 7 || entries[1].Archived() {
		t.Fatalf("entries %+v: want one archive entry for offsets 0-7, the entry at 8 hot", entries)
	}
	resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(resp.Records); got != "0,1,6,7,8,9" {
		t.Fatalf("offsets %s after compaction, want the aborted ones left out", got)
	}
}

func TestCompactionKeepsATrailingMarkerHot(t *testing.T) {
	// A log ending in a marker: archiving the marker's entry would leave
	// its offset a hole at the end of the log, which readers could not
	// move past; it stays hot.
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, manualCompaction)
	topic := env.createTopic(t, 1)
	control := objectlog.BatchSpec{ProducerID: 5, ProducerEpoch: 0, BaseSequence: -1, Transactional: true, Control: true}
	write(t, a, topic, 0, objectlog.NoProducer, values(1, "a", "b")...)
	write(t, a, topic, 0, control, values(1, "marker")...)
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Records != 2 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	entries, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if len(entries) != 2 || !entries[0].Archived() || entries[1].Archived() {
		t.Fatalf("entries %+v: want the records archived, the marker hot", entries)
	}
	for _, off := range []int64{0, 2} {
		resp, err := doFetch(t.Context(), a, fetchReq(topic, 0, off))
		if err != nil || resp.NextOffset != 3 {
			t.Fatalf("fetch from %d: %v, %v; want next offset 3, past the marker", off, resp, err)
		}
	}
}
