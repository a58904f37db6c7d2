package agent

// The compaction race and fencing tests of compactor_test.go on the real
// services: MinIO (create-only PUTs, listings) and redis-server (the Lua
// lease and swap scripts).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

// servicesEnv is a MinIO bucket and a redis-server index (own key prefix)
// for one test.
type servicesEnv struct {
	store objectlog.Bucket
	redis *coordinator.Redis
}

func newServicesEnv(t *testing.T) servicesEnv {
	t.Helper()
	s3 := testenv.MinIO(t)
	name := "agent-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	store, err := objectlog.NewMinioBucket(t.Context(), objectlog.MinioConfig{
		Bucket: name, Endpoint: s3.Endpoint, Insecure: true, CreateBucket: true,
		Credentials: &objectlog.StaticCredentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := coordinator.Open(t.Context(), "redis://"+testenv.RedisAddr(t)+"/0", coordinator.Options{Prefix: name + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return servicesEnv{store: store, redis: r}
}

// startAgent starts an agent on the env's store and the given index (the
// env's, or a wrapper of it), compaction and the janitor manual.
func (e servicesEnv) startAgent(t *testing.T, index Index) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.AdminListen = ""
	cfg.CacheBlockBytes = 4 << 10
	cfg.CacheBytes = 4 << 20
	cfg.MaxFetchWait = 5 * time.Second
	cfg.TopicCacheTTL = 100 * time.Millisecond
	manualCompaction(&cfg)
	a, err := New(t.Context(), cfg, e.store, index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}

// TestCompactionRaceOneWinsOnServices: two agents compact the same four
// partitions at the same moment, three rounds over, on MinIO and
// redis-server. Each round, each partition gets exactly one archive file,
// the index points at it, and reads through either agent are what they
// were before.
func TestCompactionRaceOneWinsOnServices(t *testing.T) {
	t.Parallel()
	env := newServicesEnv(t)
	a, b := env.startAgent(t, env.redis), env.startAgent(t, env.redis)
	const partitions = 4
	topic, err := env.redis.CreateTopic(t.Context(), "race", coordinator.TopicConfig{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	stamps := map[int32][]int64{}
	files := 0
	for round := range 3 {
		for p := range int32(partitions) {
			stamps[p] = append(stamps[p], writeMixed(t, a, topic, p, 4)...)
		}
		before := map[int32]readView{}
		for p := range int32(partitions) {
			before[p] = viewPartition(t, b, topic, p, stamps[p])
		}
		var wg sync.WaitGroup
		reps := make([]CompactionReport, 2)
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, ag := range []*Agent{a, b} {
			wg.Go(func() {
				<-start
				reps[i], errs[i] = ag.RunCompaction(t.Context(), time.Now())
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			// Only the lease holder uploads: no conflict on a key either.
			if err != nil {
				t.Fatalf("round %d: agent %d: %v", round, i, err)
			}
		}
		if got := reps[0].Partitions + reps[1].Partitions; got != partitions {
			t.Fatalf("round %d: reports %+v %+v: %d partitions compacted, want each of %d once", round, reps[0], reps[1], got, partitions)
		}
		t.Logf("round %d: reports %+v and %+v", round, reps[0], reps[1])
		files += reps[0].Files + reps[1].Files
		keys := archiveObjects(t, env.store)
		if len(keys) != files {
			t.Fatalf("round %d: archive objects %v, the reports say %d files", round, keys, files)
		}
		for p := range int32(partitions) {
			entries, _, err := env.redis.Lookup(t.Context(), topic.ID, p, 0, 1<<40)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range entries {
				// A trailing marker may stay hot (compactor.go), nothing else.
				if !e.Archived() && i < len(entries)-1 {
					t.Fatalf("round %d partition %d: a hot entry %+v before the end: %+v", round, p, e, entries)
				}
				if e.Archived() && !slices.Contains(keys, e.SegmentKey) {
					t.Fatalf("round %d partition %d: entry points at %s, not in the bucket %v", round, p, e.SegmentKey, keys)
				}
			}
			for _, ag := range []*Agent{a, b} {
				sameView(t, fmt.Sprintf("round %d partition %d after the race", round, p), before[p], viewPartition(t, ag, topic, p, stamps[p]))
			}
		}
	}
}

// TestCompactionFencedSwapChangesNothingOnServices: a compactor whose lease
// another holder took before its swap (fencingIndex) is refused by
// redis-server's swap script: the index's entries, the released set and
// reads stay as they were, and its file is gone from MinIO.
func TestCompactionFencedSwapChangesNothingOnServices(t *testing.T) {
	t.Parallel()
	env := newServicesEnv(t)
	a := env.startAgent(t, env.redis)
	topic, err := env.redis.CreateTopic(t.Context(), "fenced", coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	stamps := writeMixed(t, a, topic, 0, 5)
	before := viewPartition(t, a, topic, 0, stamps)
	entriesBefore, _, _ := env.redis.Lookup(t.Context(), topic.ID, 0, 0, 1<<40)

	fenced := env.startAgent(t, fencingIndex{env.redis})
	_, err = fenced.RunCompaction(t.Context(), time.Now())
	if !errors.Is(err, coordinator.ErrFenced) {
		t.Fatalf("compaction with a lost lease: %v, want ErrFenced", err)
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

// TestCompactionMergesSmallFilesOnServices: the small-file merge
// (archive_merge.go) on MinIO and redis-server: eight passes of one flush
// end in one archive file, reads stay the same on a cold agent, and the
// janitor deletes the seven replaced files from MinIO after its grace.
func TestCompactionMergesSmallFilesOnServices(t *testing.T) {
	t.Parallel()
	env := newServicesEnv(t)
	a := env.startAgent(t, env.redis)
	topic, err := env.redis.CreateTopic(t.Context(), "merges", coordinator.TopicConfig{Partitions: 1, RetentionMs: -1})
	if err != nil {
		t.Fatal(err)
	}
	var at []int64
	for i := 1; i <= 8; i++ {
		at = append(at, mergeFlush(t, a, topic, 0, i)...)
		rep, err := a.RunCompaction(t.Context(), time.Now())
		if err != nil || rep.Files != 1 {
			t.Fatalf("pass %d: %+v, %v", i, rep, err)
		}
	}
	files := indexedFiles(t, env.redis, topic, 0, true)
	if len(files) != 1 {
		t.Fatalf("after 8 passes: files %v; want one", files)
	}
	if keys := archiveObjects(t, env.store); len(keys) != 8 {
		t.Fatalf("before the janitor: %d archive objects %v; want 8", len(keys), keys)
	}
	before := viewPartition(t, a, topic, 0, at)
	if _, err := a.RunJanitor(t.Context(), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys := archiveObjects(t, env.store); !slices.Equal(keys, files) {
		t.Fatalf("after the janitor: archive objects %v; want %v", keys, files)
	}
	cold := env.startAgent(t, env.redis)
	sameMergedView(t, "cold agent after the janitor", before, viewPartition(t, cold, topic, 0, at))
}
