package agent

// KIP-848's consumer group protocol (ConsumerGroupHeartbeat,
// ConsumerGroupDescribe) as a Go API for the Kafka front-end: the native
// server-side groups (group.go), which already work this way (the
// coordinator assigns, members reconcile by heartbeat, member epochs fence),
// with Kafka's conventions for what a heartbeat leaves out (an unchanged
// subscription or owned set is not sent) and for leaving (epoch -1 or -2).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// ConsumerHeartbeat is a KIP-848 ConsumerGroupHeartbeat.
type ConsumerHeartbeat struct {
	Group    string
	MemberID string
	// MemberEpoch: 0 joins, -1 leaves, -2 is a static member's leave (its
	// InstanceID may be left out: the member id names it; a dynamic
	// member's -2 leaves as -1 does), otherwise the epoch of the member's
	// last answer.
	MemberEpoch int32
	// Topics and Regex are the subscription; both nil: unchanged since the
	// member's last heartbeat (a joining member must send one).
	Topics []string
	Regex  *string
	// Owned is what the member owns now; nil: unchanged (what it was last
	// assigned).
	Owned []coordinator.TopicPartition
	// ClientID and ClientHost are the member's client id (request header)
	// and address, recorded for DescribeGroups; "" records nothing.
	ClientID   string
	ClientHost string
	// InstanceID is a static member's group.instance.id, "" for a dynamic
	// member. See ConsumerGroupHeartbeat.
	InstanceID string
	// ServerAssignor is the assignor the member asks for: AssignorUniform,
	// AssignorRange, or "" (unchanged, or none). Another name is
	// ErrUnsupportedAssignor. The group uses the one most members ask for.
	ServerAssignor string
}

// ConsumerHeartbeatResult is a heartbeat's answer.
type ConsumerHeartbeatResult struct {
	MemberID    string
	MemberEpoch int32 // -1 after a leave
	Interval    time.Duration
	// Assigned is what the member may own at MemberEpoch: partitions still
	// being released by another member are added by a later heartbeat.
	Assigned []coordinator.TopicPartition
}

// ConsumerGroupHeartbeat runs a KIP-848 heartbeat against the group, a
// native group of the Connect API as much as of Kafka. Errors: the native
// Heartbeat's (ErrInvalid, ErrUnknownMember, ErrFencedMemberEpoch,
// ErrInconsistentGroupProtocol for a classic group with members).
//
// Static members (an InstanceID), as Kafka's GroupMetadataManager does: a
// static member leaving with epoch -2 stays in the group, its assignment
// kept, until its session expires; a member joining (epoch 0) with the
// instance id of one that left so takes its place (its assignment, the
// old member id fenced); joining with the instance id of a member that has
// not left and whose session lasts is ErrUnreleasedInstanceID; a
// heartbeat of a member id whose instance another member id holds is
// ErrFencedInstanceID.
func (a *Agent) ConsumerGroupHeartbeat(ctx context.Context, req ConsumerHeartbeat) (ConsumerHeartbeatResult, error) {
	switch req.ServerAssignor {
	case "", AssignorUniform, AssignorRange:
	default:
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %q; the agents offer %q and %q", ErrUnsupportedAssignor, req.ServerAssignor, AssignorUniform, AssignorRange)
	}
	if req.MemberEpoch == -2 {
		static, err := a.leaveStatic(ctx, req.Group, req.MemberID, req.InstanceID)
		if err != nil {
			return ConsumerHeartbeatResult{}, err
		}
		if static {
			return ConsumerHeartbeatResult{MemberID: req.MemberID, MemberEpoch: -2}, nil
		}
		// A dynamic member's -2 is a leave like -1.
	}
	if req.MemberEpoch < 0 {
		if err := a.leaveGroup(ctx, req.Group, req.MemberID); err != nil {
			return ConsumerHeartbeatResult{}, err
		}
		return ConsumerHeartbeatResult{MemberID: req.MemberID, MemberEpoch: -1}, nil
	}
	// What the member left out is filled in from its record by the
	// heartbeat, which reads the record anyway.
	h := heartbeat{group: req.Group, memberID: req.MemberID, epoch: req.MemberEpoch, topics: req.Topics,
		sameSubscription: req.Topics == nil && req.Regex == nil, sameOwned: req.Owned == nil,
		clientID: req.ClientID, clientHost: req.ClientHost, instanceID: req.InstanceID, assignor: req.ServerAssignor}
	if req.Regex != nil {
		h.regex = *req.Regex
	}
	if !h.sameOwned {
		h.owned = newPartitionSet(req.Owned)
	}
	res, err := a.groupHeartbeat(ctx, h)
	if err != nil {
		return ConsumerHeartbeatResult{}, err
	}
	return ConsumerHeartbeatResult{MemberID: res.memberID, MemberEpoch: res.epoch, Interval: res.interval, Assigned: res.assigned.list()}, nil
}

// leaveStatic is a static member's leave (epoch -2): the member stays, its
// assignment kept and its lease running out, so that the instance coming
// back takes its place without moving partitions (KIP-848). An empty
// instanceID is the member's own: franz-go (v1.22) sends its -2 without
// the instance id, and the member id names the member. static is false,
// and nothing is done, for a dynamic member left so.
func (a *Agent) leaveStatic(ctx context.Context, group, memberID, instanceID string) (static bool, err error) {
	if err := validGroupName(group); err != nil {
		return false, err
	}
	err = retryConflicts(ctx, func() error {
		st, err := a.index.LoadGroup(ctx, group)
		if err != nil {
			return err
		}
		if err := refuseClassic(group, st); err != nil {
			return err
		}
		rec, err := decodeGroupRecord(st)
		if err != nil {
			return err
		}
		m, ok := rec.Members[memberID]
		if ok && instanceID == "" {
			instanceID = m.InstanceID
		}
		switch {
		case !ok:
			return fmt.Errorf("%w: member %q is not in group %q", errUnknownMember, memberID, group)
		case m.InstanceID == "" && instanceID == "":
			return nil
		case m.InstanceID != instanceID:
			return fmt.Errorf("%w: member %q is not instance %q", ErrFencedInstanceID, memberID, instanceID)
		case m.Left:
			static = true
			return nil
		}
		m.Left = true
		if _, err := a.index.SaveGroup(ctx, group, st.Version, rec.encode()); err != nil {
			return err
		}
		static = true
		return nil
	})
	return static, err
}

// ConsumerGroupMember is one live member as ConsumerGroupDescribe shows it.
type ConsumerGroupMember struct {
	MemberID    string
	MemberEpoch int32
	Topics      []string
	Regex       string
	// Assigned is what the member owns (or is releasing), Target what the
	// coordinator means it to own.
	Assigned []coordinator.TopicPartition
	Target   []coordinator.TopicPartition
	// ClientID and ClientHost are the member's last heartbeat's client id
	// and address ("" when not known); InstanceID is a static member's
	// group.instance.id ("" for a dynamic member).
	ClientID, ClientHost, InstanceID string
}

// ConsumerGroupDescription is a consumer group (KIP-848) as
// ConsumerGroupDescribe shows it.
type ConsumerGroupDescription struct {
	Group string
	// State is KIP-848's: GroupEmpty without live members, GroupReconciling
	// while a live member has partitions to take (its target not yet all
	// released to it) or to release, GroupStable otherwise; the same as
	// the Connect API's DescribeGroup.
	State string
	Epoch int32 // the group epoch
	// Assignor is the group's server assignor: AssignorUniform or
	// AssignorRange.
	Assignor string
	Members  []ConsumerGroupMember
}

// DescribeConsumerGroup describes a consumer group: ErrGroupNotFound when
// there is none, or when the group is a classic one, as Kafka answers
// ConsumerGroupDescribe.
func (a *Agent) DescribeConsumerGroup(ctx context.Context, group string) (ConsumerGroupDescription, error) {
	if err := validGroupName(group); err != nil {
		return ConsumerGroupDescription{}, err
	}
	st, err := a.index.LoadGroup(ctx, group)
	if err != nil {
		return ConsumerGroupDescription{}, err
	}
	if len(st.Data) == 0 || recordKind(st.Data) == GroupTypeClassic {
		return ConsumerGroupDescription{}, fmt.Errorf("%w: group %q is not a consumer group", ErrGroupNotFound, group)
	}
	rec, err := decodeGroupRecord(st)
	if err != nil {
		return ConsumerGroupDescription{}, err
	}
	live, err := a.liveLeases(ctx, group)
	if err != nil && !errors.Is(err, coordinator.ErrNotFound) {
		return ConsumerGroupDescription{}, err
	}
	d := ConsumerGroupDescription{Group: group, State: GroupEmpty, Epoch: rec.Epoch, Assignor: rec.assignor()}
	reconciling := false
	for _, id := range slices.Sorted(maps.Keys(rec.Members)) {
		if _, ok := live[id]; !ok {
			continue
		}
		m := rec.Members[id]
		owned := m.Assigned.union(m.Revoking)
		if m.Stale.len() > 0 || owned.len() != m.Target.len() ||
			owned.filter(func(tp coordinator.TopicPartition) bool { return !m.Target.has(tp) }).len() > 0 {
			reconciling = true
		}
		d.State = GroupStable
		d.Members = append(d.Members, ConsumerGroupMember{MemberID: id, MemberEpoch: m.Epoch, Topics: m.Topics, Regex: m.Regex,
			Assigned: owned.list(), Target: m.Target.list(),
			ClientID: m.ClientID, ClientHost: m.ClientHost, InstanceID: m.InstanceID})
	}
	if d.State == GroupStable && reconciling {
		d.State = GroupReconciling
	}
	return d, nil
}
