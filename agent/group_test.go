package agent_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/agent"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// tp names a partition in tests.
type tp struct {
	topic string
	p     int32
}

func tpsFromProto(in []*stratav1.TopicPartitions) map[tp]bool {
	out := map[tp]bool{}
	for _, t := range in {
		for _, p := range t.GetPartitions() {
			out[tp{t.GetTopic(), p}] = true
		}
	}
	return out
}

func tpsToProto(in map[tp]bool) []*stratav1.TopicPartitions {
	by := map[string][]int32{}
	for k := range in {
		by[k.topic] = append(by[k.topic], k.p)
	}
	var out []*stratav1.TopicPartitions
	for _, t := range slices.Sorted(maps.Keys(by)) {
		ps := by[t]
		slices.Sort(ps)
		out = append(out, &stratav1.TopicPartitions{Topic: t, Partitions: ps})
	}
	return out
}

// member plays a well-behaved group member: it owns exactly what the last
// answer assigned (dropping revoked partitions at once), and reports that.
type member struct {
	ta      *testAgent
	group   string
	id      string
	epoch   int32
	topics  []string
	regex   string
	session time.Duration
	owned   map[tp]bool
	pending map[tp]bool
	last    *stratav1.HeartbeatResponse
}

func newMember(ta *testAgent, group string, topics ...string) *member {
	return &member{ta: ta, group: group, topics: topics, session: 2 * time.Second, owned: map[tp]bool{}}
}

func (m *member) heartbeat(t testing.TB) error {
	t.Helper()
	res, err := m.ta.group.Heartbeat(t.Context(), connect.NewRequest(&stratav1.HeartbeatRequest{
		Group: m.group, MemberId: m.id, MemberEpoch: m.epoch, Topics: m.topics, TopicRegex: m.regex,
		Owned: tpsToProto(m.owned), SessionTimeout: durationpb.New(m.session),
	}))
	if err != nil {
		return err
	}
	m.last = res.Msg
	m.id, m.epoch = res.Msg.GetMemberId(), res.Msg.GetMemberEpoch()
	m.owned = tpsFromProto(res.Msg.GetAssigned())
	m.pending = tpsFromProto(res.Msg.GetPending())
	return nil
}

func (m *member) mustHeartbeat(t testing.TB) {
	t.Helper()
	if err := m.heartbeat(t); err != nil {
		t.Fatalf("heartbeat of %s: %v", m.id, err)
	}
}

func (m *member) commit(t testing.TB, topic string, p int32, offset int64) error {
	t.Helper()
	_, err := m.ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: m.group, MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*stratav1.PartitionOffset{{Topic: topic, Partition: p, Offset: offset}},
	}))
	return err
}

// checkExclusive fails if two members own one partition.
func checkExclusive(t testing.TB, members ...*member) {
	t.Helper()
	owner := map[tp]string{}
	for _, m := range members {
		for k := range m.owned {
			if o, ok := owner[k]; ok {
				t.Fatalf("partition %s/%d owned by %s and %s at once", k.topic, k.p, o, m.id)
			}
			owner[k] = m.id
		}
	}
}

func settle(t testing.TB, rounds int, members ...*member) {
	t.Helper()
	for range rounds {
		for _, m := range members {
			m.mustHeartbeat(t)
			checkExclusive(t, members...)
		}
	}
}

func wantCode(t testing.TB, err error, code connect.Code, contains string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not say %q", err, contains)
	}
}

func TestGroupJoinSplitAndHandOver(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "orders", 8, nil)
	a := newMember(ta, "g", "orders")
	a.mustHeartbeat(t)
	if len(a.owned) != 8 || a.epoch != 1 || a.id == "" {
		t.Fatalf("first member: id %q epoch %d owns %v, want all 8 partitions at epoch 1", a.id, a.epoch, a.owned)
	}
	if got := a.last.GetHeartbeatInterval().AsDuration(); got <= 0 || got > a.session/3 {
		t.Fatalf("heartbeat interval %s for a %s session", got, a.session)
	}

	b := newMember(ta, "g", "orders")
	b.mustHeartbeat(t)
	// b's half is still a's: pending until a lets go.
	if len(b.owned) != 0 || len(b.pending) != 4 {
		t.Fatalf("joiner owns %v, pending %v; want nothing owned and 4 pending", b.owned, b.pending)
	}
	checkExclusive(t, a, b)
	epochBefore := a.epoch
	a.mustHeartbeat(t) // a learns its new target: 4 partitions
	if len(a.owned) != 4 || a.epoch != epochBefore+1 {
		t.Fatalf("after rebalance a owns %d at epoch %d, want 4 at %d", len(a.owned), a.epoch, epochBefore+1)
	}
	// Until a reports the release, b still gets nothing.
	bOwnedBefore := len(b.owned)
	b.mustHeartbeat(t)
	if len(b.owned) != bOwnedBefore {
		t.Fatalf("b got partitions before a released them: %v", b.owned)
	}
	a.mustHeartbeat(t) // owned = the 4 it kept: the other 4 are released
	b.mustHeartbeat(t)
	if len(b.owned) != 4 || len(b.pending) != 0 {
		t.Fatalf("b owns %v pending %v after the release, want 4 and none", b.owned, b.pending)
	}
	checkExclusive(t, a, b)

	d, err := ta.group.DescribeGroup(t.Context(), connect.NewRequest(&stratav1.DescribeGroupRequest{Group: "g"}))
	if err != nil {
		t.Fatal(err)
	}
	if d.Msg.GetState() != "Stable" || len(d.Msg.GetMembers()) != 2 || len(d.Msg.GetPartitions()) != 8 {
		t.Fatalf("describe: %v", d.Msg)
	}

	// b leaves: a gets everything back on its next heartbeat.
	if _, err := ta.group.LeaveGroup(t.Context(), connect.NewRequest(&stratav1.LeaveGroupRequest{Group: "g", MemberId: b.id})); err != nil {
		t.Fatal(err)
	}
	a.mustHeartbeat(t)
	if len(a.owned) != 8 {
		t.Fatalf("after b left a owns %d, want 8", len(a.owned))
	}
	// b, gone, cannot heartbeat on at its old epoch.
	wantCode(t, b.heartbeat(t), connect.CodeFailedPrecondition, "rejoin")
}

func TestGroupRandomChurnKeepsPartitionsExclusive(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "a", 12, nil)
	ta.createTopic(t, "b", 5, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var members []*member
	for i := range 6 {
		topics := []string{"a", "b"}
		if i%3 == 2 {
			topics = []string{"a"}
		}
		members = append(members, newMember(ta, "churn", topics...))
	}
	active := members[:1]
	for step := range 300 {
		switch r := rng.IntN(20); {
		case r == 0 && len(active) < len(members):
			active = members[:len(active)+1] // one joins
		case r == 1 && len(active) > 1:
			gone := active[len(active)-1]
			if gone.id == "" { // never heartbeated: nothing to leave
				break
			}
			if _, err := ta.group.LeaveGroup(t.Context(), connect.NewRequest(&stratav1.LeaveGroupRequest{Group: "churn", MemberId: gone.id})); err != nil {
				t.Fatal(err)
			}
			gone.id, gone.epoch, gone.owned = "", 0, map[tp]bool{}
			active = active[:len(active)-1]
		default:
			m := active[rng.IntN(len(active))]
			if err := m.heartbeat(t); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		checkExclusive(t, members...)
	}
	settle(t, 4, active...)
	total := 0
	for _, m := range active {
		total += len(m.owned)
		if len(m.pending) != 0 {
			t.Fatalf("member %s still waits for %v after settling", m.id, m.pending)
		}
	}
	if total != 17 {
		t.Fatalf("members own %d partitions after settling, want all 17", total)
	}
}

func TestGroupSessionExpiryAndStaleMember(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 4, nil)
	a := newMember(ta, "g", "t")
	a.session = time.Second
	a.mustHeartbeat(t)
	if err := a.commit(t, "t", 0, 0); err != nil {
		t.Fatalf("owner's commit: %v", err)
	}
	b := newMember(ta, "g", "t")
	b.mustHeartbeat(t)
	if len(b.owned) != 0 {
		t.Fatalf("b got %v while a is alive and has not released", b.owned)
	}
	// Describe shows the hand-over under way: a still owns all 4, two of
	// them revoking; b waits for those two.
	d, err := ta.agentDescribe(t, "g")
	if err != nil {
		t.Fatal(err)
	}
	for _, dm := range d.GetMembers() {
		owned, revoking, pending := tpsFromProto(dm.GetAssigned()), tpsFromProto(dm.GetRevoking()), tpsFromProto(dm.GetPending())
		if dm.GetMemberId() == a.id && (len(owned) != 4 || len(revoking) != 2) || dm.GetMemberId() == b.id && (len(owned) != 0 || len(pending) != 2) {
			t.Fatalf("describe during the hand-over: %v", d)
		}
	}
	if d.GetState() != "Reconciling" {
		t.Fatalf("state %q during a hand-over, want Reconciling", d.GetState())
	}
	// a stops heartbeating; after its session its partitions move.
	time.Sleep(1200 * time.Millisecond)
	// Before anyone heartbeats, describe still lists every subscribed
	// partition, though a's are nobody's now.
	if d, err := ta.agentDescribe(t, "g"); err != nil || len(d.GetPartitions()) != 4 || len(d.GetMembers()) != 1 {
		t.Fatalf("describe after a expired: %v %v", d, err)
	}
	b.mustHeartbeat(t)
	if len(b.owned) != 4 {
		t.Fatalf("b owns %v after a's session expired, want all 4", b.owned)
	}
	// a comes back: it may neither commit nor heartbeat on.
	wantCode(t, a.commit(t, "t", 0, 1), connect.CodeFailedPrecondition, "rejoin")
	wantCode(t, a.heartbeat(t), connect.CodeFailedPrecondition, "rejoin with member_epoch 0")
	a.epoch, a.owned = 0, map[tp]bool{}
	a.mustHeartbeat(t)
	if len(a.owned) != 0 || len(a.pending) != 2 {
		t.Fatalf("rejoined a owns %v pending %v, want none and 2", a.owned, a.pending)
	}
	settle(t, 3, b, a)
	if len(a.owned) != 2 || len(b.owned) != 2 {
		t.Fatalf("after settling a owns %d, b %d; want 2 each", len(a.owned), len(b.owned))
	}
}

func TestGroupCommitFencing(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 2, nil)
	a := newMember(ta, "g", "t")
	a.mustHeartbeat(t)
	b := newMember(ta, "g", "t")
	b.mustHeartbeat(t)
	settle(t, 2, a, b)
	var mine, theirs int32 = 0, 1
	if !a.owned[tp{"t", 0}] {
		mine, theirs = 1, 0
	}
	if err := a.commit(t, "t", mine, 5); err != nil {
		t.Fatal(err)
	}
	wantCode(t, a.commit(t, "t", theirs, 5), connect.CodeFailedPrecondition, "does not own")
	a.epoch--
	wantCode(t, a.commit(t, "t", mine, 6), connect.CodeFailedPrecondition, "epoch")
	a.epoch++
	// From outside the group while members live: refused.
	_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: 0, Offset: 1}}}))
	wantCode(t, err, connect.CodeFailedPrecondition, "live members")
	got, err := ta.group.FetchOffsets(t.Context(), connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: "g"}))
	if err != nil {
		t.Fatal(err)
	}
	if o := got.Msg.GetOffsets(); len(o) != 1 || o[0].GetPartition() != mine || o[0].GetOffset() != 5 || o[0].GetCommitTime() == nil {
		t.Fatalf("committed offsets %v, want only partition %d at 5 with a commit time", o, mine)
	}
}

func TestGroupRegexPicksUpNewTopics(t *testing.T) {
	ta := startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = 50 * time.Millisecond })
	ta.createTopic(t, "orders.eu", 2, nil)
	ta.createTopic(t, "payments", 2, nil)
	m := newMember(ta, "g")
	m.topics, m.regex = nil, `orders\..*`
	m.mustHeartbeat(t)
	if len(m.owned) != 2 || !m.owned[tp{"orders.eu", 0}] {
		t.Fatalf("regex member owns %v, want orders.eu's 2 partitions", m.owned)
	}
	ta.createTopic(t, "orders.us", 3, nil)
	if _, err := ta.admin.CreatePartitions(t.Context(), connect.NewRequest(&stratav1.CreatePartitionsRequest{Name: "orders.eu", Total: 3})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	m.mustHeartbeat(t)
	if len(m.owned) != 6 || m.owned[tp{"payments", 0}] {
		t.Fatalf("after new topic and partitions the member owns %v, want orders.eu 0-2 and orders.us 0-2", m.owned)
	}
}

func TestGroupDescribeListResetDelete(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 2, nil)
	// Records are stamped in whole milliseconds (the produce time, rounded
	// down): a time with nanoseconds may be after a record of the same ms.
	before := time.Now().Truncate(time.Millisecond)
	for i := range 10 {
		produceOne(t, ta, "t", int32(i%2), fmt.Sprint(i))
	}
	m := newMember(ta, "g", "t")
	m.mustHeartbeat(t)
	if err := m.commit(t, "t", 0, 2); err != nil {
		t.Fatal(err)
	}
	d, err := ta.group.DescribeGroup(t.Context(), connect.NewRequest(&stratav1.DescribeGroupRequest{Group: "g"}))
	if err != nil {
		t.Fatal(err)
	}
	// Partition 0: committed 2 of 5 -> lag 3; partition 1: nothing
	// committed -> lag from the log start, 5.
	if d.Msg.GetTotalLag() != 8 || d.Msg.GetPartitions()[0].GetLag() != 3 || d.Msg.GetPartitions()[1].GetCommittedOffset() != -1 {
		t.Fatalf("describe: %v", d.Msg)
	}
	if d.Msg.GetPartitions()[0].GetOwner() != m.id {
		t.Fatalf("owner %q, want %q", d.Msg.GetPartitions()[0].GetOwner(), m.id)
	}
	l, err := ta.group.ListGroups(t.Context(), connect.NewRequest(&stratav1.ListGroupsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if gs := l.Msg.GetGroups(); len(gs) != 1 || gs[0].GetGroup() != "g" || gs[0].GetMembers() != 1 || gs[0].GetLag() != 8 || gs[0].GetState() != "Stable" {
		t.Fatalf("list: %v", gs)
	}

	reset := func(r *stratav1.ResetOffsetsRequest) ([]*stratav1.PartitionOffset, error) {
		r.Group = "g"
		res, err := ta.group.ResetOffsets(t.Context(), connect.NewRequest(r))
		if err != nil {
			return nil, err
		}
		return res.Msg.GetOffsets(), nil
	}
	_, err = reset(&stratav1.ResetOffsetsRequest{Topics: []string{"t"}, To: &stratav1.ResetOffsetsRequest_Latest{Latest: true}})
	wantCode(t, err, connect.CodeFailedPrecondition, "live members")
	_, err = ta.group.DeleteGroup(t.Context(), connect.NewRequest(&stratav1.DeleteGroupRequest{Group: "g"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "live members")

	if _, err := ta.group.LeaveGroup(t.Context(), connect.NewRequest(&stratav1.LeaveGroupRequest{Group: "g", MemberId: m.id})); err != nil {
		t.Fatal(err)
	}
	offs, err := reset(&stratav1.ResetOffsetsRequest{Topics: []string{"t"}, To: &stratav1.ResetOffsetsRequest_Latest{Latest: true}, DryRun: true})
	if err != nil || len(offs) != 2 || offs[0].GetOffset() != 5 {
		t.Fatalf("dry run: %v %v", offs, err)
	}
	if got, _ := ta.group.FetchOffsets(t.Context(), connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: "g"})); got.Msg.GetOffsets()[0].GetOffset() != 2 {
		t.Fatalf("a dry run stored offsets: %v", got.Msg.GetOffsets())
	}
	offs, err = reset(&stratav1.ResetOffsetsRequest{
		Partitions: []*stratav1.TopicPartitions{{Topic: "t", Partitions: []int32{1}}}, To: &stratav1.ResetOffsetsRequest_Offset{Offset: 99}})
	if err != nil || len(offs) != 1 || offs[0].GetOffset() != 5 {
		t.Fatalf("reset to 99 (clamped to 5): %v %v", offs, err)
	}
	offs, err = reset(&stratav1.ResetOffsetsRequest{Topics: []string{"t"}, To: &stratav1.ResetOffsetsRequest_Timestamp{Timestamp: timestamppb.New(before)}})
	if err != nil || len(offs) != 2 || offs[0].GetOffset() != 0 || offs[1].GetOffset() != 0 {
		t.Fatalf("reset to a time before every record: %v %v", offs, err)
	}
	offs, err = reset(&stratav1.ResetOffsetsRequest{Topics: []string{"t"}, To: &stratav1.ResetOffsetsRequest_Timestamp{Timestamp: timestamppb.New(time.Now().Add(time.Hour))}})
	if err != nil || offs[0].GetOffset() != 5 {
		t.Fatalf("reset to a time after every record: %v %v", offs, err)
	}
	_, err = reset(&stratav1.ResetOffsetsRequest{To: &stratav1.ResetOffsetsRequest_Earliest{Earliest: true}})
	wantCode(t, err, connect.CodeInvalidArgument, "name the topics")
	_, err = reset(&stratav1.ResetOffsetsRequest{Topics: []string{"nope"}, To: &stratav1.ResetOffsetsRequest_Earliest{Earliest: true}})
	wantCode(t, err, connect.CodeNotFound, "nope")

	if _, err := ta.group.DeleteGroup(t.Context(), connect.NewRequest(&stratav1.DeleteGroupRequest{Group: "g"})); err != nil {
		t.Fatal(err)
	}
	_, err = ta.group.DescribeGroup(t.Context(), connect.NewRequest(&stratav1.DescribeGroupRequest{Group: "g"}))
	wantCode(t, err, connect.CodeNotFound, "does not exist")
	_, err = ta.group.DeleteGroup(t.Context(), connect.NewRequest(&stratav1.DeleteGroupRequest{Group: "g"}))
	wantCode(t, err, connect.CodeNotFound, "does not exist")
}

func TestGroupBadInput(t *testing.T) {
	ta := startAgent(t, nil)
	hb := func(r *stratav1.HeartbeatRequest) error {
		_, err := ta.group.Heartbeat(t.Context(), connect.NewRequest(r))
		return err
	}
	cases := []struct {
		req  *stratav1.HeartbeatRequest
		want string
	}{
		{&stratav1.HeartbeatRequest{Topics: []string{"t"}}, "empty group name"},
		{&stratav1.HeartbeatRequest{Group: strings.Repeat("g", 250), Topics: []string{"t"}}, "limit is 249"},
		{&stratav1.HeartbeatRequest{Group: "g"}, "exactly one"},
		{&stratav1.HeartbeatRequest{Group: "g", Topics: []string{"t"}, TopicRegex: "t"}, "exactly one"},
		{&stratav1.HeartbeatRequest{Group: "g", TopicRegex: "("}, "topic_regex"},
		{&stratav1.HeartbeatRequest{Group: "g", Topics: []string{"t"}, MemberEpoch: 3}, "without a member id"},
		{&stratav1.HeartbeatRequest{Group: "g", Topics: []string{"t"}, MemberEpoch: -1}, "negative"},
		{&stratav1.HeartbeatRequest{Group: "g", Topics: []string{"t"}, Owned: []*stratav1.TopicPartitions{{Topic: "t", Partitions: []int32{-1}}}}, "negative"},
	}
	for _, c := range cases {
		wantCode(t, hb(c.req), connect.CodeInvalidArgument, c.want)
	}
	_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{Group: "g"}))
	wantCode(t, err, connect.CodeInvalidArgument, "no offsets")
	_, err = ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{Group: "g", Offsets: []*stratav1.PartitionOffset{
		{Topic: "t", Partition: 0, Offset: 1}, {Topic: "t", Partition: 0, Offset: 2}}}))
	wantCode(t, err, connect.CodeInvalidArgument, "twice")
	_, err = ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{Group: "g",
		Offsets: []*stratav1.PartitionOffset{{Topic: "nope", Partition: 7, Offset: 1}}}))
	wantCode(t, err, connect.CodeNotFound, "nope")
	// A session outside the agent's bounds is clamped, and the answer says so.
	ta.createTopic(t, "t", 1, nil)
	res, err := ta.group.Heartbeat(t.Context(), connect.NewRequest(&stratav1.HeartbeatRequest{Group: "clamp", Topics: []string{"t"}, SessionTimeout: durationpb.New(time.Millisecond)}))
	if err != nil || res.Msg.GetSessionTimeout().AsDuration() != time.Second {
		t.Fatalf("heartbeat with a 1ms session: %v %v, want it clamped to the 1s minimum", res, err)
	}
	_, err = ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{Group: "g", MemberId: "ghost", MemberEpoch: 1,
		Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: 0, Offset: 1}}}))
	wantCode(t, err, connect.CodeFailedPrecondition, "not in group")
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatal("not a connect error")
	}
}

// produceOne produces one record to a partition and waits for its ack.
func produceOne(t *testing.T, ta *testAgent, topic string, p int32, value string) {
	t.Helper()
	_, err := ta.producer.Produce(t.Context(), connect.NewRequest(&stratav1.ProduceRequest{Topics: []*stratav1.TopicRecords{
		{Topic: topic, Records: []*stratav1.Record{{Value: []byte(value), Partition: &p}}}}}))
	if err != nil {
		t.Fatal(err)
	}
}

func (ta *testAgent) agentDescribe(t testing.TB, group string) (*stratav1.DescribeGroupResponse, error) {
	res, err := ta.group.DescribeGroup(t.Context(), connect.NewRequest(&stratav1.DescribeGroupRequest{Group: group}))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (ta *testAgent) leave(t testing.TB, group, memberID string) error {
	_, err := ta.group.LeaveGroup(t.Context(), connect.NewRequest(&stratav1.LeaveGroupRequest{Group: group, MemberId: memberID}))
	return err
}
