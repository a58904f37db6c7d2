package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

func (ta *testAgent) deleteTopic(t testing.TB, name string) {
	t.Helper()
	if _, err := ta.admin.DeleteTopic(t.Context(), connect.NewRequest(&stratav1.DeleteTopicRequest{Name: name})); err != nil {
		t.Fatalf("delete topic %s: %v", name, err)
	}
}

func (ta *testAgent) fetchOffsets(t testing.TB, group string) []*stratav1.PartitionOffset {
	t.Helper()
	res, err := ta.group.FetchOffsets(t.Context(), connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: group}))
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	return res.Msg.GetOffsets()
}

func (ta *testAgent) topicID(t testing.TB, name string) uuid.UUID {
	t.Helper()
	topic, err := ta.index.DescribeTopic(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return topic.ID
}

// TestGroupOffsetsOfDeletedTopicAreGone: a group's committed offsets of a
// deleted topic are never answered, described, or applied to a topic made
// again under the same name, whether DeleteTopic deleted them or one was
// left behind (a commit racing the delete, a delete that died part way).
func TestGroupOffsetsOfDeletedTopicAreGone(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 2, nil)
	oldID := ta.topicID(t, "t")
	commit := func(group string, p int32, off int64) {
		t.Helper()
		_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
			Group: group, Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: p, Offset: off}}}))
		if err != nil {
			t.Fatal(err)
		}
	}
	commit("g", 0, 5)
	if o := ta.fetchOffsets(t, "g"); len(o) != 1 || o[0].GetTopicId() != oldID.String() {
		t.Fatalf("committed offsets %v, want t/0 with topic id %s", o, oldID)
	}

	ta.deleteTopic(t, "t")
	if o := ta.fetchOffsets(t, "g"); len(o) != 0 {
		t.Fatalf("offsets after deleting the topic: %v, want none (Kafka deletes them with the topic)", o)
	}
	// One the delete did not catch: committed under the old id afterwards.
	if err := ta.index.CommitOffsets(t.Context(), "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
		{Topic: "t", Partition: 0}: {Offset: 5, TopicID: oldID},
		{Topic: "t", Partition: 1}: {Offset: 4, TopicID: oldID},
	}); err != nil {
		t.Fatal(err)
	}
	if o := ta.fetchOffsets(t, "g"); len(o) != 0 {
		t.Fatalf("offsets of the deleted topic answered while it is gone: %v", o)
	}
	if err := ta.index.CommitOffsets(t.Context(), "g", nil, map[coordinator.TopicPartition]coordinator.CommittedOffset{
		{Topic: "t", Partition: 0}: {Offset: 5, TopicID: oldID},
	}); err != nil {
		t.Fatal(err)
	}

	ta.createTopic(t, "t", 2, nil)
	newID := ta.topicID(t, "t")
	for i := range 10 {
		produceOne(t, ta, "t", 0, string(rune('a'+i)))
	}
	if o := ta.fetchOffsets(t, "g"); len(o) != 0 {
		t.Fatalf("offsets of the deleted topic answered for the new one: %v", o)
	}
	if left, err := ta.index.FetchOffsets(t.Context(), "g", nil); err != nil || len(left) != 0 {
		t.Fatalf("the stale offset was not deleted on reading: %v %v", left, err)
	}
	// Describe shows no stale lag: 10 records, nothing committed.
	commit("g", 1, 0) // the group must exist to be described
	d, err := ta.agentDescribe(t, "g")
	if err != nil {
		t.Fatal(err)
	}
	if d.GetTotalLag() != 0 {
		// Only t/1 is listed (committed 0 of 0): t/0 has no offset, and no
		// member subscribes.
		t.Fatalf("describe after the recreate: %v", d)
	}
	for _, p := range d.GetPartitions() {
		if p.GetPartition() == 0 && p.GetCommittedOffset() != -1 {
			t.Fatalf("describe shows t/0 committed at %d from the deleted topic: %v", p.GetCommittedOffset(), d)
		}
	}
	// Reset works on the new topic and stores its id.
	res, err := ta.group.ResetOffsets(t.Context(), connect.NewRequest(&stratav1.ResetOffsetsRequest{
		Group: "g", Topics: []string{"t"}, To: &stratav1.ResetOffsetsRequest_Earliest{Earliest: true}}))
	if err != nil {
		t.Fatalf("reset after the recreate: %v", err)
	}
	if o := res.Msg.GetOffsets(); len(o) != 2 || o[0].GetOffset() != 0 || o[0].GetTopicId() != newID.String() {
		t.Fatalf("reset answered %v, want both partitions at 0 of topic %s", o, newID)
	}
	if o := ta.fetchOffsets(t, "g"); len(o) != 2 || o[0].GetOffset() != 0 || o[0].GetTopicId() != newID.String() {
		t.Fatalf("offsets after the reset: %v", o)
	}
	// A commit naming the deleted topic's id is refused.
	_, err = ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: 0, Offset: 3, TopicId: oldID.String()}}}))
	wantCode(t, err, connect.CodeNotFound, `topic "t" has id `+newID.String()+", not "+oldID.String()+": the topic was deleted")
}

// TestGroupRecreatedTopicIsNotTheSameTopic: a member owning partitions of
// a topic that is deleted and created again may neither commit to them nor
// keep them as the new topic's: it is made to release them first, and the
// new topic's partitions come with no committed offset.
func TestGroupRecreatedTopicIsNotTheSameTopic(t *testing.T) {
	ta := startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = 20 * time.Millisecond })
	ta.createTopic(t, "t", 2, nil)
	a := newMember(ta, "g", "t")
	a.mustHeartbeat(t)
	if len(a.owned) != 2 {
		t.Fatalf("a owns %v, want both partitions", a.owned)
	}
	if err := a.commit(t, "t", 0, 5); err != nil {
		t.Fatal(err)
	}
	ta.deleteTopic(t, "t")
	ta.createTopic(t, "t", 2, nil)
	time.Sleep(100 * time.Millisecond) // past every cache's TTL

	wantCode(t, a.commit(t, "t", 0, 6), connect.CodeFailedPrecondition, "deleted")
	// a still reports the old topic's partitions: it is told to drop them,
	// and the new topic's wait.
	a.mustHeartbeat(t)
	if len(a.owned) != 0 || len(a.pending) != 2 {
		t.Fatalf("a owning the deleted topic's partitions is assigned %v (pending %v), want none until it releases them", a.owned, a.pending)
	}
	wantCode(t, a.commit(t, "t", 0, 6), connect.CodeFailedPrecondition, "")
	a.mustHeartbeat(t) // reports none now
	if len(a.owned) != 2 {
		t.Fatalf("after releasing, a is assigned %v, want the new topic's 2 partitions", a.owned)
	}
	if o := ta.fetchOffsets(t, "g"); len(o) != 0 {
		t.Fatalf("offsets of the deleted topic answered for the new one: %v", o)
	}
	newID := ta.topicID(t, "t")
	if err := a.commit(t, "t", 0, 0); err != nil {
		t.Fatal(err)
	}
	if o := ta.fetchOffsets(t, "g"); len(o) != 1 || o[0].GetTopicId() != newID.String() {
		t.Fatalf("offsets %v, want t/0 of topic %s", o, newID)
	}
	// A second member never gets a partition while a owns it, across the
	// next delete and create either.
	b := newMember(ta, "g", "t")
	settle(t, 3, a, b)
	ta.deleteTopic(t, "t")
	ta.createTopic(t, "t", 2, nil)
	time.Sleep(100 * time.Millisecond)
	// b heartbeats first: a's partitions of the deleted topic block the new
	// ones until a lets go.
	b.mustHeartbeat(t)
	for k := range b.owned {
		if a.owned[k] {
			t.Fatalf("b was given %v, which a still owns of the deleted topic", k)
		}
	}
	settle(t, 4, a, b)
	if len(a.owned)+len(b.owned) != 2 {
		t.Fatalf("after settling a owns %v, b %v; want the 2 partitions between them", a.owned, b.owned)
	}
}

func TestGroupOffsetMetadataLimit(t *testing.T) {
	commit := func(ta *testAgent, metadata string) error {
		_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
			Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: 0, Offset: 1, Metadata: metadata}}}))
		return err
	}
	ta := startAgent(t, nil)
	ta.createTopic(t, "t", 1, nil)
	if err := commit(ta, strings.Repeat("m", 4096)); err != nil {
		t.Fatalf("4096 bytes of metadata (Kafka's default limit): %v", err)
	}
	wantCode(t, commit(ta, strings.Repeat("m", 4097)), connect.CodeInvalidArgument, "the limit is 4096")
	wantCode(t, commit(ta, strings.Repeat("m", 100<<10)), connect.CodeInvalidArgument, "offset-metadata-max-bytes")
	if o := ta.fetchOffsets(t, "g"); len(o) != 1 || len(o[0].GetMetadata()) != 4096 {
		t.Fatalf("a refused commit changed the offset: %v", o)
	}

	small := startAgent(t, func(c *agent.Config) { c.OffsetMetadataMaxBytes = 10 })
	small.createTopic(t, "t", 1, nil)
	if err := commit(small, "0123456789"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, commit(small, "0123456789a"), connect.CodeInvalidArgument, "the limit is 10")
	// A member's commit is held to it as well.
	m := newMember(small, "members", "t")
	m.mustHeartbeat(t)
	_, err := small.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "members", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: 0, Offset: 1, Metadata: "0123456789a"}}}))
	wantCode(t, err, connect.CodeInvalidArgument, "the limit is 10")
}

// leaseHookIndex lets a test stop a member's lease write at the moment it
// happens.
type leaseHookIndex struct {
	agent.Index
	hook atomic.Pointer[func(memberID string)]
}

func (x *leaseHookIndex) before(memberID string) {
	if f := x.hook.Load(); f != nil {
		(*f)(memberID)
	}
}

func (x *leaseHookIndex) PutMember(ctx context.Context, group string, m coordinator.GroupMember, ttl time.Duration) error {
	x.before(m.ID)
	return x.Index.PutMember(ctx, group, m, ttl)
}

func (x *leaseHookIndex) RenewMember(ctx context.Context, group string, m coordinator.GroupMember, from int32, ttl time.Duration) error {
	x.before(m.ID)
	return x.Index.RenewMember(ctx, group, m, from, ttl)
}

// startAgentOnIndex serves an agent on a memory store and the given index.
func startAgentOnIndex(t *testing.T, index agent.Index, tweak func(*agent.Config)) *testAgent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.AdminListen = ""
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := agent.New(t.Context(), cfg, objectlog.NewMemBucket(), index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	srv := httptest.NewServer(connectapi.Handler(a))
	t.Cleanup(srv.Close)
	return &testAgent{
		agent:    a,
		producer: stratav1connect.NewProducerServiceClient(srv.Client(), srv.URL),
		admin:    stratav1connect.NewAdminServiceClient(srv.Client(), srv.URL),
		group:    stratav1connect.NewGroupServiceClient(srv.Client(), srv.URL),
	}
}

// TestGroupLateRenewalDoesNotReviveMember: a steady heartbeat whose lease
// expires while it is in flight, and another member's heartbeat takes the
// partitions in that moment, must not renew the lease and answer the
// partitions: the two would both be told they own them.
func TestGroupLateRenewalDoesNotReviveMember(t *testing.T) {
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	hooked := &leaseHookIndex{Index: index}
	ta := startAgentOnIndex(t, hooked, nil)
	ta.createTopic(t, "t", 2, nil)

	a := newMember(ta, "g", "t")
	a.session = time.Second // the agent's minimum
	a.mustHeartbeat(t)
	if len(a.owned) != 2 {
		t.Fatalf("a owns %v, want both partitions", a.owned)
	}
	b := newMember(ta, "g", "t")

	// At a's next lease write: wait for its lease to expire, then let b
	// join, which finds a expired and takes both partitions.
	var once sync.Once
	var bErr error
	hook := func(memberID string) {
		if memberID != a.id {
			return
		}
		once.Do(func() {
			deadline := time.Now().Add(30 * time.Second)
			for {
				ms, err := index.ListMembers(context.Background(), "g")
				if err != nil {
					bErr = err
					return
				}
				if len(ms) == 1 && ms[0].ID == a.id && !ms[0].Expires.After(time.Now()) {
					break
				}
				if time.Now().After(deadline) {
					bErr = context.DeadlineExceeded
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			bErr = b.heartbeat(t)
		})
	}
	hooked.hook.Store(&hook)
	aErr := a.heartbeat(t)
	hooked.hook.Store(nil)
	if bErr != nil {
		t.Fatalf("b's heartbeat in the moment of a's expiry: %v", bErr)
	}
	if len(b.owned) != 2 {
		t.Fatalf("b owns %v after a's lease expired, want both partitions", b.owned)
	}
	if aErr == nil {
		checkExclusive(t, a, b)
		t.Fatalf("a's late heartbeat succeeded, answering %v", a.owned)
	}
	wantCode(t, aErr, connect.CodeFailedPrecondition, "rejoin")
	// a's lease stays gone: b keeps both, and a joins anew with nothing.
	a.epoch, a.owned = 0, map[tp]bool{}
	a.mustHeartbeat(t)
	checkExclusive(t, a, b)
	settle(t, 3, b, a)
	if len(a.owned) != 1 || len(b.owned) != 1 {
		t.Fatalf("after a rejoined and the group settled: a %v, b %v", a.owned, b.owned)
	}
}

// TestGroupCommitWithAWrongTopicID: a commit naming an id the topic never
// had, on a topic never deleted, is told the id is not the topic's
// (Kafka's UNKNOWN_TOPIC_ID), not that the topic was deleted, whether or
// not a member commits it.
func TestGroupCommitWithAWrongTopicID(t *testing.T) {
	ta := startAgent(t, nil)
	ta.createTopic(t, "fresh", 1, nil)
	id := ta.topicID(t, "fresh")
	bogus := uuid.MustParse("00000000-0000-0000-0000-000000000001")
	want := `topic "fresh" has id ` + id.String() + ", not " + bogus.String() + ": the topic was deleted (and maybe created again), or the id is wrong"

	_, err := ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "fresh", Partition: 0, Offset: 0, TopicId: bogus.String()}}}))
	wantUnknownTopicID(t, err, want)

	m := newMember(ta, "g2", "fresh")
	m.mustHeartbeat(t)
	if len(m.owned) != 1 {
		t.Fatalf("member owns %v, want fresh/0", m.owned)
	}
	_, err = ta.group.CommitOffsets(t.Context(), connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g2", MemberId: m.id, MemberEpoch: m.epoch,
		Offsets: []*stratav1.PartitionOffset{{Topic: "fresh", Partition: 0, Offset: 0, TopicId: bogus.String()}}}))
	wantUnknownTopicID(t, err, want)
	// The member's own commit, with the right id, still goes.
	if err := m.commit(t, "fresh", 0, 0); err != nil {
		t.Fatal(err)
	}
}

// wantUnknownTopicID checks for a NotFound that says msg and carries
// Kafka's UNKNOWN_TOPIC_ID in its ErrorInfo.
func wantUnknownTopicID(t *testing.T, err error, msg string) {
	t.Helper()
	wantCode(t, err, connect.CodeNotFound, msg)
	if strings.Contains(err.Error(), "was deleted;") || strings.Contains(err.Error(), "created again:") {
		t.Fatalf("error %q says the topic was deleted: it never was", err)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%v is not a Connect error", err)
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*stratav1.ErrorInfo); ok {
				if info.GetKafkaErrorName() != "UNKNOWN_TOPIC_ID" || info.GetKafkaErrorCode() != 100 {
					t.Fatalf("ErrorInfo %v, want UNKNOWN_TOPIC_ID (100)", info)
				}
				return
			}
		}
	}
	t.Fatalf("%v has no ErrorInfo", err)
}
