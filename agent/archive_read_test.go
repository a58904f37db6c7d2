package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// archivedPartition writes flushes of 200 records of about 300 bytes to a
// new one-partition topic and compacts them (smallRowGroups: row groups of
// some 256 KiB, many 16 KiB fetches each); it returns the topic and its
// archive entries.
func archivedPartition(t *testing.T, env *readEnv, a *Agent, flushes int) (coordinator.Topic, []coordinator.IndexEntry) {
	t.Helper()
	topic := env.createTopic(t, 1)
	for i := range flushes {
		recs := make([]objectlog.Record, 200)
		for j := range recs {
			recs[j] = objectlog.Record{Key: fmt.Appendf(nil, "k%d", j%7), Value: fmt.Appendf(nil, "%d-%d-%0280d", i, j, j),
				Timestamp: int64(1000 + i), Headers: []objectlog.Header{{Key: "h", Value: fmt.Appendf(nil, "%d", j)}}}
		}
		write(t, a, topic, 0, objectlog.NoProducer, recs...)
	}
	if rep, err := a.RunCompaction(t.Context(), time.Now()); err != nil || rep.Records != int64(flushes*200) {
		t.Fatalf("compaction %+v: %v", rep, err)
	}
	entries, _, err := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Archived() {
			t.Fatalf("hot entry left: %+v", e)
		}
	}
	return topic, entries
}

// smallRowGroups makes row groups of some 256 KiB (a quarter of the
// smallest file, archiveRowGroupBytes), several per partition here.
func smallRowGroups(c *Config) { manualCompaction(c); c.ArchiveFileBytes = 1 << 20 }

// A consumer catching up through the archive in fetches much smaller than a
// row group decodes each row group once (issue 10: it decoded the row group
// again for every fetch), and reads what it read before compaction.
func TestArchiveCatchUpDecodesEachRowGroupOnce(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, smallRowGroups)
	const flushes = 12
	topic, entries := archivedPartition(t, env, a, flushes)
	if len(entries) < 2 {
		t.Fatalf("%d archive entries, want several row groups", len(entries))
	}
	cold, _ := env.startAgent(t, manualCompaction)
	var got []*stratav1.ConsumedRecord
	fetches := 0
	for off := int64(0); off < flushes*200; fetches++ {
		req := fetchReq(topic, 0, off)
		req.MaxBytes = 16 << 10
		resp, err := doFetch(t.Context(), cold, req)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		if resp.NextOffset <= off {
			t.Fatalf("fetch at %d: next %d", off, resp.NextOffset)
		}
		got = append(got, resp.Records...)
		off = resp.NextOffset
	}
	if fetches < 3*len(entries) {
		t.Fatalf("%d fetches of %d row groups: want several per row group", fetches, len(entries))
	}
	if n := cold.archives.rebuilds.Load(); n != int64(len(entries)) {
		t.Fatalf("%d fetches decoded row groups %d times, want each of the %d once", fetches, n, len(entries))
	}
	for i, r := range got {
		want := fmt.Sprintf("%d-%d-%0280d", i/200, i%200, i%200)
		if r.Offset != int64(i) || string(r.Value) != want || string(r.Key) != fmt.Sprintf("k%d", i%200%7) ||
			len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i%200) {
			t.Fatalf("record %d: %v", i, r)
		}
	}
	if len(got) != flushes*200 {
		t.Fatalf("read %d records, want %d", len(got), flushes*200)
	}
}

// Readers of one row group at once wait for one decode; the whole-batch
// (Kafka) reads share the same cached batches and return equal bytes.
func TestArchiveConcurrentReadersDecodeOnce(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, smallRowGroups)
	topic, _ := archivedPartition(t, env, a, 2)
	cold, _ := env.startAgent(t, manualCompaction)
	const readers = 8
	out := make([][]byte, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			res, err := cold.ReadBatches(t.Context(), []BatchRead{{Topic: topic.Name, Offset: 100}}, 0, 0, 1<<20)
			if err == nil {
				err = res[0].Err
				out[i] = res[0].Batches
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || len(out[i]) == 0 || string(out[i]) != string(out[0]) {
			t.Fatalf("reader %d: %d bytes, %v; reader 0 %d bytes", i, len(out[i]), errs[i], len(out[0]))
		}
	}
	if n := cold.archives.rebuilds.Load(); n != 1 {
		t.Fatalf("%d concurrent readers of one row group decoded it %d times, want once", readers, n)
	}
}

// With a block cache too small for a row group's rebuilt batches, reads
// still return every record (decoding the row group again when needed) and
// the cache stays within its budget.
func TestArchiveReadsWithinCacheBudget(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, smallRowGroups)
	topic, entries := archivedPartition(t, env, a, 2)
	const budget = 64 << 10 // the row group's batches take some 120 KiB
	cold, _ := env.startAgent(t, func(c *Config) { manualCompaction(c); c.CacheBytes = budget; c.CacheBlockBytes = 16 << 10 })
	n := 0
	for off := int64(0); off < 400; {
		req := fetchReq(topic, 0, off)
		req.MaxBytes = 32 << 10
		resp, err := doFetch(t.Context(), cold, req)
		if err != nil {
			t.Fatalf("fetch at %d: %v", off, err)
		}
		for _, r := range resp.Records {
			if r.Offset != int64(n) {
				t.Fatalf("record %d at offset %d", n, r.Offset)
			}
			n++
		}
		off = resp.NextOffset
	}
	cold.cache.mu.Lock()
	used := cold.cache.used
	cold.cache.mu.Unlock()
	if used > budget {
		t.Fatalf("block cache holds %d bytes, budget %d", used, budget)
	}
	if cold.cache.cachedBatches(rowGroupCacheID(entries[0])) != nil {
		t.Fatalf("batches larger than the cache were kept")
	}
	if r := cold.archives.rebuilds.Load(); r < 2 {
		t.Fatalf("row group decoded %d times with no room to keep it, want once per fetch", r)
	}
}
