package agentcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
)

// Consumer groups with real franz-go clients against agents in process,
// sharing one in-memory index: the classic protocol's state machine in the
// agent core through the Kafka front-end, members talking to any agent.

// kafkaAgents starts n agents on one index, each a Kafka broker on a
// loopback port, and returns their addresses.
func kafkaAgents(t testing.TB, n int) []string {
	t.Helper()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	var addrs []string
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := startAgent(t, index, fmt.Sprintf("agent-%d", i), l.Addr().String(), "")
		core, err := New(t.Context(), a, nil)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := kafka.NewServer(core, kafka.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		t.Cleanup(func() { srv.Close(); <-done })
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// cuttable is a dialer whose connections can all be cut at once, and whose
// dials then fail: a member process killed, as its agents see it.
type cuttable struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (c *cuttable) dial(ctx context.Context, network, host string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, errors.New("cut")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, host)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cuttable) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for _, conn := range c.conns {
		conn.Close()
	}
}

// ownership checks that no partition is owned by two live members at once,
// from the members' own assign and revoke callbacks.
type ownership struct {
	t     *testing.T
	mu    sync.Mutex
	owner map[int32]string
	dead  map[string]bool
}

func (o *ownership) assigned(member string, ps []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead[member] {
		return
	}
	for _, p := range ps {
		if cur, ok := o.owner[p]; ok && cur != member && !o.dead[cur] {
			o.t.Errorf("partition %d assigned to %s while %s owns it", p, member, cur)
		}
		o.owner[p] = member
	}
}

func (o *ownership) revoked(member string, ps []int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range ps {
		if o.owner[p] == member {
			delete(o.owner, p)
		}
	}
}

func (o *ownership) kill(member string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dead[member] = true
	for p, m := range o.owner {
		if m == member {
			delete(o.owner, p)
		}
	}
}

// owners is how many partitions each live member owns.
func (o *ownership) owners() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for _, m := range o.owner {
		out[m]++
	}
	return out
}

type groupMember struct {
	name     string
	cl       *kgo.Client
	dialer   *cuttable
	consumed *sync.Map // "p/offset" -> member
	stop     context.CancelFunc
	done     chan struct{}
}

func startMember(t *testing.T, ctx context.Context, name, seed, group, topic string, balancer kgo.GroupBalancer, own *ownership, consumed *sync.Map, records *atomic.Int64) *groupMember {
	t.Helper()
	d := &cuttable{}
	topicPs := func(m map[string][]int32) []int32 { return m[topic] }
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seed),
		kgo.Dialer(d.dial),
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(3*time.Second),
		kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.assigned(name, topicPs(m)) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.revoked(name, topicPs(m)) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { own.revoked(name, topicPs(m)) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	m := &groupMember{name: name, cl: cl, dialer: d, consumed: consumed, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for mctx.Err() == nil {
			fs := cl.PollFetches(mctx)
			fs.EachRecord(func(r *kgo.Record) {
				if _, dup := consumed.LoadOrStore(fmt.Sprintf("%d/%d", r.Partition, r.Offset), name); !dup {
					records.Add(1)
				}
			})
		}
	}()
	return m
}

// leave stops polling and closes the client, which leaves the group.
func (m *groupMember) leave() {
	m.stop()
	<-m.done
	m.cl.Close()
}

func TestClassicGroupWithKgo(t *testing.T) {
	t.Parallel()
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{
		{"range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(bal.name, func(t *testing.T) {
			t.Parallel()
			testClassicGroup(t, bal.b)
		})
	}
}

func testClassicGroup(t *testing.T, balancer kgo.GroupBalancer) {
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const partitions, perPartition = 12, 20
	topic, group := "orders", "billing"
	admCl, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs[1]), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(round int) {
		var rs []*kgo.Record
		for p := range int32(partitions) {
			for i := range perPartition {
				rs = append(rs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "r%d-p%d-%d", round, p, i)})
			}
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0)

	own := &ownership{t: t, owner: map[int32]string{}, dead: map[string]bool{}}
	var consumed sync.Map
	var records atomic.Int64
	var members []*groupMember
	for i := range 3 {
		// Members seed on different agents: the group's state is in the
		// index, so any agent serves any member.
		members = append(members, startMember(t, ctx, fmt.Sprintf("m%d", i), addrs[i%2], group, topic, balancer, own, &consumed, &records))
	}
	defer func() {
		for _, m := range members {
			m.stop()
			m.cl.Close()
		}
	}()
	settled := func(want int, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			o := own.owners()
			total := 0
			for _, n := range o {
				total += n
			}
			if len(o) == want && total == partitions {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: owners %v, want %d members owning %d partitions", what, o, want, partitions)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	settled(3, "three members")
	waitRecords := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for records.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("consumed %d of %d records", records.Load(), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRecords(partitions * perPartition)

	// One leaves (LeaveGroup): the other two take its partitions.
	members[0].leave()
	own.kill("m0")
	settled(2, "after m0 left")

	// One is killed: its connections cut, it never leaves. Its session
	// expires on the agents' index and the last member takes everything.
	members[1].dialer.kill()
	own.kill("m1")
	settled(1, "after m1 was killed")
	produce(1)
	waitRecords(2 * partitions * perPartition)

	// Committed offsets resume after a restart: the survivor commits and
	// leaves; a new member starts where it stopped.
	if err := members[2].cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	members[2].leave()
	own.kill("m2")
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(partitions) {
		if o, ok := committed.Lookup(topic, p); !ok || o.At != 2*perPartition {
			t.Fatalf("partition %d: committed %+v, want %d", p, o, 2*perPartition)
		}
	}
	// The group is empty now, described by Kafka's admin API.
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if d := described[group]; d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("described %+v, want Empty with no members", d)
	}
	produce(2)
	var fresh sync.Map
	var freshN atomic.Int64
	members = append(members, startMember(t, ctx, "m3", addrs[1], group, topic, balancer, own, &fresh, &freshN))
	deadline := time.Now().Add(60 * time.Second)
	for freshN.Load() < partitions*perPartition {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted member consumed %d of %d new records", freshN.Load(), partitions*perPartition)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fresh.Range(func(k, _ any) bool {
		var p, off int
		fmt.Sscanf(k.(string), "%d/%d", &p, &off)
		if off < 2*perPartition {
			t.Errorf("the restarted member read %s, before its group's committed offset %d", k, 2*perPartition)
		}
		return true
	})
	// While it is a member: stable, with it in the list; not deletable.
	described, err = adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if d := described[group]; d.State != "Stable" || len(d.Members) != 1 || d.Protocol == "" {
		t.Fatalf("described %+v, want Stable with one member", d)
	}
	if dg, err := adm.DeleteGroups(ctx, group); err != nil || !errors.Is(dg[group].Err, kerr.NonEmptyGroup) {
		t.Fatalf("DeleteGroups of a live group: %v %v, want NON_EMPTY_GROUP", err, dg[group].Err)
	}
}
