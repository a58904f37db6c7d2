package agentcore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratabroker/strata/agent"
)

// BenchmarkClassicGroupSettle measures the time from a franz-go member
// joining (then leaving) a classic group of two members over 12 partitions
// until the group is settled again: every partition owned, by the expected
// number of members, from the members' own callbacks. Members heartbeat
// every 250ms (kgo's default is 3s: the heartbeat that tells a member to
// rejoin bounds how soon a rebalance starts). Two agents in process over
// one index (redis-server under scripts/test-services.sh, else the embedded
// one); the members seed on different agents.
//
//	scripts/test-services.sh go test -run '^$' -bench ClassicGroupSettle -benchtime 10x ./kafka/agentcore/
func BenchmarkClassicGroupSettle(b *testing.B) {
	for _, bal := range []struct {
		name string
		b    func() kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer},
	} {
		b.Run(bal.name, func(b *testing.B) {
			benchSettle(b, kafkaAgents(b, 2), kgo.Balancers(bal.b()), kgo.HeartbeatInterval(250*time.Millisecond))
		})
	}
}

// BenchmarkConsumerGroupSettle is BenchmarkClassicGroupSettle through the
// consumer group protocol (KIP-848: franz-go's ServerSideBalancer, the
// agents' own assignor): two members over 12 partitions, a third joins,
// then leaves, timed until every partition is owned by exactly one of the
// expected members, from the members' own callbacks. The members heartbeat
// at the interval the agents hand out (ConsumerGroupHeartbeat's
// heartbeat_interval_ms): 250ms, the classic benchmark's, and the agents'
// default (group-heartbeat-interval, 5s). A partition moves in two
// heartbeats at least (its owner learns of the revocation and releases it;
// the new owner is given it), so the interval bounds the settle time. The
// index is redis-server under scripts/test-services.sh, else the embedded
// one.
//
//	scripts/test-services.sh go test -run '^$' -bench ConsumerGroupSettle -benchtime 10x ./kafka/agentcore/
func BenchmarkConsumerGroupSettle(b *testing.B) {
	for _, interval := range []time.Duration{250 * time.Millisecond, agent.DefaultConfig().GroupHeartbeatInterval} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			c := benchAgents(b, 2, backendDefault, func(cfg *agent.Config) { cfg.GroupHeartbeatInterval = interval })
			benchSettle(b, c.addrs, kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer())
		})
	}
}

// benchSettle times joins and leaves of a third member of a group of two
// on addrs (two agents), the members made with the options given.
func benchSettle(b *testing.B, addrs []string, opts ...kgo.Opt) {
	ctx := b.Context()
	const partitions = 12
	topic, group := "bench", "bench-group"
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]))
	if err != nil {
		b.Fatal(err)
	}
	defer admCl.Close()
	if _, err := kadm.NewClient(admCl).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	owner := map[int32]string{}
	member := func(name, seed string) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(seed),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.SessionTimeout(6 * time.Second),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					owner[p] = name
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m[topic] {
					if owner[p] == name {
						delete(owner, p)
					}
				}
			}),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for ctx.Err() == nil && !clientClosed(cl) {
				cl.PollFetches(ctx)
			}
		}()
		return cl
	}
	settled := func(members map[string]bool) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			ok := len(owner) == partitions
			seen := map[string]bool{}
			for _, o := range owner {
				seen[o] = true
				ok = ok && members[o]
			}
			ok = ok && len(seen) == len(members)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("the group did not settle with %v: %v", members, owner)
			}
			time.Sleep(time.Millisecond)
		}
	}
	base := map[string]bool{"m0": true, "m1": true}
	m0, m1 := member("m0", addrs[0]), member("m1", addrs[1])
	defer m0.Close()
	defer m1.Close()
	settled(base)
	var join, leave time.Duration
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("x%d", i)
		start := time.Now()
		x := member(name, addrs[i%2])
		settled(map[string]bool{"m0": true, "m1": true, name: true})
		join += time.Since(start)
		start = time.Now()
		x.Close() // LeaveGroup
		mu.Lock()
		for p, o := range owner {
			if o == name {
				delete(owner, p)
			}
		}
		mu.Unlock()
		settled(base)
		leave += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(join.Milliseconds())/float64(b.N), "ms/join-settled")
	b.ReportMetric(float64(leave.Milliseconds())/float64(b.N), "ms/leave-settled")
}

// clientClosed reports whether cl was closed: a closed client's poll
// returns at once with ErrClientClosed.
func clientClosed(cl *kgo.Client) bool {
	select {
	case <-cl.Context().Done():
		return true
	default:
		return false
	}
}
