package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
)

// privateRedis is a redis-server of the test's own, restartable on one port
// and data directory, with every write fsynced before it is answered.
type privateRedis struct {
	t    *testing.T
	bin  string
	dir  string
	port string
	// extra arguments for redis-server (--replicaof host port).
	extra []string
	cmd   *exec.Cmd
}

func startPrivateRedis(t *testing.T, extra ...string) *privateRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	s := &privateRedis{t: t, bin: testenv.RedisServerBin(t), dir: t.TempDir(), port: port, extra: extra}
	s.start()
	t.Cleanup(func() {
		if s.cmd != nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
	return s
}

func (s *privateRedis) addr() string { return "127.0.0.1:" + s.port }

func (s *privateRedis) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--bind", "127.0.0.1", "--port", s.port, "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
		"--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"))
	s.cmd.Args = append(s.cmd.Args, s.extra...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// Ready means loaded: PING answers LOADING errors until the AOF is in.
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not start: %v (log in %s)", s.addr(), err, s.dir)
		}
	}
}

// kill9 kills the server without a chance to write anything more.
func (s *privateRedis) kill9() {
	s.t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		s.t.Fatal(err)
	}
	_ = s.cmd.Wait()
	s.cmd = nil
}

// shutdownNoSave stops the server the way an operator would, without a
// final RDB save: only the AOF carries the data.
func (s *privateRedis) shutdownNoSave() {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	_ = c.ShutdownNoSave(context.Background()).Err() // the connection drops: no reply
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestDurabilityAcrossRedisRestarts runs a commit storm against a private
// redis-server (appendfsync always) while the server is killed with SIGKILL
// and later shut down with SHUTDOWN NOSAVE, restarting it each time. Every
// commit that returned success must be in the index afterwards, with the
// offsets it was given, and the storm must resume after each restart.
func TestDurabilityAcrossRedisRestarts(t *testing.T) {
	srv := startPrivateRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: 1,
		DialTimeout: 200 * time.Millisecond, DialerRetries: 1, DialerRetryTimeout: 5 * time.Millisecond, MinRetryBackoff: 5 * time.Millisecond, MaxRetryBackoff: 20 * time.Millisecond})
	r := mustRedis(t, client, coordinator.Options{})
	tp := createTopic(t, r, "storm", 4)

	type ack struct {
		p        int32
		base     int64
		records  int32
		segKey   string
		attempts int
	}
	var (
		mu    sync.Mutex
		acks  []ack
		count atomic.Int64
		fails atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				sid := fmt.Sprintf("g%d-%d", g, i)
				p := int32((g + i) % 4)
				c := coordinator.SegmentCommit{SegmentID: sid, SegmentKey: "k/" + sid, Chunks: []coordinator.ChunkCommit{
					{TopicID: tp.ID, Partition: p, Batches: []coordinator.BatchCommit{plain(0, 10, int32(1+i%3), 1)}},
					{TopicID: tp.ID, Partition: (p + 1) % 4, Batches: []coordinator.BatchCommit{plain(10, 10, 1, 1)}},
				}}
				// Retry the same segment until it commits: an ack lost to a
				// crash comes back identical, never twice.
				for attempt := 1; ; attempt++ {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					res, err := r.CommitSegment(ctx, c)
					cancel()
					if err == nil {
						mu.Lock()
						for j, ch := range c.Chunks {
							acks = append(acks, ack{ch.Partition, res[j].Batches[0].BaseOffset, ch.Batches[0].Records, c.SegmentKey, attempt})
						}
						mu.Unlock()
						count.Add(1)
						break
					}
					fails.Add(1)
					if attempt > 2000 {
						t.Errorf("commit %s never went through: %v", sid, err)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for count.Load() < n {
			if time.Now().After(deadline) {
				stop.Store(true)
				t.Fatalf("the storm stalled at %d commits, waiting for %d", count.Load(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// down keeps the server down until commits have failed against it, so
	// the storm really crosses the outage rather than waiting it out in the
	// client's dial retries.
	down := func() {
		t.Helper()
		before := fails.Load()
		deadline := time.Now().Add(30 * time.Second)
		for fails.Load() < before+8 {
			if time.Now().After(deadline) {
				stop.Store(true)
				t.Fatalf("no commit failed while redis-server was down")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(200)
	srv.kill9()
	down()
	srv.start()
	afterKill := count.Load()
	waitFor(afterKill + 200)
	srv.shutdownNoSave()
	down()
	srv.start()
	afterShutdown := count.Load()
	waitFor(afterShutdown + 200)
	stop.Store(true)
	wg.Wait()

	ctx := t.Context()
	total := map[int32]int64{}
	retried := 0
	for _, a := range acks {
		es, _, err := r.Lookup(ctx, tp.ID, a.p, a.base, 1)
		if err != nil || len(es) == 0 {
			t.Fatalf("acknowledged %s partition %d offset %d: %v %v", a.segKey, a.p, a.base, es, err)
		}
		if e := es[0]; e.BaseOffset != a.base || e.Records != int64(a.records) || e.SegmentKey != a.segKey {
			t.Fatalf("acknowledged %s partition %d offset %d, found %+v", a.segKey, a.p, a.base, e)
		}
		total[a.p] += int64(a.records)
		if a.attempts > 1 {
			retried++
		}
	}
	// Nothing beyond the acknowledged commits: offsets stayed dense.
	for p := range int32(4) {
		st, err := r.PartitionState(ctx, tp.ID, p)
		if err != nil || st.HighWatermark != total[p] {
			t.Fatalf("partition %d: high watermark %d, %v; acknowledged records %d", p, st.HighWatermark, err, total[p])
		}
	}
	if retried == 0 {
		t.Fatal("no commit was retried across a restart: the restarts did not hit the storm")
	}
	t.Logf("%d commits acknowledged (%d after retries), %d before the kill, %d before the shutdown", count.Load(), retried, afterKill, afterShutdown)
}

// Durable before visible (DESIGN.md write path step 6): a reader never sees
// an offset before the commit that assigned it is durable, so a crash or a
// failover never takes back an offset someone saw.

// subscribe collects the watermark notifications of r.
func subscribe(t *testing.T, r *coordinator.Redis) <-chan coordinator.Watermark {
	t.Helper()
	notes := make(chan coordinator.Watermark, 1000)
	if err := r.SubscribeWatermarks(t.Context(), func(w coordinator.Watermark) { notes <- w }); err != nil {
		t.Fatal(err)
	}
	return notes
}

// wantNote checks that the next notification is partition p at hwm.
func wantNote(t *testing.T, notes <-chan coordinator.Watermark, topicID uuid.UUID, p int32, hwm int64) {
	t.Helper()
	select {
	case w := <-notes:
		if w.TopicID != topicID || w.Partition != p || w.HighWatermark != hwm {
			t.Fatalf("notification %+v, want partition %d at high watermark %d", w, p, hwm)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no notification of partition %d at high watermark %d", p, hwm)
	}
}

// commitWaited commits c with WAIT, retrying while the replica is too slow
// to answer in time: the machine may be loaded.
func commitWaited(t *testing.T, r *coordinator.Redis, c coordinator.SegmentCommit) []coordinator.ChunkResult {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := r.CommitSegment(t.Context(), c)
		if err == nil {
			return res
		}
		if !errors.Is(err, coordinator.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("commit %s with the replica running: %v", c.SegmentID, err)
		}
	}
}

// wantInvisible checks that readers of r see partition p end at hwm: its
// state, a lookup at hwm and a lookup by a timestamp (ts) only the invisible
// commit holds.
func wantInvisible(t *testing.T, r *coordinator.Redis, topicID uuid.UUID, p int32, hwm, ts int64) {
	t.Helper()
	ctx := t.Context()
	st, err := r.PartitionState(ctx, topicID, p)
	if err != nil || st.HighWatermark != hwm {
		t.Fatalf("partition %d state: high watermark %d, %v; want %d, the durable end", p, st.HighWatermark, err, hwm)
	}
	es, st, err := r.Lookup(ctx, topicID, p, hwm, 1<<20)
	if err != nil || len(es) != 0 || st.HighWatermark != hwm {
		t.Fatalf("lookup of partition %d at offset %d: %v, high watermark %d, %v; want nothing at %d", p, hwm, es, st.HighWatermark, err, hwm)
	}
	if hwm > 0 {
		es, _, err := r.Lookup(ctx, topicID, p, hwm-1, 1<<20)
		if err != nil || len(es) == 0 || es[len(es)-1].BaseOffset+es[len(es)-1].Records != hwm {
			t.Fatalf("lookup of partition %d at offset %d: %v, %v; want entries ending at %d", p, hwm-1, es, err, hwm)
		}
	}
	if e, found, err := r.OffsetForTimestamp(ctx, topicID, p, ts); err != nil || found {
		t.Fatalf("offset for timestamp %d on partition %d: %+v, %v, %v; want none", ts, p, e, found, err)
	}
}

// TestCommitWaitsForReplica commits to a real primary whose one replica is
// stopped (SIGSTOP): with wait_replicas=1 the commit fails UNAVAILABLE, its
// offsets stay invisible to readers and no notification names them, also
// when the retry runs on another connection. Once the replica runs again the
// retry returns the same offsets and makes them visible.
func TestCommitWaitsForReplica(t *testing.T) {
	rr := testenv.RedisReplica(t)
	ctx := t.Context()
	prefix := uniquePrefix(t)
	url := "redis://" + rr.PrimaryAddr + "/0?wait_replicas=1&wait_timeout=300ms"
	open := func() *coordinator.Redis {
		w, err := coordinator.Open(ctx, url, coordinator.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		if o := w.Options(); o.WaitReplicas != 1 || o.WaitTimeout != 300 {
			t.Fatalf("options from %s: wait replicas %d, timeout %d ms", url, o.WaitReplicas, o.WaitTimeout)
		}
		return w
	}
	w := open()
	// A reader, and a writer for markers, that do not wait.
	reader := mustRedis(t, redis.NewClient(&redis.Options{Addr: rr.PrimaryAddr}), coordinator.Options{Prefix: prefix})
	tp := createTopic(t, reader, "waited", 2)
	notes := subscribe(t, reader)

	wantOffsets(t, commitWaited(t, w, segment(tp.ID, 0, plain(0, 10, 2, 100)))[0], 0)
	wantNote(t, notes, tp.ID, 0, 2)

	replica, err := os.FindProcess(rr.ReplicaPID)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping the replica: %v", err)
	}
	stopped := true
	resume := func() {
		if stopped {
			if err := replica.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("continuing the replica: %v", err)
			}
			stopped = false
		}
	}
	t.Cleanup(resume)

	b := segment(tp.ID, 0, plain(0, 10, 3, 200))
	_, err = w.CommitSegment(ctx, b)
	if !errors.Is(err, coordinator.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("commit with the replica stopped: %v, want index unavailable: 0 of 1 replicas", err)
	}
	wantInvisible(t, reader, tp.ID, 0, 2, 200)
	// The retry on a connection that wrote nothing before must wait too.
	if _, err := open().CommitSegment(ctx, b); !errors.Is(err, coordinator.ErrUnavailable) {
		t.Fatalf("retry on a new connection with the replica stopped: %v, want index unavailable", err)
	}
	wantInvisible(t, reader, tp.ID, 0, 2, 200)
	// Nothing was published: a marker committed after the failures is the
	// next notification.
	wantOffsets(t, commit(t, reader, segment(tp.ID, 1, plain(0, 10, 1, 1)))[0], 0)
	wantNote(t, notes, tp.ID, 1, 1)

	resume()
	wantOffsets(t, commitWaited(t, w, b)[0], 2)
	if st, err := reader.PartitionState(ctx, tp.ID, 0); err != nil || st.HighWatermark != 5 {
		t.Fatalf("after the retry: high watermark %d, %v; want 5", st.HighWatermark, err)
	}
	wantNote(t, notes, tp.ID, 0, 5)
}

// TestFailoverNeverReassignsAVisibleOffset crashes the primary between a
// commit and its durability: the replica lost its link (so WAIT fails), the
// primary is killed and the replica promoted. The commit that never became
// durable was never visible, so the new primary giving its offsets to other
// records takes nothing back from any reader.
func TestFailoverNeverReassignsAVisibleOffset(t *testing.T) {
	primary := startPrivateRedis(t)
	replica := startPrivateRedis(t, "--replicaof", "127.0.0.1", primary.port)
	ctx := t.Context()
	rc := redis.NewClient(&redis.Options{Addr: replica.addr()})
	defer rc.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, _ := rc.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not connect: %s", info)
		}
	}
	prefix := uniquePrefix(t)
	w := mustRedis(t, redis.NewClient(&redis.Options{Addr: primary.addr(), MaxRetries: -1}),
		coordinator.Options{Prefix: prefix, WaitReplicas: 1, WaitTimeout: 300})
	reader := mustRedis(t, redis.NewClient(&redis.Options{Addr: primary.addr(), MaxRetries: -1}), coordinator.Options{Prefix: prefix})
	tp := createTopic(t, reader, "failover", 1)
	wantOffsets(t, commitWaited(t, w, segment(tp.ID, 0, plain(0, 10, 2, 100)))[0], 0)

	// The replica loses its primary (it follows a port nothing listens on,
	// keeping its data), and the next commit reaches the primary only.
	if err := rc.Do(ctx, "replicaof", "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := w.CommitSegment(ctx, segment(tp.ID, 0, plain(0, 10, 3, 200)))
	if !errors.Is(err, coordinator.ErrUnavailable) {
		t.Fatalf("commit without a replica: %v, want index unavailable", err)
	}
	wantInvisible(t, reader, tp.ID, 0, 2, 200)

	primary.kill9()
	if err := rc.Do(ctx, "replicaof", "no", "one").Err(); err != nil {
		t.Fatal(err)
	}
	promoted := mustRedis(t, redis.NewClient(&redis.Options{Addr: replica.addr()}), coordinator.Options{Prefix: prefix})
	wantInvisible(t, promoted, tp.ID, 0, 2, 200)
	// Offset 2 goes to another record: no reader saw it before.
	wantOffsets(t, commit(t, promoted, segment(tp.ID, 0, plain(0, 10, 1, 300)))[0], 2)
}

// TestEmbeddedCommitVisibleOnlyOnceSnapshotted crashes the embedded index
// between a commit and its snapshot (its durability point): the snapshot
// cannot be written, the commit fails UNAVAILABLE, and readers saw nothing
// of it. A new process on the last snapshot gives its offsets to other
// records, which takes nothing back from any reader.
func TestEmbeddedCommitVisibleOnlyOnceSnapshotted(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "index")
	r, err := coordinator.OpenEmbedded(dir, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() }) // its last snapshot fails too
	tp := createTopic(t, r, "snapshotted", 2)
	notes := subscribe(t, r)
	wantOffsets(t, commit(t, r, segment(tp.ID, 0, plain(0, 10, 2, 100)))[0], 0)
	wantNote(t, notes, tp.ID, 0, 2)

	// The data directory goes away: every snapshot fails from now on.
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = r.CommitSegment(ctx, segment(tp.ID, 0, plain(0, 10, 3, 200)))
	if !errors.Is(err, coordinator.ErrUnavailable) || !strings.Contains(err.Error(), "persisting the embedded index") {
		t.Fatalf("commit with no snapshot: %v, want index unavailable: persisting the embedded index", err)
	}
	wantInvisible(t, r, tp.ID, 0, 2, 200)
	// Nothing was published: a marker committed through the same server,
	// without waiting for a snapshot, is the next notification. (Not closed:
	// it shares the embedded server with r.)
	marker, err := coordinator.NewRedis(r.Client(), coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantOffsets(t, commit(t, marker, segment(tp.ID, 1, plain(0, 10, 1, 1)))[0], 0)
	wantNote(t, notes, tp.ID, 1, 1)

	// The crash: a new process restores the last snapshot.
	restarted, err := coordinator.OpenEmbedded(moved, coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restarted.Close() })
	wantInvisible(t, restarted, tp.ID, 0, 2, 200)
	wantOffsets(t, commit(t, restarted, segment(tp.ID, 0, plain(0, 10, 1, 300)))[0], 2)
}

// TestAckedWritesWaitForReplica: with wait_replicas=1, every acknowledged
// index write that must survive a failover waits for the replica, not only
// segment commits: group offset commits and deletes, group state saves,
// topic create/delete/config/partitions, producer ids and epochs, and
// DeleteRecords. With the replica stopped each fails UNAVAILABLE naming the
// replicas; member leases (soft state) do not wait. Once the replica runs
// again, the same calls succeed.
func TestAckedWritesWaitForReplica(t *testing.T) {
	rr := testenv.RedisReplica(t)
	ctx := t.Context()
	prefix := uniquePrefix(t)
	w, err := coordinator.Open(ctx, "redis://"+rr.PrimaryAddr+"/0?wait_replicas=1&wait_timeout=300ms", coordinator.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	reader := mustRedis(t, redis.NewClient(&redis.Options{Addr: rr.PrimaryAddr}), coordinator.Options{Prefix: prefix})
	tp := createTopic(t, reader, "acked", 1)
	commit(t, reader, segment(tp.ID, 0, plain(0, 10, 4, 100)))
	pid, _, err := reader.InitProducer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[coordinator.TopicPartition]coordinator.CommittedOffset{
		{Topic: "acked", Partition: 0}: {Offset: 3, TopicID: tp.ID}}

	calls := []struct {
		name string
		call func() error
	}{
		{"commit offsets", func() error { return w.CommitOffsets(ctx, "g", nil, offsets) }},
		{"save group", func() error { _, err := w.SaveGroup(ctx, "g", 0, []byte("state")); return err }},
		{"create topic", func() error {
			_, err := w.CreateTopic(ctx, "acked-2", coordinator.TopicConfig{Partitions: 1})
			return err
		}},
		{"update topic config", func() error {
			_, err := w.UpdateTopicConfig(ctx, "acked", map[string]string{coordinator.ConfigRetentionMs: "60000"})
			return err
		}},
		{"create partitions", func() error { _, err := w.CreatePartitions(ctx, "acked", 2); return err }},
		{"init producer", func() error { _, _, err := w.InitProducer(ctx); return err }},
		{"bump epoch", func() error { _, err := w.BumpEpoch(ctx, pid); return err }},
		{"init transactional producer", func() error { _, _, err := w.InitTransactionalProducer(ctx, "tx", time.Minute); return err }},
		{"delete records", func() error { _, err := w.DeleteRecords(ctx, tp.ID, 0, 1); return err }},
		{"delete offsets", func() error {
			return w.DeleteOffsets(ctx, "g", []coordinator.TopicPartition{{Topic: "acked", Partition: 0}})
		}},
		{"delete group", func() error { return w.DeleteGroup(ctx, "g") }},
		{"delete topic", func() error { return w.DeleteTopic(ctx, "acked-2") }},
	}
	resume := testenv.StopRedisReplica(t, rr)
	for _, c := range calls {
		err := c.call()
		if !errors.Is(err, coordinator.ErrUnavailable) || !strings.Contains(err.Error(), "only 0 of 1 replicas acknowledged") {
			t.Errorf("%s with the replica stopped: %v; want index unavailable: only 0 of 1 replicas acknowledged", c.name, err)
		}
	}
	// Soft state: a member's lease is renewed without waiting.
	if err := w.PutMember(ctx, "g", coordinator.GroupMember{ID: "m", Epoch: 1}, time.Minute); err != nil {
		t.Errorf("put member with the replica stopped: %v; want no wait", err)
	}

	resume()
	// With the replica running the waits succeed (retried while the loaded
	// machine's replica is slower than 300 ms).
	after := []struct {
		name string
		call func() error
	}{
		{"commit offsets", func() error { return w.CommitOffsets(ctx, "g", nil, offsets) }},
		{"create topic", func() error {
			_, err := w.CreateTopic(ctx, "acked-3", coordinator.TopicConfig{Partitions: 1})
			if errors.Is(err, coordinator.ErrAlreadyExists) {
				return nil // a retry after a slow WAIT
			}
			return err
		}},
		{"bump epoch", func() error { _, err := w.BumpEpoch(ctx, pid); return err }},
	}
	for _, c := range after {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			err := c.call()
			if err == nil {
				break
			}
			if !errors.Is(err, coordinator.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("%s with the replica running: %v", c.name, err)
			}
		}
	}
}

// TestFinishSegment: a commit that ran but whose WAIT failed stays
// invisible while the replica is stopped (FinishSegment fails too); once the
// replica runs, FinishSegment makes it durable and visible without another
// commit. It never commits a segment whose commit did not run.
func TestFinishSegment(t *testing.T) {
	rr := testenv.RedisReplica(t)
	ctx := t.Context()
	prefix := uniquePrefix(t)
	w, err := coordinator.Open(ctx, "redis://"+rr.PrimaryAddr+"/0?wait_replicas=1&wait_timeout=300ms", coordinator.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	reader := mustRedis(t, redis.NewClient(&redis.Options{Addr: rr.PrimaryAddr}), coordinator.Options{Prefix: prefix})
	tp := createTopic(t, reader, "finish", 2)
	notes := subscribe(t, reader)

	resume := testenv.StopRedisReplica(t, rr)
	b := segment(tp.ID, 0, plain(0, 10, 3, 200))
	if _, err := w.CommitSegment(ctx, b); !errors.Is(err, coordinator.ErrUnavailable) {
		t.Fatalf("commit with the replica stopped: %v, want index unavailable", err)
	}
	marks, err := w.FinishSegment(ctx, b)
	if !errors.Is(err, coordinator.ErrUnavailable) || !strings.Contains(err.Error(), "only 0 of 1 replicas acknowledged") || marks != nil {
		t.Fatalf("finish with the replica stopped: %v, %v; want index unavailable: only 0 of 1 replicas acknowledged", marks, err)
	}
	wantInvisible(t, reader, tp.ID, 0, 0, 200)
	resume()

	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		marks, err = w.FinishSegment(ctx, b)
		if err == nil {
			break
		}
		if !errors.Is(err, coordinator.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("finish with the replica running: %v", err)
		}
	}
	if want := (coordinator.Watermark{TopicID: tp.ID, Partition: 0, HighWatermark: 3}); len(marks) != 1 || marks[0] != want {
		t.Fatalf("finish made %+v visible, want %+v", marks, want)
	}
	wantNote(t, notes, tp.ID, 0, 3)
	if st, err := reader.PartitionState(ctx, tp.ID, 0); err != nil || st.HighWatermark != 3 {
		t.Fatalf("after finishing: high watermark %d, %v; want 3", st.HighWatermark, err)
	}
	// Already visible: nothing more to do.
	if marks, err := w.FinishSegment(ctx, b); err != nil || len(marks) != 0 {
		t.Fatalf("finishing again: %+v, %v; want nothing", marks, err)
	}
	// A segment that never committed stays uncommitted: its offsets go to
	// the next commit.
	never := segment(tp.ID, 1, plain(0, 10, 2, 300))
	if marks, err := w.FinishSegment(ctx, never); err != nil || len(marks) != 0 {
		t.Fatalf("finishing a segment that never committed: %+v, %v; want nothing", marks, err)
	}
	wantOffsets(t, commit(t, reader, segment(tp.ID, 1, plain(0, 10, 1, 1)))[0], 0)
}
