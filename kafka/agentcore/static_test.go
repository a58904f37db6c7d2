package agentcore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// staticMember is a franz-go group member with a group.instance.id
// (KIP-345) whose process can be killed: its connections cut, so that it
// never leaves the group.
type staticMember struct {
	cl     *kgo.Client
	dialer *cuttable
	mu     sync.Mutex
	owned  []int32
	events int // assigned and revoked callbacks with partitions
}

func (m *staticMember) ownedNow() ([]int32, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(slices.Values(m.owned)), m.events
}

func startStaticMember(t *testing.T, ctx context.Context, seed, group, topic, instance string) *staticMember {
	t.Helper()
	m := &staticMember{dialer: &cuttable{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seed),
		kgo.Dialer(m.dialer.dial),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.InstanceID(instance),
		kgo.Balancers(kgo.RangeBalancer()),
		// Long enough that the killed member's session outlasts the test.
		kgo.SessionTimeout(30*time.Second),
		kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(a[topic]) > 0 {
				m.owned = append(m.owned, a[topic]...)
				m.events++
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(r[topic]) > 0 {
				m.owned = slices.DeleteFunc(m.owned, func(p int32) bool { return slices.Contains(r[topic], p) })
				m.events++
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		for ctx.Err() == nil && m.cl.Context().Err() == nil {
			m.cl.PollFetches(ctx)
		}
	}()
	t.Cleanup(cl.Close)
	return m
}

// A classic static follower killed and restarted with its instance id
// (issue 13): Kafka's coordinator (KIP-345) gives it its old assignment
// without a rebalance, though franz-go's metadata (ConsumerProtocol v3:
// owned partitions and generation) differs after the restart.
func TestClassicStaticFollowerRestartKeepsGeneration(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const topic, group = "static-restart", "static-restart-group"
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// i1 joins alone and leads; i2 then follows.
	i1 := startStaticMember(t, ctx, addrs[0], group, topic, "i1")
	if !waitLong(func() bool { ps, _ := i1.ownedNow(); return len(ps) == 4 }) {
		t.Fatal("i1 never got the 4 partitions")
	}
	i2 := startStaticMember(t, ctx, addrs[1], group, topic, "i2")
	settled := func(ms ...*staticMember) func() bool {
		return func() bool {
			n := 0
			_, gen := ms[0].cl.GroupMetadata()
			for _, m := range ms {
				ps, _ := m.ownedNow()
				_, g := m.cl.GroupMetadata()
				if len(ps) == 0 || g != gen || gen <= 0 {
					return false
				}
				n += len(ps)
			}
			return n == 4
		}
	}
	if !waitLong(settled(i1, i2)) {
		t.Fatal("the group never settled on i1 and i2")
	}
	// i3 joining makes i2 rejoin with what it owns and its generation in
	// its metadata, which the restarted i2 then lacks.
	i3 := startStaticMember(t, ctx, addrs[0], group, topic, "i3")
	if !waitLong(settled(i1, i2, i3)) {
		t.Fatal("the group never settled on i1, i2 and i3")
	}
	_, gen := i1.cl.GroupMetadata()
	p1, events1 := i1.ownedNow()
	p2, _ := i2.ownedNow()

	// Kill i2 (no LeaveGroup) and start it again as the same instance.
	i2.dialer.kill()
	back := startStaticMember(t, ctx, addrs[1], group, topic, "i2")
	if !waitLong(func() bool { ps, _ := back.ownedNow(); return len(ps) > 0 }) {
		t.Fatal("the restarted i2 never got partitions")
	}
	if got, _ := back.ownedNow(); !slices.Equal(got, p2) {
		t.Errorf("restarted i2 owns %v, want its old %v", got, p2)
	}
	if _, g := back.cl.GroupMetadata(); g != gen {
		t.Errorf("restarted i2 at generation %d, want %d (no rebalance)", g, gen)
	}
	// i1 saw nothing: no revoke, the same generation. Give a rebalance
	// the time to show (i1 heartbeats every 200ms).
	time.Sleep(time.Second)
	if got, events := i1.ownedNow(); !slices.Equal(got, p1) || events != events1 {
		t.Errorf("i1 owns %v after %d callbacks, want %v after %d: the group rebalanced", got, events, p1, events1)
	}
	if _, g := i1.cl.GroupMetadata(); g != gen {
		t.Errorf("i1 at generation %d, want %d", g, gen)
	}
}
