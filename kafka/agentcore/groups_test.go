package agentcore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
)

// Consumer groups with real franz-go clients against agents in process,
// sharing one in-memory index: the classic protocol's state machine in the
// agent core through the Kafka front-end, members talking to any agent.

// kafkaAgents starts n agents on one index, each a Kafka broker on a
// loopback port, and returns their addresses. The index is the real
// redis-server when the tests run under scripts/test-services.sh
// (STRATA_TEST_REDIS_ADDR, under a key prefix of the test's own), the
// embedded one otherwise.
func kafkaAgents(t testing.TB, n int) []string {
	t.Helper()
	addrs, _ := kafkaAgentsOf(t, n)
	return addrs
}

// kafkaAgentsOf is kafkaAgents, returning the agents too (in the order of
// their addresses).
func kafkaAgentsOf(t testing.TB, n int) ([]string, []*agent.Agent) {
	t.Helper()
	url, opts := "memory://", coordinator.Options{}
	if addr := os.Getenv("STRATA_TEST_REDIS_ADDR"); addr != "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		url, opts.Prefix = "redis://"+addr, fmt.Sprintf("agentcore-%x:", b)
	}
	index, err := coordinator.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	var addrs []string
	var agents []*agent.Agent
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
		addrs, agents = append(addrs, l.Addr().String()), append(agents, a)
	}
	return addrs, agents
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

// The group APIs at the wire level, request by request, with kmsg: version
// differences (MEMBER_ID_REQUIRED from JoinGroup v4, batched LeaveGroup v3+),
// ListGroups' filters, DescribeGroups of a group that does not exist, and the
// errors Kafka answers.
func TestClassicGroupWire(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, -1, nil, "wire"); err != nil {
		t.Fatal(err)
	}
	// kgo sends the highest version both sides have: an old client is one
	// capped at Kafka 2.0's (JoinGroup v3, LeaveGroup v2).
	old, err := kgo.NewClient(kgo.SeedBrokers(addrs[0]), kgo.MaxVersions(kversion.V2_0_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	join := func(version int16, group, member string, instance *string) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		c := cl
		if version < 4 {
			c = old
		}
		req.Group, req.MemberID, req.InstanceID, req.ProtocolType = group, member, instance, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 6000, 10000
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = []string{"wire"}
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// v3: no MEMBER_ID_REQUIRED, the first join is a member at once.
	r := join(3, "g-v3", "", nil)
	if r.ErrorCode != 0 || r.MemberID == "" || r.Generation != 1 || r.LeaderID != r.MemberID {
		t.Fatalf("JoinGroup v3: %+v", r)
	}
	// v4+: MEMBER_ID_REQUIRED with the id to use.
	r = join(9, "g-v9", "", nil)
	if r.ErrorCode != kerr.MemberIDRequired.Code || r.MemberID == "" {
		t.Fatalf("JoinGroup v9 first join: %+v, want MEMBER_ID_REQUIRED", r)
	}
	r = join(9, "g-v9", r.MemberID, nil)
	if r.ErrorCode != 0 || r.Generation != 1 || r.Protocol == nil || *r.Protocol != "range" || len(r.Members) != 1 {
		t.Fatalf("JoinGroup v9: %+v", r)
	}
	member := r.MemberID
	// A bad session timeout; an unknown member.
	bad := kmsg.NewPtrJoinGroupRequest()
	bad.Group, bad.ProtocolType, bad.SessionTimeoutMillis = "g-v9", "consumer", 10
	bad.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if resp, err := bad.RequestWith(ctx, cl); err != nil || resp.ErrorCode != kerr.InvalidSessionTimeout.Code {
		t.Fatalf("session timeout 10ms: %v %+v, want INVALID_SESSION_TIMEOUT", err, resp)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g-v9", "nobody", 1
	if resp, err := hb.RequestWith(ctx, cl); err != nil || resp.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat of nobody: %v %+v, want UNKNOWN_MEMBER_ID", err, resp)
	}
	hb.MemberID, hb.Generation = member, 7
	if resp, err := hb.RequestWith(ctx, cl); err != nil || resp.ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("heartbeat of generation 7: %v %+v, want ILLEGAL_GENERATION", err, resp)
	}
	// The leader's sync: its assignment back, as bytes.
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "g-v9", member, 1
	sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	ca := kmsg.NewConsumerMemberAssignment()
	cat := kmsg.NewConsumerMemberAssignmentTopic()
	cat.Topic, cat.Partitions = "wire", []int32{0, 1}
	ca.Topics = append(ca.Topics, cat)
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: ca.AppendTo(nil)}}
	sresp, err := sync.RequestWith(ctx, cl)
	if err != nil || sresp.ErrorCode != 0 || string(sresp.MemberAssignment) != string(ca.AppendTo(nil)) {
		t.Fatalf("SyncGroup: %v %+v", err, sresp)
	}
	// ListGroups with filters (v4 states, v5 types).
	lg := kmsg.NewPtrListGroupsRequest()
	lg.StatesFilter = []string{"stable"}
	lresp, err := lg.RequestWith(ctx, cl)
	if err != nil || len(lresp.Groups) != 1 || lresp.Groups[0].Group != "g-v9" || lresp.Groups[0].GroupType != "classic" || lresp.Groups[0].ProtocolType != "consumer" {
		t.Fatalf("ListGroups states=stable: %v %+v", err, lresp)
	}
	lg.StatesFilter, lg.TypesFilter = nil, []string{"consumer"}
	if lresp, err = lg.RequestWith(ctx, cl); err != nil || len(lresp.Groups) != 0 {
		t.Fatalf("ListGroups types=consumer: %v %+v, want none", err, lresp)
	}
	// DescribeGroups: a group that does not exist is Dead.
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g-v9", "no-such-group"}
	dresp, err := dg.RequestWith(ctx, cl)
	if err != nil || len(dresp.Groups) != 2 || dresp.Groups[0].State != "Stable" || len(dresp.Groups[0].Members) != 1 ||
		dresp.Groups[1].State != "Dead" || dresp.Groups[1].ErrorCode != 0 {
		t.Fatalf("DescribeGroups: %v %+v", err, dresp)
	}
	// OffsetDelete of a subscribed topic is refused per partition.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g-v9"
	odt := kmsg.NewOffsetDeleteRequestTopic()
	odt.Topic, odt.Partitions = "wire", []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}
	od.Topics = append(od.Topics, odt)
	if oresp, err := od.RequestWith(ctx, cl); err != nil || oresp.ErrorCode != 0 || oresp.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code {
		t.Fatalf("OffsetDelete of a subscribed topic: %v %+v, want GROUP_SUBSCRIBED_TO_TOPIC", err, oresp)
	}
	// OffsetFetch v1 of a partition with no commit: offset -1.
	of := kmsg.NewPtrOffsetFetchRequest()
	of.SetVersion(1)
	of.Group = "g-v9"
	oft := kmsg.NewOffsetFetchRequestTopic()
	oft.Topic, oft.Partitions = "wire", []int32{1}
	of.Topics = append(of.Topics, oft)
	if fresp, err := of.RequestWith(ctx, cl); err != nil || len(fresp.Topics) != 1 || fresp.Topics[0].Partitions[0].Offset != -1 {
		t.Fatalf("OffsetFetch v1: %v %+v", err, fresp)
	}
	// LeaveGroup v3+: a batch, each member answered.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Group = "g-v9"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}, {MemberID: "nobody"}}
	lvresp, err := lv.RequestWith(ctx, cl)
	if err != nil || lvresp.ErrorCode != 0 || len(lvresp.Members) != 2 || lvresp.Members[0].ErrorCode != 0 || lvresp.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("LeaveGroup v5: %v %+v", err, lvresp)
	}
	// Empty now: deletable; then gone.
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"g-v9", "g-v9"}
	delresp, err := del.RequestWith(ctx, cl)
	if err != nil || delresp.Groups[0].ErrorCode != 0 || delresp.Groups[1].ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("DeleteGroups: %v %+v", err, delresp)
	}
}
