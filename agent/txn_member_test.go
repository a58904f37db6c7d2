package agent_test

import (
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

// KIP-447 in the core: a transaction's offsets committed for a classic
// group's member are checked against the group's record, and its lease at
// that generation again in the index, in the same step as the staging.
func TestCommitTxnOffsetsChecksTheClassicMember(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) {
		c.TxnReaperInterval = 0
		c.GroupMinSessionTimeout = 100 * time.Millisecond
	})
	a, ctx := ta.agent, t.Context()
	ta.createTopic(t, "t", 2, nil)
	const g = "txn-classic"
	req := joinReq(g, "", "range")
	req.SessionTimeout = 300 * time.Millisecond
	m1 := firstJoin(t, a, req)
	req.MemberID = m1
	r1, err := a.JoinClassicGroup(ctx, req)
	if err != nil || r1.Generation != 1 {
		t.Fatalf("join: %+v %v", r1, err)
	}
	if _, _, _, err := a.SyncClassicGroup(ctx, agent.SyncRequest{Group: g, MemberID: m1, Generation: 1, Assignments: map[string][]byte{m1: nil}}); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := a.InitTxnProducer(ctx, "tx-classic", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p := agent.TxnProducer{TransactionalID: "tx-classic", ProducerID: pid, ProducerEpoch: epoch}
	if err := a.AddTxnOffsets(ctx, p, g); err != nil {
		t.Fatal(err)
	}
	stage := func(m agent.TxnGroupMember, partition int32) error {
		return a.CommitTxnOffsets(ctx, p, g, m, []agent.TxnOffset{{Topic: "t", Partition: partition, Offset: 5}})
	}
	pending := func() map[coordinator.TopicPartition]bool {
		t.Helper()
		got, err := a.PendingTxnOffsets(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, c := range []struct {
		name   string
		member agent.TxnGroupMember
		want   error
	}{
		{"another generation", agent.TxnGroupMember{MemberID: m1, Generation: 2}, agent.ErrIllegalGeneration},
		{"unknown member", agent.TxnGroupMember{MemberID: "ghost", Generation: 1}, agent.ErrUnknownMemberID},
		{"not its instance", agent.TxnGroupMember{MemberID: m1, InstanceID: "i", Generation: 1}, agent.ErrFencedInstanceID},
	} {
		if err := stage(c.member, 0); !errors.Is(err, c.want) || errors.Is(err, coordinator.ErrFenced) {
			t.Fatalf("%s: %v, want %v (and not a producer's fence)", c.name, err, c.want)
		}
	}
	if got := pending(); len(got) != 0 {
		t.Fatalf("refused commits staged %v", got)
	}
	if err := stage(agent.TxnGroupMember{MemberID: m1, Generation: 1}, 0); err != nil {
		t.Fatalf("the member at its generation: %v", err)
	}
	if got := pending(); !got[coordinator.TopicPartition{Topic: "t", Partition: 0}] {
		t.Fatalf("pending %v, want t/0", got)
	}

	// The member's session expires; nothing has told the group's record
	// yet, so only the index's check, made with the staging, refuses it.
	time.Sleep(2 * req.SessionTimeout)
	err = stage(agent.TxnGroupMember{MemberID: m1, Generation: 1}, 1)
	if !errors.Is(err, agent.ErrIllegalGeneration) || !strings.Contains(err.Error(), "session expired") {
		t.Fatalf("the member past its session: %v, want ILLEGAL_GENERATION from the index", err)
	}
	if got := pending(); got[coordinator.TopicPartition{Topic: "t", Partition: 1}] {
		t.Fatalf("the expired member's offset was staged: %v", got)
	}
	// A producer naming no member is not checked.
	if err := stage(agent.TxnGroupMember{Generation: -1}, 1); err != nil {
		t.Fatalf("no member named: %v", err)
	}
}

// The native API's TxnOffsetCommit names the member and its member epoch:
// refused as the native groups refuse a commit (FAILED_PRECONDITION with
// KIP-848's error names), staged at the member's epoch.
func TestTxnOffsetCommitChecksTheNativeMember(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TxnReaperInterval = 0 })
	ctx := t.Context()
	ta.createTopic(t, "nt", 1, nil)
	hb, err := ta.group.Heartbeat(ctx, connect.NewRequest(&stratav1.HeartbeatRequest{Group: "ng", Topics: []string{"nt"},
		SessionTimeout: durationpb.New(30 * time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	member, epoch := hb.Msg.GetMemberId(), hb.Msg.GetMemberEpoch()
	c := newTxnClient(t, ta, "ntx", 0)
	if _, err := ta.producer.AddOffsetsToTxn(ctx, connect.NewRequest(&stratav1.AddOffsetsToTxnRequest{Producer: c.id, Group: "ng"})); err != nil {
		t.Fatal(err)
	}
	commit := func(member string, epoch int32) error {
		_, err := ta.producer.TxnOffsetCommit(ctx, connect.NewRequest(&stratav1.TxnOffsetCommitRequest{Producer: c.id, Group: "ng",
			MemberId: member, MemberEpoch: epoch, Offsets: []*stratav1.TxnOffset{{Topic: "nt", Partition: 0, Offset: 4}}}))
		return err
	}
	for _, c := range []struct {
		name, member string
		epoch        int32
		kafka        string
	}{
		{"stale epoch", member, epoch - 1, "STALE_MEMBER_EPOCH"},
		{"epoch ahead", member, epoch + 1, "FENCED_MEMBER_EPOCH"},
		{"unknown member", "ghost", epoch, "UNKNOWN_MEMBER_ID"},
	} {
		err := commit(c.member, c.epoch)
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
			t.Fatalf("%s: %v, want FAILED_PRECONDITION", c.name, err)
		}
		if info := clientDetail[*stratav1.ErrorInfo](t, ce); info.GetKafkaErrorName() != c.kafka {
			t.Fatalf("%s: %v: Kafka error %q, want %s", c.name, err, info.GetKafkaErrorName(), c.kafka)
		}
	}
	if err := commit("", 3); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("member_epoch without member_id: %v, want INVALID_ARGUMENT", err)
	}
	if err := commit(member, epoch); err != nil {
		t.Fatalf("the member at its epoch: %v", err)
	}
	must(t, c.end(true))
	if got := ta.fetchOffset(t, "ng", "nt", 0); got != 4 {
		t.Fatalf("committed %d, want 4", got)
	}
}
