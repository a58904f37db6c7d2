package agentcore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KIP-848's consumer protocol over the native server-side groups, through
// two agents: kmsg requests for the protocol's answers and errors, and
// franz-go's own KIP-848 consumers (ServerSideBalancer).

func TestConsumerGroupHeartbeatAndDescribe(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic, group = "kip848", "kip848-group"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	topicID := td[topic].ID

	heartbeat := func(member string, epoch int32, topics []string, owned map[[16]byte][]int32) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = group, member, epoch, topics
		req.RebalanceTimeoutMillis = 30000
		if owned != nil {
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			for id, ps := range owned {
				req.Topics = append(req.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: id, Partitions: ps})
			}
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	assigned := func(r *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
		var ps []int32
		if r.Assignment != nil {
			for _, at := range r.Assignment.Topics {
				if at.TopicID != topicID {
					t.Fatalf("assignment names topic id %x, want %x", at.TopicID, topicID)
				}
				ps = append(ps, at.Partitions...)
			}
		}
		return ps
	}

	// A v1 member names itself and joins with epoch 0: it gets every
	// partition.
	a := heartbeat("member-a", 0, []string{topic}, map[[16]byte][]int32{})
	if a.ErrorCode != 0 || a.MemberEpoch <= 0 || *a.MemberID != "member-a" || a.HeartbeatIntervalMillis <= 0 {
		t.Fatalf("join: %+v (error %v)", a, kerr.ErrorForCode(a.ErrorCode))
	}
	if got := assigned(a); len(got) != 4 {
		t.Fatalf("the only member was assigned %v, want the 4 partitions", got)
	}
	// A heartbeat that leaves out the subscription and the owned set
	// keeps both.
	again := heartbeat("member-a", a.MemberEpoch, nil, nil)
	if again.ErrorCode != 0 || len(assigned(again)) != 4 {
		t.Fatalf("heartbeat with nothing changed: %+v", again)
	}
	// A second member: member-a is asked to give up half.
	b := heartbeat("member-b", 0, []string{topic}, map[[16]byte][]int32{})
	if b.ErrorCode != 0 {
		t.Fatalf("second join: %v", kerr.ErrorForCode(b.ErrorCode))
	}
	// member-a still owns all 4, member-b waits for its share: the group
	// is Reconciling (KIP-848's state), not Stable.
	dreq := kmsg.NewPtrConsumerGroupDescribeRequest()
	dreq.Groups = []string{group}
	if dr, err := dreq.RequestWith(ctx, cl); err != nil || dr.Groups[0].State != "Reconciling" {
		t.Fatalf("describe while member-a still owns member-b's share: %+v %v, want Reconciling", dr, err)
	}
	var aParts []int32
	if !waitFor(func() bool {
		r := heartbeat("member-a", again.MemberEpoch, nil, map[[16]byte][]int32{topicID: aParts})
		if r.ErrorCode != 0 {
			t.Fatalf("member-a heartbeat: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		again, aParts = r, assigned(r)
		return len(aParts) == 2
	}) {
		t.Fatalf("member-a keeps %v, want 2 partitions", aParts)
	}
	var bParts []int32
	if !waitFor(func() bool {
		r := heartbeat("member-b", b.MemberEpoch, nil, map[[16]byte][]int32{topicID: bParts})
		b, bParts = r, assigned(r)
		return len(bParts) == 2
	}) {
		t.Fatalf("member-b got %v, want 2 partitions", bParts)
	}

	// Describe: both members, their assignments disjoint.
	describe := func(group string) kmsg.ConsumerGroupDescribeResponseGroup {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupDescribeRequest()
		req.Groups = []string{group}
		var resp *kmsg.ConsumerGroupDescribeResponse
		var err error
		// The client may not know the coordinating agent from its
		// first metadata yet: it asks again.
		if !waitFor(func() bool { resp, err = req.RequestWith(ctx, cl); return err == nil }) {
			t.Fatalf("ConsumerGroupDescribe %s: %v", group, err)
		}
		return resp.Groups[0]
	}
	g := describe(group)
	if g.ErrorCode != 0 || g.State != "Stable" || len(g.Members) != 2 {
		t.Fatalf("describe: %+v", g)
	}
	for _, m := range g.Members {
		if m.ClientID != "kgo" || !strings.HasPrefix(m.ClientHost, "/127.0.0.1") || m.InstanceID != nil {
			t.Errorf("member %s: client id %q, host %q, instance %v; want kgo, /127.0.0.1, null", m.MemberID, m.ClientID, m.ClientHost, m.InstanceID)
		}
	}
	owners := map[int32]string{}
	for _, m := range g.Members {
		for _, tp := range m.Assignment.TopicPartitions {
			if tp.Topic != topic || tp.TopicID != topicID {
				t.Fatalf("member %s: assignment topic %q id %x", m.MemberID, tp.Topic, tp.TopicID)
			}
			for _, p := range tp.Partitions {
				if owners[p] != "" {
					t.Fatalf("partition %d owned by %s and %s", p, owners[p], m.MemberID)
				}
				owners[p] = m.MemberID
			}
		}
	}
	if len(owners) != 4 {
		t.Fatalf("owners %v, want every partition", owners)
	}
	// Classic DescribeGroups (kadm, kafka-consumer-groups --describe)
	// shows each member's client id, host and owned partitions too, as
	// the consumer protocol's assignment (issue 13).
	var dg kadm.DescribedGroups
	if !waitFor(func() bool {
		dg, err = kadm.NewClient(cl).DescribeGroups(ctx, group)
		return err == nil && dg[group].Err == nil
	}) {
		t.Fatalf("DescribeGroups: %v %v", err, dg[group].Err)
	}
	cg := dg[group]
	if cg.ProtocolType != "consumer" || cg.State != "Stable" || len(cg.Members) != 2 {
		t.Fatalf("DescribeGroups: %+v", cg)
	}
	for _, m := range cg.Members {
		if m.ClientID != "kgo" || m.ClientHost == "" {
			t.Errorf("member %s: client id %q host %q, want kgo and the member's address", m.MemberID, m.ClientID, m.ClientHost)
		}
		if meta, ok := m.Join.AsConsumer(); !ok || len(meta.Topics) != 1 || meta.Topics[0] != topic {
			t.Errorf("member %s: subscription %+v", m.MemberID, m.Join)
		}
		ca, ok := m.Assigned.AsConsumer()
		if !ok || len(ca.Topics) != 1 || ca.Topics[0].Topic != topic || len(ca.Topics[0].Partitions) != 2 {
			t.Fatalf("member %s: assignment %+v, want 2 partitions of %s", m.MemberID, m.Assigned, topic)
		}
		for _, p := range ca.Topics[0].Partitions {
			if owners[p] != m.MemberID {
				t.Errorf("DescribeGroups gives partition %d to %s, ConsumerGroupDescribe to %s", p, m.MemberID, owners[p])
			}
		}
	}
	if code := describe("no-such-group").ErrorCode; code != kerr.GroupIDNotFound.Code {
		t.Fatalf("describe of a missing group: %v, want GROUP_ID_NOT_FOUND", kerr.ErrorForCode(code))
	}

	// Errors: an epoch the member was never given; a member not in the
	// group.
	if r := heartbeat("member-a", again.MemberEpoch+10, nil, nil); r.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("epoch ahead: %v, want FENCED_MEMBER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := heartbeat("made-up", 3, []string{topic}, nil); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(r.ErrorCode))
	}
	// A keepalive (nothing changed, so no subscription) of a member the
	// group does not hold is unknown too, as Kafka answers: the member
	// rejoins. A join must subscribe.
	if r := heartbeat("made-up", 3, nil, nil); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("keepalive of an unknown member: %v, want UNKNOWN_MEMBER_ID", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := heartbeat("made-up", 0, nil, nil); r.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("join without a subscription: %v, want INVALID_REQUEST", kerr.ErrorForCode(r.ErrorCode))
	}
	// Leaving (-1): member-b then gets everything.
	if r := heartbeat("member-a", -1, nil, nil); r.ErrorCode != 0 || r.MemberEpoch != -1 {
		t.Fatalf("leave: %+v", r)
	}
	if !waitFor(func() bool {
		r := heartbeat("member-b", b.MemberEpoch, nil, map[[16]byte][]int32{topicID: bParts})
		b, bParts = r, assigned(r)
		return len(bParts) == 4
	}) {
		t.Fatalf("after member-a left, member-b has %v", bParts)
	}
}

// franz-go's KIP-848 consumers (ServerSideBalancer) share a topic through
// two agents and consume every record.
func TestKgoServerSideBalancer(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	const topic, group, partitions, perPartition = "kip848-kgo", "kip848-kgo-group", 6, 10
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p := range int32(partitions) {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	for i, seed := range addrs {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.ClientID(fmt.Sprintf("member-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					mu.Lock()
					seen[string(r.Value)] = true
					mu.Unlock()
				})
			}
		}()
		t.Cleanup(func() { cancel(); <-done; cl.Close() })
	}
	if !waitLong(func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == partitions*perPartition
	}) {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("consumed %d distinct records, want %d", len(seen), partitions*perPartition)
	}
	// The group is a consumer group with two members, through KIP-848.
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{group}
	if !waitLong(func() bool {
		resp, err := req.RequestWith(ctx, prod)
		return err == nil && resp.Groups[0].ErrorCode == 0 && len(resp.Groups[0].Members) == 2
	}) {
		t.Fatalf("ConsumerGroupDescribe never showed the two kgo members")
	}
}

// waitLong is waitFor with a deadline for whole client groups settling on a
// loaded machine.
func waitLong(cond func() bool) bool {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// KIP-848 static membership (issue 13), as Kafka's GroupMetadataManager: a
// second member with a live member's instance id is UNRELEASED_INSTANCE_ID;
// once the holder leaves with epoch -2, a new member id with the instance id
// takes its place and its assignment, and the old member id is fenced.
func TestConsumerGroupStaticMembers(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic, group = "kip848-static", "kip848-static-group"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	heartbeat := func(member, instance string, epoch int32, topics []string) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = group, member, epoch, topics
		req.InstanceID = kmsg.StringPtr(instance)
		req.RebalanceTimeoutMillis = 30000
		if epoch == 0 {
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}
		var resp *kmsg.ConsumerGroupHeartbeatResponse
		if !waitFor(func() bool {
			resp, err = req.RequestWith(ctx, cl)
			return err == nil && resp.ErrorCode != kerr.NotCoordinator.Code
		}) {
			t.Fatalf("heartbeat: %v", err)
		}
		return resp
	}
	count := func(r *kmsg.ConsumerGroupHeartbeatResponse) int {
		n := 0
		if r.Assignment != nil {
			for _, at := range r.Assignment.Topics {
				n += len(at.Partitions)
			}
		}
		return n
	}
	first := heartbeat("static-1", "si", 0, []string{topic})
	if first.ErrorCode != 0 || count(first) != 4 {
		t.Fatalf("static join: %+v (%v)", first, kerr.ErrorForCode(first.ErrorCode))
	}
	// The instance restarted without leaving: its old member's session
	// still runs, so the instance id is not released.
	if r := heartbeat("static-2", "si", 0, []string{topic}); r.ErrorCode != kerr.UnreleasedInstanceID.Code {
		t.Fatalf("second member with a held instance id: %v, want UNRELEASED_INSTANCE_ID", kerr.ErrorForCode(r.ErrorCode))
	}
	// A static leave keeps the assignment for the instance's return.
	if r := heartbeat("static-1", "si", -2, nil); r.ErrorCode != 0 || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v (%v)", r, kerr.ErrorForCode(r.ErrorCode))
	}
	back := heartbeat("static-2", "si", 0, []string{topic})
	if back.ErrorCode != 0 || count(back) != 4 || back.MemberEpoch <= first.MemberEpoch {
		t.Fatalf("the instance back as a new member: %+v (%v), want the 4 partitions at a newer epoch", back, kerr.ErrorForCode(back.ErrorCode))
	}
	if r := heartbeat("static-1", "si", first.MemberEpoch, nil); r.ErrorCode != kerr.FencedInstanceID.Code {
		t.Fatalf("the replaced member id: %v, want FENCED_INSTANCE_ID", kerr.ErrorForCode(r.ErrorCode))
	}
	dg, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil || dg[group].Err != nil {
		t.Fatalf("describe: %v %v", err, dg[group].Err)
	}
	if ms := dg[group].Members; len(ms) != 1 || ms[0].MemberID != "static-2" || ms[0].InstanceID == nil || *ms[0].InstanceID != "si" {
		t.Fatalf("members after the replacement: %+v, want static-2 alone, instance si", ms)
	}
}

// KIP-848's ServerAssignor (issue 13): "range" gives contiguous ranges over
// the members sorted by id; an assignor the agents lack is
// UNSUPPORTED_ASSIGNOR.
func TestConsumerGroupRangeAssignor(t *testing.T) {
	t.Parallel()
	addrs := kafkaAgents(t, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic, group = "kip848-range", "kip848-range-group"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 6, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	topicID := td[topic].ID
	heartbeat := func(member, assignor string, epoch int32, owned []int32) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch = group, member, epoch
		req.SubscribedTopicNames = []string{topic}
		req.ServerAssignor = kmsg.StringPtr(assignor)
		req.RebalanceTimeoutMillis = 30000
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{{TopicID: topicID, Partitions: owned}}
		var resp *kmsg.ConsumerGroupHeartbeatResponse
		if !waitFor(func() bool {
			resp, err = req.RequestWith(ctx, cl)
			return err == nil && resp.ErrorCode != kerr.NotCoordinator.Code
		}) {
			t.Fatalf("heartbeat: %v", err)
		}
		if resp.ErrorCode != 0 {
			t.Fatalf("heartbeat of %s: %v", member, kerr.ErrorForCode(resp.ErrorCode))
		}
		return resp
	}
	parts := func(r *kmsg.ConsumerGroupHeartbeatResponse) []int32 {
		var ps []int32
		if r.Assignment != nil {
			for _, at := range r.Assignment.Topics {
				ps = append(ps, at.Partitions...)
			}
		}
		slices.Sort(ps)
		return ps
	}
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.SubscribedTopicNames = group, "member-x", []string{topic}
	req.ServerAssignor, req.Topics = kmsg.StringPtr("roundrobin"), []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	var bad *kmsg.ConsumerGroupHeartbeatResponse
	if !waitFor(func() bool {
		bad, err = req.RequestWith(ctx, cl)
		return err == nil && bad.ErrorCode != kerr.NotCoordinator.Code
	}) {
		t.Fatal(err)
	}
	if bad.ErrorCode != kerr.UnsupportedAssignor.Code {
		t.Fatalf("assignor roundrobin: %v, want UNSUPPORTED_ASSIGNOR", kerr.ErrorForCode(bad.ErrorCode))
	}

	// member-b joins first and takes everything; member-a, first by id,
	// then gets the first range, member-b the second.
	b := heartbeat("member-b", "range", 0, nil)
	a := heartbeat("member-a", "range", 0, nil)
	aParts, bParts := parts(a), parts(b)
	if !waitFor(func() bool {
		b = heartbeat("member-b", "", b.MemberEpoch, bParts)
		bParts = parts(b)
		a = heartbeat("member-a", "", a.MemberEpoch, aParts)
		aParts = parts(a)
		return slices.Equal(aParts, []int32{0, 1, 2}) && slices.Equal(bParts, []int32{3, 4, 5})
	}) {
		t.Fatalf("range assignment: member-a %v, member-b %v; want [0 1 2] and [3 4 5]", aParts, bParts)
	}
}
