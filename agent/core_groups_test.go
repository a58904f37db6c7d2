package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// The classic group protocol's state machine (core_groups.go), driven
// through the core's Go API as the Kafka front-end drives it.

func joinReq(group, member string, protocols ...string) agent.JoinRequest {
	req := agent.JoinRequest{
		Group: group, MemberID: member, ClientID: "c", ProtocolType: "consumer",
		SessionTimeout: 2 * time.Second, RebalanceTimeout: 5 * time.Second, RequireKnownMemberID: true,
	}
	for _, p := range protocols {
		req.Protocols = append(req.Protocols, agent.ClassicProtocol{Name: p, Metadata: []byte(p + "-meta")})
	}
	return req
}

// firstJoin joins a new member: MEMBER_ID_REQUIRED, then the join proper
// (which may wait for a rebalance: run it in a goroutine when others are in).
func firstJoin(t *testing.T, a *agent.Agent, req agent.JoinRequest) string {
	t.Helper()
	res, err := a.JoinClassicGroup(t.Context(), req)
	if !errors.Is(err, agent.ErrMemberIDRequired) || res.MemberID == "" {
		t.Fatalf("first join: %+v %v, want MEMBER_ID_REQUIRED with an id", res, err)
	}
	return res.MemberID
}

type joined struct {
	res agent.JoinResult
	err error
}

func joinAsync(ctx context.Context, a *agent.Agent, req agent.JoinRequest) <-chan joined {
	ch := make(chan joined, 1)
	go func() {
		res, err := a.JoinClassicGroup(ctx, req)
		ch <- joined{res, err}
	}()
	return ch
}

func TestClassicGroupStateMachine(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	a := ta.agent
	ctx := t.Context()
	ta.createTopic(t, "t", 4, nil)
	const g = "classic"

	// One member: MEMBER_ID_REQUIRED, then generation 1 at once, leader.
	m1 := firstJoin(t, a, joinReq(g, "", "range", "roundrobin"))
	req1 := joinReq(g, m1, "range", "roundrobin")
	r1, err := a.JoinClassicGroup(ctx, req1)
	if err != nil || r1.Generation != 1 || r1.LeaderID != m1 || r1.Protocol != "range" || len(r1.Members) != 1 {
		t.Fatalf("lone join: %+v %v", r1, err)
	}
	if _, _, _, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: m1, Generation: 1, Assignments: map[string][]byte{m1: []byte("all")}}); err != nil {
		t.Fatal(err)
	}
	// An unknown member id is refused, and a join of a member id never
	// handed out.
	if _, err := a.JoinClassicGroup(ctx, joinReq(g, "made-up", "range")); !errors.Is(err, agent.ErrUnknownMemberID) {
		t.Fatalf("join with a made-up id: %v, want UNKNOWN_MEMBER_ID", err)
	}
	// A member whose protocols meet nobody's is refused; so is another
	// protocol type.
	if _, err := a.JoinClassicGroup(ctx, joinReq(g, "", "sticky")); !errors.Is(err, agent.ErrInconsistentGroupProtocol) {
		t.Fatalf("join without a common protocol: %v, want INCONSISTENT_GROUP_PROTOCOL", err)
	}
	other := joinReq(g, "", "range")
	other.ProtocolType = "connect"
	if _, err := a.JoinClassicGroup(ctx, other); !errors.Is(err, agent.ErrInconsistentGroupProtocol) {
		t.Fatalf("join with another protocol type: %v, want INCONSISTENT_GROUP_PROTOCOL", err)
	}

	// A second member: it waits until the first rejoins, which its next
	// heartbeat tells it to. The vote picks roundrobin, the only protocol
	// both support.
	m2 := firstJoin(t, a, joinReq(g, "", "roundrobin"))
	j2 := joinAsync(ctx, a, joinReq(g, m2, "roundrobin"))
	waitCond(t, func() bool {
		return errors.Is(a.HeartbeatClassicGroup(ctx, g, m1, "", 1), agent.ErrRebalanceInProgress)
	}, "the first member's heartbeat to say REBALANCE_IN_PROGRESS")
	// The old generation still commits while the group rebalances (a
	// member commits what it consumed before rejoining, as in Kafka).
	commit := func(member string, gen int32, off int64) error {
		_, err := a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{Group: g, MemberID: member, Generation: gen,
			Offsets: map[coordinator.TopicPartition]coordinator.CommittedOffset{{Topic: "t", Partition: 0}: {Offset: off}}})
		return err
	}
	if err := commit(m1, 1, 5); err != nil {
		t.Fatalf("commit of generation 1 while rebalancing: %v", err)
	}
	r1, err = a.JoinClassicGroup(ctx, req1)
	if err != nil {
		t.Fatal(err)
	}
	r2 := <-j2
	if r2.err != nil || r1.Generation != 2 || r2.res.Generation != 2 || r1.Protocol != "roundrobin" {
		t.Fatalf("rejoin: %+v; second: %+v %v", r1, r2.res, r2.err)
	}
	if r1.LeaderID != m1 || r2.res.LeaderID != m1 || len(r1.Members) != 2 || len(r2.res.Members) != 0 {
		t.Fatalf("the leader stays the leader and alone gets the members: %+v / %+v", r1, r2.res)
	}
	for _, m := range r1.Members {
		if string(m.Metadata) != "roundrobin-meta" {
			t.Fatalf("member %s metadata %q, want the chosen protocol's", m.MemberID, m.Metadata)
		}
	}
	// Generation 1 is over: its commits are fenced; so is a commit before
	// the leader's assignment arrived.
	if err := commit(m1, 1, 6); !errors.Is(err, agent.ErrIllegalGeneration) {
		t.Fatalf("commit of generation 1: %v, want ILLEGAL_GENERATION", err)
	}
	if err := commit(m2, 2, 6); !errors.Is(err, agent.ErrRebalanceInProgress) {
		t.Fatalf("commit before the assignment: %v, want REBALANCE_IN_PROGRESS", err)
	}
	// The follower's sync waits for the leader's.
	type synced struct {
		assignment []byte
		err        error
	}
	s2 := make(chan synced, 1)
	go func() {
		as, _, _, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: m2, Generation: 2})
		s2 <- synced{as, err}
	}()
	select {
	case s := <-s2:
		t.Fatalf("the follower's sync returned before the leader's: %+v", s)
	case <-time.After(200 * time.Millisecond):
	}
	as1, _, proto, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: m1, Generation: 2,
		Assignments: map[string][]byte{m1: []byte("p0 p1"), m2: []byte("p2 p3")}})
	if err != nil || string(as1) != "p0 p1" || proto != "roundrobin" {
		t.Fatalf("leader sync: %q %q %v", as1, proto, err)
	}
	if s := <-s2; s.err != nil || string(s.assignment) != "p2 p3" {
		t.Fatalf("follower sync: %q %v", s.assignment, s.err)
	}
	if err := commit(m2, 2, 7); err != nil {
		t.Fatalf("commit at generation 2: %v", err)
	}
	// A simple commit is refused while the group has members; metadata
	// over the limit is refused per partition.
	if _, err := a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{Group: g, Generation: -1,
		Offsets: map[coordinator.TopicPartition]coordinator.CommittedOffset{{Topic: "t", Partition: 1}: {Offset: 1}}}); !errors.Is(err, agent.ErrUnknownMemberID) {
		t.Fatalf("simple commit to a group with members: %v, want UNKNOWN_MEMBER_ID", err)
	}
	errs, err := a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{Group: g, MemberID: m2, Generation: 2,
		Offsets: map[coordinator.TopicPartition]coordinator.CommittedOffset{
			{Topic: "t", Partition: 1}: {Offset: 1, Metadata: strings.Repeat("x", 5000)},
			{Topic: "t", Partition: 2}: {Offset: 2},
			{Topic: "t", Partition: 9}: {Offset: 2},
		}})
	if err != nil || !errors.Is(errs[coordinator.TopicPartition{Topic: "t", Partition: 1}], agent.ErrOffsetMetadataTooLarge) ||
		!errors.Is(errs[coordinator.TopicPartition{Topic: "t", Partition: 9}], agent.ErrUnknownTopicOrPartition) ||
		errs[coordinator.TopicPartition{Topic: "t", Partition: 2}] != nil {
		t.Fatalf("per-partition commit errors: %v %v", errs, err)
	}
	got, err := a.GroupOffsets(ctx, g, nil)
	if err != nil || got[coordinator.TopicPartition{Topic: "t", Partition: 0}].Offset != 7 || got[coordinator.TopicPartition{Topic: "t", Partition: 2}].Offset != 2 {
		t.Fatalf("committed: %+v %v", got, err)
	}
	if _, ok := got[coordinator.TopicPartition{Topic: "t", Partition: 1}]; ok {
		t.Fatal("a refused partition was committed")
	}

	// A group is classic or consumer: a native member cannot join it.
	_, err = ta.group.Heartbeat(ctx, connect.NewRequest(&stratav1.HeartbeatRequest{Group: g, Topics: []string{"t"}}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "classic group") {
		t.Fatalf("native heartbeat of a classic group: %v, want FAILED_PRECONDITION", err)
	}

	// The leader stops heartbeating: its session expires, the follower's
	// heartbeat says rebalance, and its rejoin completes a generation
	// without the leader, which it now leads.
	waitCond(t, func() bool {
		return errors.Is(a.HeartbeatClassicGroup(ctx, g, m2, "", 2), agent.ErrRebalanceInProgress)
	}, "the follower to learn that the silent leader expired")
	r2b, err := a.JoinClassicGroup(ctx, joinReq(g, m2, "roundrobin"))
	if err != nil || r2b.Generation != 3 || r2b.LeaderID != m2 || len(r2b.Members) != 1 {
		t.Fatalf("rejoin after the leader expired: %+v %v", r2b, err)
	}
	if err := a.HeartbeatClassicGroup(ctx, g, m1, "", 2); !errors.Is(err, agent.ErrUnknownMemberID) {
		t.Fatalf("the expired member's heartbeat: %v, want UNKNOWN_MEMBER_ID", err)
	}
	if err := a.DeleteKafkaGroup(ctx, g); !errors.Is(err, agent.ErrGroupNotEmpty) {
		t.Fatalf("delete a live group: %v, want NON_EMPTY", err)
	}
	// It leaves: the group is empty, at a new generation, and deletable.
	errsLeave, err := a.LeaveClassicGroup(ctx, g, []agent.MemberIdentity{{MemberID: m2}, {MemberID: "nobody"}})
	if err != nil || errsLeave[0] != nil || !errors.Is(errsLeave[1], agent.ErrUnknownMemberID) {
		t.Fatalf("leave: %v %v", errsLeave, err)
	}
	d, err := a.DescribeKafkaGroup(ctx, g)
	if err != nil || d.State != agent.GroupEmpty || len(d.Members) != 0 || d.Type != agent.GroupTypeClassic {
		t.Fatalf("described after leaving: %+v %v", d, err)
	}
	// An empty classic group may become a consumer group.
	if _, err := ta.group.Heartbeat(ctx, connect.NewRequest(&stratav1.HeartbeatRequest{Group: g, Topics: []string{"t"}, SessionTimeout: durationpb.New(2 * time.Second)})); err != nil {
		t.Fatalf("native heartbeat of an empty classic group: %v", err)
	}
	if _, err := a.JoinClassicGroup(ctx, joinReq(g, "", "range")); !errors.Is(err, agent.ErrInconsistentGroupProtocol) {
		t.Fatalf("classic join of a consumer group: %v, want INCONSISTENT_GROUP_PROTOCOL", err)
	}
	if d, err := a.DescribeKafkaGroup(ctx, g); err != nil || d.Type != agent.GroupTypeConsumer || d.State != agent.GroupStable || len(d.Members) != 1 {
		t.Fatalf("described as a consumer group: %+v %v", d, err)
	}
}

// Static members (KIP-345): the instance comes back as itself with a new
// member id, without a rebalance, and the old id is fenced.
func TestClassicGroupStaticMembership(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	a := ta.agent
	ctx := t.Context()
	const g = "static"
	// Sessions long enough that no member expires between the steps on a
	// loaded machine (the leader does not heartbeat here): every
	// rebalance below is one the test causes.
	join := func(member string) agent.JoinRequest {
		r := joinReq(g, member, "range")
		r.SessionTimeout = 30 * time.Second
		return r
	}
	static := func(member, instance string) agent.JoinRequest {
		r := join(member)
		r.InstanceID, r.RequireKnownMemberID = instance, false
		return r
	}
	// The leader is a dynamic member; the static one follows.
	lead := firstJoin(t, a, join(""))
	if _, err := a.JoinClassicGroup(ctx, join(lead)); err != nil {
		t.Fatal(err)
	}
	js := joinAsync(ctx, a, static("", "instance-1"))
	waitCond(t, func() bool {
		return errors.Is(a.HeartbeatClassicGroup(ctx, g, lead, "", 1), agent.ErrRebalanceInProgress)
	}, "rebalance")
	rl, err := a.JoinClassicGroup(ctx, join(lead))
	if err != nil {
		t.Fatal(err)
	}
	rs := <-js
	if rs.err != nil || rs.res.Generation != 2 || rl.Generation != 2 {
		t.Fatalf("static join: %+v %v", rs.res, rs.err)
	}
	old := rs.res.MemberID
	go func() {
		_, _, _, _ = a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: old, InstanceID: "instance-1", Generation: 2})
	}()
	if _, _, _, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: lead, Generation: 2,
		Assignments: map[string][]byte{lead: []byte("a"), old: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	// The instance restarts: a new member id, the same generation (no
	// rebalance), its assignment kept.
	back, err := a.JoinClassicGroup(ctx, static("", "instance-1"))
	if err != nil || back.MemberID == old || back.Generation != 2 {
		t.Fatalf("static rejoin: %+v %v", back, err)
	}
	as, _, _, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: back.MemberID, InstanceID: "instance-1", Generation: 2})
	if err != nil || string(as) != "b" {
		t.Fatalf("static member's assignment after its rejoin: %q %v", as, err)
	}
	if err := a.HeartbeatClassicGroup(ctx, g, old, "instance-1", 2); !errors.Is(err, agent.ErrFencedInstanceID) {
		t.Fatalf("the old member id's heartbeat: %v, want FENCED_INSTANCE_ID", err)
	}
	if err := a.HeartbeatClassicGroup(ctx, g, lead, "", 2); err != nil {
		t.Fatalf("the leader saw a rebalance for a static member's return: %v", err)
	}
	// Leaving by instance id.
	errs, err := a.LeaveClassicGroup(ctx, g, []agent.MemberIdentity{{InstanceID: "instance-1"}})
	if err != nil || errs[0] != nil {
		t.Fatalf("leave by instance id: %v %v", errs, err)
	}
	if err := a.HeartbeatClassicGroup(ctx, g, lead, "", 2); !errors.Is(err, agent.ErrRebalanceInProgress) {
		t.Fatalf("after the static member left: %v, want REBALANCE_IN_PROGRESS", err)
	}
}

func waitCond(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Members joining at once through two agents, while the leader's
// heartbeats (which expire members without a lease) run on a third: every
// join completes in one generation with everyone in it. A member written to
// the record before its lease would be dropped by such a heartbeat.
func TestClassicGroupConcurrentJoins(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	tb := startAgentOn(t, ta.store, ta.index, nil)
	agents := []*agent.Agent{ta.agent, tb.agent}
	ctx := t.Context()
	const g, n = "crowd", 6
	lead := firstJoin(t, ta.agent, joinReq(g, "", "range"))
	r, err := ta.agent.JoinClassicGroup(ctx, joinReq(g, lead, "range"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ta.agent.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: lead, Generation: r.Generation}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = firstJoin(t, agents[i%2], joinReq(g, "", "range"))
	}
	stop := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = tb.agent.HeartbeatClassicGroup(ctx, g, lead, "", r.Generation)
		}
	}()
	results := make([]<-chan joined, n)
	for i, id := range ids {
		results[i] = joinAsync(ctx, agents[i%2], joinReq(g, id, "range"))
	}
	// Every join is in (the group describes all members) before the
	// leader rejoins, so that the rebalance takes them all at once.
	waitCond(t, func() bool {
		d, err := ta.agent.DescribeKafkaGroup(ctx, g)
		return err == nil && d.State == agent.GroupPreparingRebalance && len(d.Members) == n+1
	}, "every member to be in the rebalance")
	close(stop)
	<-hbDone
	rl, err := ta.agent.JoinClassicGroup(ctx, joinReq(g, lead, "range"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		j := <-ch
		if j.err != nil {
			t.Fatalf("member %d: %v", i, j.err)
		}
		if j.res.Generation != rl.Generation {
			t.Fatalf("member %d joined generation %d, the leader %d", i, j.res.Generation, rl.Generation)
		}
	}
	if len(rl.Members) != n+1 {
		t.Fatalf("the leader sees %d members, want %d", len(rl.Members), n+1)
	}
}

// Issue 13: the members of a classic group were killed (no LeaveGroup);
// once their sessions are over the group is Empty at a new generation, as
// Kafka's heartbeat expiry leaves it, and an admin commit (generation -1,
// no member id: kafka-consumer-groups --reset-offsets, kadm.CommitOffsets)
// succeeds, also after the group was described.
func TestClassicGroupAdminCommitAfterExpiry(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	a := ta.agent
	ctx := t.Context()
	ta.createTopic(t, "t", 2, nil)
	const g = "expired"
	req := joinReq(g, "", "range")
	req.SessionTimeout = time.Second
	m := firstJoin(t, a, req)
	req.MemberID = m
	r, err := a.JoinClassicGroup(ctx, req)
	if err != nil || r.Generation != 1 {
		t.Fatalf("join: %+v %v", r, err)
	}
	if _, _, _, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: m, Generation: 1, Assignments: map[string][]byte{m: []byte("all")}}); err != nil {
		t.Fatal(err)
	}
	admin := func() error {
		_, err := a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{Group: g, Generation: -1,
			Offsets: map[coordinator.TopicPartition]coordinator.CommittedOffset{{Topic: "t", Partition: 0}: {Offset: 0}, {Topic: "t", Partition: 1}: {Offset: 0}}})
		return err
	}
	if err := admin(); !errors.Is(err, agent.ErrUnknownMemberID) {
		t.Fatalf("admin commit while the member is live: %v, want UNKNOWN_MEMBER_ID", err)
	}
	// The member is killed: it never heartbeats again.
	waitCond(t, func() bool {
		d, err := a.DescribeKafkaGroup(ctx, g)
		return err == nil && d.State == agent.GroupEmpty && len(d.Members) == 0
	}, "the killed member's session to expire")
	d, err := a.DescribeKafkaGroup(ctx, g)
	if err != nil || d.Generation != 2 {
		t.Fatalf("described after the expiry: %+v %v, want generation 2", d, err)
	}
	if err := admin(); err != nil {
		t.Fatalf("admin commit of an Empty group whose member expired: %v", err)
	}
	got, err := a.GroupOffsets(ctx, g, nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("committed offsets: %v %v", got, err)
	}
	// A commit of the dead member's generation stays refused.
	if _, err := a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{Group: g, MemberID: m, Generation: 1,
		Offsets: map[coordinator.TopicPartition]coordinator.CommittedOffset{{Topic: "t", Partition: 0}: {Offset: 3}}}); !errors.Is(err, agent.ErrUnknownMemberID) {
		t.Fatalf("commit of the expired member: %v, want UNKNOWN_MEMBER_ID", err)
	}
}

// Issue 13: Kafka's OffsetCommit stores a negative offset as given (admin
// resets commit -1 latest and -2 earliest: kafkajs's admin.resetOffsets,
// kadm), OffsetFetch returns it, and the native API reads it as no
// committed offset: not in FetchOffsets, no negative lag in DescribeGroup,
// and its own CommitOffsets still refuses one.
func TestKafkaNegativeOffsetCommit(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	a := ta.agent
	ctx := t.Context()
	ta.createTopic(t, "t", 3, nil)
	for range 3 {
		produceOne(t, ta, "t", 0, "v")
		produceOne(t, ta, "t", 1, "v")
	}
	const g = "reset"
	tp := func(p int32) coordinator.TopicPartition { return coordinator.TopicPartition{Topic: "t", Partition: p} }
	errs, err := a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{Group: g, Generation: -1,
		Offsets: map[coordinator.TopicPartition]coordinator.CommittedOffset{tp(0): {Offset: -2}, tp(1): {Offset: -1}, tp(2): {Offset: 1}}})
	if err != nil || len(errs) != 0 {
		t.Fatalf("admin commit of -2, -1 and 1: %v %v", errs, err)
	}
	got, err := a.GroupOffsets(ctx, g, nil)
	if err != nil || got[tp(0)].Offset != -2 || got[tp(1)].Offset != -1 || got[tp(2)].Offset != 1 {
		t.Fatalf("OffsetFetch's view: %v %v", got, err)
	}
	native := ta.fetchOffsets(t, g)
	if len(native) != 1 || native[0].GetPartition() != 2 || native[0].GetOffset() != 1 {
		t.Fatalf("the native FetchOffsets: %v, want only partition 2 at 1", native)
	}
	d, err := ta.agentDescribe(t, g)
	if err != nil {
		t.Fatal(err)
	}
	for _, pl := range d.GetPartitions() {
		want := map[int32]int64{0: 3, 1: 3, 2: 0}[pl.GetPartition()]
		if pl.GetLag() != want || pl.GetCommittedOffset() < -1 || (pl.GetPartition() < 2 && pl.GetCommittedOffset() != -1) {
			t.Errorf("described partition %d: %+v, want lag %d and no committed offset", pl.GetPartition(), pl, want)
		}
	}
	if d.GetTotalLag() != 6 {
		t.Errorf("total lag %d, want 6", d.GetTotalLag())
	}
	_, err = ta.group.CommitOffsets(ctx, connect.NewRequest(&stratav1.CommitOffsetsRequest{Group: g,
		Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: 0, Offset: -1}}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("native commit of -1: %v, want INVALID_ARGUMENT", err)
	}
}

// The native DescribeGroup (strata group describe) of a classic group whose
// member expired shows it Empty at the new generation too (issue 13).
func TestClassicGroupNativeDescribeAfterExpiry(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, nil)
	a := ta.agent
	ctx := t.Context()
	ta.createTopic(t, "t", 1, nil)
	const g = "expired-native"
	req := joinReq(g, "", "range")
	req.SessionTimeout = time.Second
	req.MemberID = firstJoin(t, a, req)
	if r, err := a.JoinClassicGroup(ctx, req); err != nil || r.Generation != 1 {
		t.Fatalf("join: %+v %v", r, err)
	}
	waitCond(t, func() bool {
		d, err := ta.agentDescribe(t, g)
		return err == nil && len(d.GetMembers()) == 0
	}, "the member's session to expire")
	d, err := ta.agentDescribe(t, g)
	if err != nil || d.GetState() != "Empty" || d.GetGroupEpoch() != 2 {
		t.Fatalf("described: %v %v, want Empty at generation 2", d, err)
	}
}
