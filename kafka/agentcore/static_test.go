package agentcore

import (
	"context"
	"slices"
	"strings"
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

// A KIP-848 static member closed (issue 13): franz-go's Close sends epoch
// -2 (without the instance id), and the member keeps its partitions until
// its session ends, as Kafka's GroupMetadataManager keeps them: the other
// member gets none of them, the group still shows both, and the instance
// coming back takes its partitions over.
func TestConsumerGroupStaticMemberCloseKeepsPartitions(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const topic, group = "kip848-static-close", "kip848-static-close-group"
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	most := map[string]int{} // the most partitions each instance owned at once
	start := func(seed, instance string) (*kgo.Client, func() []int32) {
		var owned []int32
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(seed),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.InstanceID(instance),
			kgo.ClientID("client-"+instance),
			kgo.ServerSideBalancer(),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				owned = append(owned, a[topic]...)
				most[instance] = max(most[instance], len(owned))
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				owned = slices.DeleteFunc(owned, func(p int32) bool { return slices.Contains(r[topic], p) })
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				owned = slices.DeleteFunc(owned, func(p int32) bool { return slices.Contains(r[topic], p) })
			}),
		)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for ctx.Err() == nil && cl.Context().Err() == nil {
				cl.PollFetches(ctx)
			}
		}()
		return cl, func() []int32 {
			mu.Lock()
			defer mu.Unlock()
			return slices.Sorted(slices.Values(owned))
		}
	}
	c1, owned1 := start(addrs[0], "ksi1")
	defer c1.Close()
	c2, owned2 := start(addrs[1], "ksi2")
	if !waitLong(func() bool { return len(owned1()) == 2 && len(owned2()) == 2 }) {
		c2.Close()
		t.Fatalf("the group never settled: ksi1 %v, ksi2 %v", owned1(), owned2())
	}
	// ConsumerGroupDescribe shows what the members' heartbeats said
	// (issue 13), and Stable once both reconciled (their partitions
	// released and taken).
	var described kadm.DescribedConsumerGroup
	if !waitLong(func() bool {
		d, err := adm.DescribeConsumerGroups(ctx, group)
		described = d[group]
		return err == nil && described.Err == nil && described.State == "Stable"
	}) {
		t.Fatalf("ConsumerGroupDescribe never said Stable: %+v", described)
	}
	if len(described.Members) != 2 {
		t.Fatalf("ConsumerGroupDescribe: %+v, want 2 members", described)
	}
	for _, m := range described.Members {
		if m.InstanceID == nil || m.ClientID != "client-"+*m.InstanceID || !strings.HasPrefix(m.ClientHost, "/127.0.0.1") {
			t.Errorf("member %s: instance %v, client id %q, host %q; want ksi1/ksi2, client-<instance>, /127.0.0.1",
				m.MemberID, m.InstanceID, m.ClientID, m.ClientHost)
		}
	}
	held := owned2()
	mu.Lock()
	clear(most) // ksi1 may have owned all 4 before ksi2 joined
	mu.Unlock()
	c2.Close() // sends epoch -2
	members := func() int {
		d, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil || d[group].Err != nil {
			t.Fatalf("describe: %v %v", err, d[group].Err)
		}
		return len(d[group].Members)
	}
	// Several of ksi1's heartbeats: a member that lost its partitions
	// would have them moved to ksi1 by now.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := members(); n != 2 {
			t.Fatalf("after ksi2's static leave the group shows %d members, want 2 (ksi2 kept until its session ends)", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := owned1(); len(got) != 2 {
		t.Fatalf("ksi1 owns %v after ksi2's static leave, want its 2 partitions only", got)
	}
	c3, owned3 := start(addrs[1], "ksi2")
	defer c3.Close()
	if !waitLong(func() bool { return slices.Equal(owned3(), held) }) {
		t.Fatalf("ksi2 back owns %v, want its old %v", owned3(), held)
	}
	mu.Lock()
	defer mu.Unlock()
	if most["ksi1"] > 2 {
		t.Errorf("ksi1 owned up to %d partitions at once, want 2: ksi2's moved to it", most["ksi1"])
	}
}
