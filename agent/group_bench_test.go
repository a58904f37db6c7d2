package agent_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

// Consumer-group benchmarks against the real redis-server (make bench, or
// scripts/test-services.sh go test -run '^$' -bench Group ./agent/):
// the index's cost of heartbeats, and how fast an assignment settles.

// countingHook counts the round trips and commands the index sends.
type countingHook struct{ trips, cmds atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.trips.Add(1)
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.trips.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// groupBenchAgent is an agent on the real redis-server whose index calls
// are counted; the store is in memory (groups never touch it).
func groupBenchAgent(b *testing.B) (*testAgent, *countingHook) {
	b.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b)})
	hook := &countingHook{}
	client.AddHook(hook)
	index, err := coordinator.NewRedis(client, coordinator.Options{Prefix: fmt.Sprintf("gbench-%d-%d:", time.Now().UnixNano()%1e9, benchSeq.Add(1))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = index.Close() })
	ta := startAgentOn(b, objectlog.NewMemBucket(), index, func(c *agent.Config) {
		c.GroupHeartbeatInterval = 100 * time.Millisecond
		c.TopicCacheTTL = time.Hour // the topic list is not what is measured
	})
	return ta, hook
}

// BenchmarkGroupHeartbeats measures what 100 members' steady heartbeats
// cost the index: round trips and commands per heartbeat, and the Redis
// operations per second at the default 5 s heartbeat interval.
func BenchmarkGroupHeartbeats(b *testing.B) {
	ta, hook := groupBenchAgent(b)
	ta.createTopic(b, "bench", 1000, nil)
	const n = 100
	members := make([]*member, n)
	for i := range members {
		members[i] = newMember(ta, "bench-group", "bench")
		members[i].session = time.Minute
	}
	settle(b, 3, members...)
	for _, m := range members {
		if len(m.owned) != 10 {
			b.Fatalf("member %s owns %d partitions after settling, want 10", m.id, len(m.owned))
		}
	}
	trips0, cmds0 := hook.trips.Load(), hook.cmds.Load()
	start := time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(b.N)*n; i = next.Add(1) - 1 {
				members[i%n].mustHeartbeat(b)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	elapsed := time.Since(start)
	beats := float64(b.N * n)
	trips := float64(hook.trips.Load()-trips0) / beats
	cmds := float64(hook.cmds.Load()-cmds0) / beats
	b.ReportMetric(trips, "round-trips/heartbeat")
	b.ReportMetric(cmds, "redis-cmds/heartbeat")
	b.ReportMetric(beats/elapsed.Seconds(), "heartbeats/s")
	b.ReportMetric(n/5.0*cmds, "redis-cmds/s@100members-5s")
}

// simMember is a member run the way package client runs one: heartbeats on
// the interval, at once after a release, and every 20 ms while partitions
// are pending.
type simMember struct {
	m    *member
	stop chan struct{}
	done chan struct{}
}

func startSim(b *testing.B, m *member, interval time.Duration) *simMember {
	s := &simMember{m: m, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			before := len(s.m.owned)
			if err := s.m.heartbeat(b); err != nil {
				b.Error(err)
				return
			}
			wait := interval
			if len(s.m.pending) > 0 || len(s.m.owned) < before {
				wait = 20 * time.Millisecond
			}
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
		}
	}()
	return s
}

func (s *simMember) halt() { close(s.stop); <-s.done }

// groupSettled reports whether the group has the given number of members
// and every partition of its topic is owned by exactly the members its
// target names, none pending or revoking.
func groupSettled(b *testing.B, ta *testAgent, group string, members, partitions int) bool {
	d, err := ta.agentDescribe(b, group)
	if err != nil {
		return false
	}
	if d.GetState() != "Stable" || len(d.GetMembers()) != members {
		return false
	}
	owned := 0
	for _, m := range d.GetMembers() {
		for _, t := range m.GetAssigned() {
			owned += len(t.GetPartitions())
		}
	}
	return owned == partitions
}

// BenchmarkGroupSettle measures the time from a member leaving, and from a
// member joining, to a settled assignment: every partition owned, nothing
// pending or revoking. 10 members, 120 partitions, heartbeats every 500 ms.
func BenchmarkGroupSettle(b *testing.B) {
	ta, _ := groupBenchAgent(b)
	ta.createTopic(b, "settle", 120, nil)
	const interval = 500 * time.Millisecond
	var leaveTotal, joinTotal time.Duration
	for i := range b.N {
		group := fmt.Sprintf("settle-%d", i)
		var sims []*simMember
		for range 10 {
			m := newMember(ta, group, "settle")
			m.session = 10 * time.Second
			sims = append(sims, startSim(b, m, interval))
		}
		waitSettled := func(members int) time.Duration {
			start := time.Now()
			for !groupSettled(b, ta, group, members, 120) {
				if time.Since(start) > 30*time.Second {
					b.Fatal("the group did not settle within 30 s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			return time.Since(start)
		}
		waitSettled(10)
		// One leaves.
		gone := sims[len(sims)-1]
		gone.halt()
		start := time.Now()
		if err := ta.leave(b, group, gone.m.id); err != nil {
			b.Fatal(err)
		}
		waitSettled(9)
		leaveTotal += time.Since(start)
		// One joins.
		start = time.Now()
		m := newMember(ta, group, "settle")
		m.session = 10 * time.Second
		sims = append(sims[:len(sims)-1], startSim(b, m, interval))
		waitSettled(10)
		joinTotal += time.Since(start)
		for _, s := range sims {
			s.halt()
		}
	}
	b.ReportMetric(float64(leaveTotal.Milliseconds())/float64(b.N), "ms-to-settle-after-leave")
	b.ReportMetric(float64(joinTotal.Milliseconds())/float64(b.N), "ms-to-settle-after-join")
}
