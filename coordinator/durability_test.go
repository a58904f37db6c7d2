package coordinator_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	s := &privateRedis{t: t, bin: testenv.RedisServerBin(t), dir: t.TempDir(), port: port}
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
