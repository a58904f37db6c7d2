package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

func openEmbedded(t *testing.T, dir string, opts coordinator.Options) *coordinator.Redis {
	t.Helper()
	r, err := coordinator.OpenEmbedded(dir, opts)
	if err != nil {
		t.Fatalf("OpenEmbedded(%q): %v", dir, err)
	}
	return r
}

// copySnapshot copies dir's snapshot file into a fresh directory, as a crash
// would leave it: what is in the file, and nothing else.
func copySnapshot(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, coordinator.SnapshotFile))
	if err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir()
	if err := os.WriteFile(filepath.Join(cp, coordinator.SnapshotFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestEmbeddedPersistence(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprint("async=", async), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dir := t.TempDir()
			opts := coordinator.Options{Prefix: "p:", EmbeddedAsyncWrites: async}
			r := openEmbedded(t, dir, opts)
			tp := createTopic(t, r, "t", 2)
			pid, _, err := r.InitProducer(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Real millisecond timestamps: the time index's scores must come
			// back exact.
			const now = 1_700_000_000_123
			for i := range int32(3) {
				commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 2*i), plain(10, 5, 1, now+int64(100*i))))
			}
			commit(t, r, segment(tp.ID, 1, plain(0, 10, 4, 50)))
			// Every value type and TTLs, as other parts of the index use them.
			c := r.Client()
			for _, err := range []error{
				c.Set(ctx, "p:string", "v\x00binary\xff", time.Hour).Err(),
				c.Set(ctx, "p:short", "v", 20*time.Millisecond).Err(),
				c.RPush(ctx, "p:list", "a", "b", "a").Err(),
				c.SAdd(ctx, "p:set", "x", "y").Err(),
				c.ZAdd(ctx, "p:zset", redisZ(1.5, "m1"), redisZ(-3, "m2")).Err(),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			before, stBefore, err := r.Lookup(ctx, tp.ID, 0, 0, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			time.Sleep(30 * time.Millisecond) // let p:short expire while down

			r2 := openEmbedded(t, dir, opts)
			d, err := r2.DescribeTopic(ctx, "t")
			if err != nil || d.ID != tp.ID || d.Config != tp.Config {
				t.Fatalf("topic after reopen: %+v, %v", d, err)
			}
			after, stAfter, err := r2.Lookup(ctx, tp.ID, 0, 0, 1<<20)
			if err != nil || fmt.Sprint(after) != fmt.Sprint(before) || stAfter != stBefore {
				t.Fatalf("partition 0 after reopen: %v %+v %v; before %v %+v", after, stAfter, err, before, stBefore)
			}
			if e, ok, err := r2.OffsetForTimestamp(ctx, tp.ID, 0, now+101); err != nil || !ok || e.BaseOffset != 6 {
				t.Fatalf("time index after reopen: %+v %v %v", e, ok, err)
			}
			// Producer state survived: a resend is still a duplicate.
			res := commit(t, r2, segment(tp.ID, 0, idem(0, 10, 2, pid, 0, 4)))[0].Batches[0]
			if !res.Duplicate || res.BaseOffset != 6 {
				t.Fatalf("resend after reopen: %+v", res)
			}
			if next, _, _ := r2.InitProducer(ctx); next != pid+1 {
				t.Fatalf("producer ids restarted: %d after %d", next, pid)
			}
			c2 := r2.Client()
			if v, err := c2.Get(ctx, "p:string").Result(); err != nil || v != "v\x00binary\xff" {
				t.Fatalf("string: %q %v", v, err)
			}
			if ttl := c2.PTTL(ctx, "p:string").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
				t.Fatalf("TTL after reopen: %v", ttl)
			}
			if n := c2.Exists(ctx, "p:short").Val(); n != 0 {
				t.Fatal("a key that expired while down came back")
			}
			if l := c2.LRange(ctx, "p:list", 0, -1).Val(); fmt.Sprint(l) != "[a b a]" {
				t.Fatalf("list: %v", l)
			}
			if s := c2.SMembers(ctx, "p:set").Val(); len(s) != 2 {
				t.Fatalf("set: %v", s)
			}
			if z := c2.ZRangeWithScores(ctx, "p:zset", 0, -1).Val(); len(z) != 2 || z[0].Score != -3 || z[1].Member != "m1" || z[1].Score != 1.5 {
				t.Fatalf("zset: %v", z)
			}
			_ = r2.Close()
		})
	}
}

// TestEmbeddedSyncWrites: a commit that returned is in the snapshot file
// already, without Close; concurrent commits share snapshots.
func TestEmbeddedSyncWrites(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r := openEmbedded(t, dir, coordinator.Options{})
	tp := createTopic(t, r, "t", 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5 {
				commit(t, r, segment(tp.ID, 0, plain(int64(g), 1, 1, int64(i))))
			}
		})
	}
	wg.Wait()
	// Whatever happens to r now, the file has all 40 commits.
	crashed := openEmbedded(t, copySnapshot(t, dir), coordinator.Options{})
	defer crashed.Close()
	st, err := crashed.PartitionState(ctx, tp.ID, 0)
	if err != nil || st.HighWatermark != 40 {
		t.Fatalf("snapshot holds %+v, %v; want all 40 acknowledged offsets", st, err)
	}
	// A topic deletion is a mutation too.
	if err := r.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	crashed2 := openEmbedded(t, copySnapshot(t, dir), coordinator.Options{})
	defer crashed2.Close()
	if _, err := crashed2.DescribeTopic(ctx, "t"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Fatalf("deleted topic in the snapshot: %v", err)
	}
	_ = r.Close()
}

// TestEmbeddedAsyncWrites: without synchronous writes a write still reaches
// the file within about the snapshot interval.
func TestEmbeddedAsyncWrites(t *testing.T) {
	dir := t.TempDir()
	r := openEmbedded(t, dir, coordinator.Options{EmbeddedAsyncWrites: true})
	defer r.Close()
	tp := createTopic(t, r, "t", 1)
	commit(t, r, segment(tp.ID, 0, plain(0, 1, 3, 1)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, coordinator.SnapshotFile)); err == nil {
			c := openEmbedded(t, copySnapshot(t, dir), coordinator.Options{})
			st, _ := c.PartitionState(t.Context(), tp.ID, 0)
			_ = c.Close()
			if st.HighWatermark == 3 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the commit did not reach the snapshot within 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEmbeddedCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, coordinator.SnapshotFile), []byte("not a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.OpenEmbedded(dir, coordinator.Options{}); err == nil || !strings.Contains(err.Error(), "not a version 1 snapshot") {
		t.Fatalf("OpenEmbedded on a corrupt snapshot: %v", err)
	}
}

// TestEmbeddedKill9 runs the embedded index in a child process that commits
// in a loop and prints every acknowledged offset, kills it with SIGKILL, and
// checks every acknowledged offset is in the reopened index.
func TestEmbeddedKill9(t *testing.T) {
	if dir := os.Getenv("STRATA_TEST_EMBEDDED_CHILD"); dir != "" {
		embeddedChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STRATA_TEST_EMBEDDED_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	buf := make([]byte, 0, 1<<16)
	chunk := make([]byte, 4096)
	deadline := time.Now().Add(30 * time.Second)
	for len(acked) < 100 && time.Now().Before(deadline) {
		n, err := out.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if i := strings.LastIndexByte(string(buf), '\n'); i >= 0 {
			acked = append(acked, strings.Fields(string(buf[:i]))...)
			buf = buf[i+1:]
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 100 {
		t.Fatalf("the child acknowledged only %d commits", len(acked))
	}
	id, err := uuid.Parse(acked[0])
	if err != nil {
		t.Fatalf("child's first line %q", acked[0])
	}
	r := openEmbedded(t, dir, coordinator.Options{})
	defer r.Close()
	st, err := r.PartitionState(t.Context(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range acked[1:] {
		off, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", s)
		}
		if off >= st.HighWatermark {
			t.Fatalf("acknowledged offset %d lost: high watermark after kill -9 is %d", off, st.HighWatermark)
		}
	}
	t.Logf("%d acknowledged commits, high watermark %d after kill -9", len(acked)-1, st.HighWatermark)
}

// embeddedChild commits forever, printing the topic id, then each
// acknowledged base offset.
func embeddedChild(dir string) {
	r, err := coordinator.OpenEmbedded(dir, coordinator.Options{})
	if err != nil {
		panic(err)
	}
	tp, err := r.CreateTopic(context.Background(), "t", coordinator.TopicConfig{})
	if err != nil {
		panic(err)
	}
	fmt.Println(tp.ID)
	for {
		res, err := r.CommitSegment(context.Background(), segment(tp.ID, 0, plain(0, 1, 1, 1)))
		if err != nil {
			panic(err)
		}
		fmt.Println(res[0].Batches[0].BaseOffset)
	}
}

// TestEmbeddedRemovesCrashedSnapshotTemps: the temporary file of a
// snapshot a kill -9 interrupted is removed when the index opens again,
// and the last whole snapshot is what it restores.
func TestEmbeddedRemovesCrashedSnapshotTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := openEmbedded(t, dir, coordinator.Options{})
	createTopic(t, r, "t", 1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, coordinator.SnapshotFile+".tmp-1234567")
	if err := os.WriteFile(tmp, []byte("half a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = openEmbedded(t, dir, coordinator.Options{})
	defer r.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the crashed snapshot's temporary file is still there: %v", err)
	}
	if _, err := r.DescribeTopic(t.Context(), "t"); err != nil {
		t.Fatalf("the topic of the last snapshot: %v", err)
	}
}

// TestEmbeddedSoftWritesSavedSoon: soft state (the janitor's lease and its
// garbage-collection bookkeeping) does not wait for a snapshot of its own,
// and still reaches the file within about the snapshot interval.
func TestEmbeddedSoftWritesSavedSoon(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	r := openEmbedded(t, dir, coordinator.Options{})
	defer r.Close()
	createTopic(t, r, "t", 1) // a durable write: the file exists from here
	if _, err := r.AcquireLease(ctx, "janitor", "agent-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		crashed := openEmbedded(t, copySnapshot(t, dir), coordinator.Options{})
		_, err := crashed.AcquireLease(ctx, "janitor", "agent-2", time.Hour)
		_ = crashed.Close()
		if errors.Is(err, coordinator.ErrConflict) {
			return // the lease is in the file
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease never reached the snapshot file")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEmbeddedTTLs: key TTLs follow the wall clock in ticks (embedded.go): a
// short TTL expires, and a long one moves, but never by more than the time
// that passed since the index opened.
func TestEmbeddedTTLs(t *testing.T) {
	ctx := t.Context()
	opened := time.Now()
	r := openEmbedded(t, "", coordinator.Options{Prefix: "p:"})
	defer r.Close()
	c := r.Client()
	if err := c.Set(ctx, "p:long", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "p:short", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.Exists(ctx, "p:short").Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a key with a 300 ms TTL still exists after 30 s (PTTL %v)", c.PTTL(ctx, "p:short").Val())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ttl, err := c.PTTL(ctx, "p:long").Result()
	passed := time.Since(opened)
	if err != nil {
		t.Fatal(err)
	}
	// Ticks forward by the time between them, from the open on: p:long,
	// set before p:short, lost at least what expired p:short, and at most
	// the time since the open.
	if lost := time.Hour - ttl; lost < 300*time.Millisecond || lost > passed+time.Millisecond {
		t.Fatalf("a 1 h TTL is %v %v after the open: it moved by %v", ttl, passed, lost)
	}
}
