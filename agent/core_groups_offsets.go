package agent

// Kafka groups beyond the classic protocol (core_groups.go): offsets as
// Kafka's OffsetCommit and OffsetFetch take them, and describing, listing
// and deleting groups of both kinds (classic and consumer) for the Kafka
// front-end; describedRecord is the classic group as the native API's
// DescribeGroup (strata group describe) shows it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// KafkaOffsetCommit is an OffsetCommit of the Kafka protocol.
type KafkaOffsetCommit struct {
	Group string
	// MemberID and Generation: "" and -1 for a simple commit (a group with
	// no members, as Kafka allows); a classic member's id and generation;
	// or a consumer (native) member's id and member epoch.
	MemberID   string
	InstanceID string
	Generation int32
	Offsets    map[coordinator.TopicPartition]coordinator.CommittedOffset
}

// CommitKafkaOffsets commits offsets as Kafka's OffsetCommit does: a simple
// commit while the group has no members, a member's at its generation
// (classic) or member epoch (consumer group). Any offset is stored as given,
// negative ones included (Kafka's -1 latest and -2 earliest of admin
// resets), and OffsetFetch returns it. Partition errors (unknown
// topic or partition, metadata over --offset-metadata-max-bytes) come back
// per partition and the other partitions are committed; a member error
// (ErrUnknownMemberID, ErrIllegalGeneration, ErrRebalanceInProgress,
// ErrFencedInstanceID) fails the whole commit.
func (a *Agent) CommitKafkaOffsets(ctx context.Context, c KafkaOffsetCommit) (map[coordinator.TopicPartition]error, error) {
	if err := validGroupName(c.Group); err != nil {
		return nil, err
	}
	errs := map[coordinator.TopicPartition]error{}
	offsets := map[coordinator.TopicPartition]coordinator.CommittedOffset{}
	for tp, o := range c.Offsets {
		if len(o.Metadata) > a.cfg.OffsetMetadataMaxBytes {
			errs[tp] = overLimit(errOffsetMetadataTooLarge, "offset-metadata-max-bytes", int64(a.cfg.OffsetMetadataMaxBytes), int64(len(o.Metadata)),
				"the metadata of %s/%d is %d bytes; the limit is %d (offset-metadata-max-bytes)", tp.Topic, tp.Partition, len(o.Metadata), a.cfg.OffsetMetadataMaxBytes)
			continue
		}
		t, err := a.partitionTopic(ctx, tp.Topic, tp.Partition)
		if err != nil {
			errs[tp] = err
			continue
		}
		// A negative offset is stored as given, as Kafka does: admin tools
		// commit -1 (latest) and -2 (earliest) for the clients to resolve
		// on fetch; the native API reads it as no committed offset.
		o.TopicID = t.ID
		offsets[tp] = o
	}
	if len(offsets) == 0 {
		return errs, nil
	}
	st, err := a.index.LoadGroup(ctx, c.Group)
	if err != nil {
		return nil, err
	}
	if recordKind(st.Data) == GroupTypeConsumer {
		if c.MemberID == "" {
			return nil, fmt.Errorf("%w: group %q has members; a commit must name one", ErrUnknownMemberID, c.Group)
		}
		// A consumer group's member commits at its member epoch (KIP-848).
		err := a.commitGroupOffsets(ctx, c.Group, c.MemberID, c.Generation, offsets)
		switch {
		case errors.Is(err, errStaleMemberEpoch), errors.Is(err, errFencedMemberEpoch):
			return nil, fmt.Errorf("%w: %w", ErrIllegalGeneration, err)
		case errors.Is(err, errUnknownMember):
			return nil, fmt.Errorf("%w: %w", ErrUnknownMemberID, err)
		}
		return errs, err
	}
	// Members whose session expired are gone (Kafka removes them when
	// their heartbeat expires), so an admin commit to a group whose
	// consumers were killed succeeds once their sessions are over.
	rec, err := a.loadClassicExpired(ctx, c.Group)
	if err != nil {
		return nil, err
	}
	if c.Generation < 0 && c.MemberID == "" {
		if len(rec.Members) > 0 {
			return nil, fmt.Errorf("%w: group %q has members; only they may commit", ErrUnknownMemberID, c.Group)
		}
		live, err := a.liveMembers(ctx, c.Group)
		if err != nil {
			return nil, err
		}
		if len(live) > 0 {
			return nil, fmt.Errorf("%w: group %q has %d live members; only they may commit", ErrUnknownMemberID, c.Group, len(live))
		}
		return errs, a.index.CommitOffsets(ctx, c.Group, nil, offsets)
	}
	if _, err := rec.checkMember(c.Group, c.MemberID, c.InstanceID, c.Generation); err != nil {
		return nil, err
	}
	if c.Generation != rec.Generation {
		return nil, fmt.Errorf("%w: generation %d, the group is at %d", ErrIllegalGeneration, c.Generation, rec.Generation)
	}
	if rec.State == GroupCompletingRebalance {
		return nil, fmt.Errorf("%w: group %q is waiting for its leader's assignment", ErrRebalanceInProgress, c.Group)
	}
	err = a.index.CommitOffsets(ctx, c.Group, &coordinator.MemberFence{MemberID: c.MemberID, Epoch: c.Generation}, offsets)
	if errors.Is(err, coordinator.ErrFenced) {
		// The lease moved on between the read and the commit: a rebalance
		// or an expiry.
		return nil, fmt.Errorf("%w: member %q's generation %d ended or its session expired: rejoin", ErrIllegalGeneration, c.MemberID, c.Generation)
	}
	return errs, err
}

// GroupOffsets returns the group's committed offsets of tps (every one when
// tps is empty), leaving out those of deleted topics: OffsetFetch's answer,
// the same as the native API's FetchOffsets.
func (a *Agent) GroupOffsets(ctx context.Context, group string, tps []coordinator.TopicPartition) (map[coordinator.TopicPartition]coordinator.CommittedOffset, error) {
	if err := validGroupName(group); err != nil {
		return nil, err
	}
	return a.committedOffsets(ctx, group, tps)
}

// PendingTxnOffsets returns the group's partitions with offsets staged by
// a transaction not yet completed (TxnOffsetCommit before its EndTxn has
// written the markers and moved them): OffsetFetch's RequireStable
// (KIP-447) answers UNSTABLE_OFFSET_COMMIT for these. Read it before the
// committed offsets: a transaction that completes in between then shows as
// pending (the client retries), never as an old offset called stable.
func (a *Agent) PendingTxnOffsets(ctx context.Context, group string) (map[coordinator.TopicPartition]bool, error) {
	if err := validGroupName(group); err != nil {
		return nil, err
	}
	return a.index.PendingTxnOffsets(ctx, group)
}

// GroupDescription is a group as DescribeGroups and ListGroups report it,
// for both kinds of groups.
type GroupDescription struct {
	Group string
	// Type is GroupTypeClassic or GroupTypeConsumer; "" for a group with
	// no record (only committed offsets), reported as classic and Empty.
	Type         string
	State        string
	ProtocolType string
	Protocol     string
	Generation   int32
	Members      []ClassicMember
}

// DescribeKafkaGroup describes a group of either kind. A group that does
// not exist is described as Dead, as Kafka does.
func (a *Agent) DescribeKafkaGroup(ctx context.Context, group string) (GroupDescription, error) {
	if err := validGroupName(group); err != nil {
		return GroupDescription{}, err
	}
	st, err := a.index.LoadGroup(ctx, group)
	if err != nil {
		return GroupDescription{}, err
	}
	d := GroupDescription{Group: group}
	var kind groupKind
	_ = json.Unmarshal(st.Data, &kind)
	if kind.Type == GroupTypeClassic || len(st.Data) == 0 {
		rec, err := a.loadClassicExpired(ctx, group)
		if err != nil {
			return GroupDescription{}, err
		}
		d.Type, d.State, d.ProtocolType, d.Generation = GroupTypeClassic, rec.State, rec.ProtocolType, rec.Generation
		if rec.State == GroupStable || rec.State == GroupCompletingRebalance {
			d.Protocol = rec.Protocol
		}
		if len(st.Data) == 0 {
			offsets, err := a.index.FetchOffsets(ctx, group, nil)
			if err != nil {
				return GroupDescription{}, err
			}
			if len(offsets) == 0 {
				d.Type, d.State = "", GroupDead
			}
		}
		for _, id := range slices.Sorted(maps.Keys(rec.Members)) {
			m := rec.Members[id]
			d.Members = append(d.Members, ClassicMember{MemberID: id, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost, Metadata: m.metadataFor(rec.Protocol), Assignment: m.Assignment})
		}
		return d, nil
	}
	// A native (consumer) group: members with their leases.
	rec, err := decodeGroupRecord(st)
	if err != nil {
		return GroupDescription{}, err
	}
	live, err := a.liveLeases(ctx, group)
	if err != nil {
		return GroupDescription{}, err
	}
	// The protocol of a consumer group is its server assignor, as Kafka
	// describes one to classic tools.
	d.Type, d.ProtocolType, d.Generation, d.State = GroupTypeConsumer, "consumer", rec.Epoch, GroupEmpty
	d.Protocol = rec.assignor()
	for _, id := range slices.Sorted(maps.Keys(rec.Members)) {
		if _, ok := live[id]; ok {
			m := rec.Members[id]
			assigned := m.Assigned.union(m.Revoking).union(m.Stale).list()
			if assigned == nil {
				assigned = []coordinator.TopicPartition{}
			}
			d.Members = append(d.Members, ClassicMember{MemberID: id, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost,
				Topics: m.Topics, Assigned: assigned})
			d.State = GroupStable
		}
	}
	return d, nil
}

// KafkaGroups lists every group with its type and state (ListGroups).
func (a *Agent) KafkaGroups(ctx context.Context) ([]GroupDescription, error) {
	names, err := a.index.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]GroupDescription, 0, len(names))
	for _, g := range names {
		d, err := a.DescribeKafkaGroup(ctx, g)
		if err != nil {
			return nil, err
		}
		if d.State == GroupDead {
			continue
		}
		d.Members = nil
		if d.Type == "" {
			d.Type = GroupTypeClassic
		}
		out = append(out, d)
	}
	return out, nil
}

// DeleteKafkaGroup deletes a group with its committed offsets (DeleteGroups):
// ErrGroupNotEmpty while it has live members, ErrGroupNotFound when there is
// no such group.
func (a *Agent) DeleteKafkaGroup(ctx context.Context, group string) error {
	if err := validGroupName(group); err != nil {
		return err
	}
	return a.index.DeleteGroup(ctx, group)
}

// DeleteGroupOffsets forgets the group's committed offsets of tps
// (OffsetDelete). ErrGroupNotFound when the group does not exist. The
// front-end checks subscriptions (GROUP_SUBSCRIBED_TO_TOPIC): members'
// subscriptions are in their protocol metadata, which only it reads.
func (a *Agent) DeleteGroupOffsets(ctx context.Context, group string, tps []coordinator.TopicPartition) error {
	if err := validGroupName(group); err != nil {
		return err
	}
	d, err := a.DescribeKafkaGroup(ctx, group)
	if err != nil {
		return err
	}
	if d.State == GroupDead {
		return fmt.Errorf("%w: group %q", ErrGroupNotFound, group)
	}
	return a.index.DeleteOffsets(ctx, group, tps)
}

// describedRecord is the group's record as the native API's DescribeGroup
// shows it: a native record as it is; a classic one as its members with
// their generation as epoch, their subscription, and what the leader
// assigned them as owned (and as target: a classic group moves partitions
// by rebalancing, never piecemeal).
func describedRecord(st coordinator.GroupState) (*groupRecord, error) {
	var k groupKind
	if len(st.Data) == 0 || json.Unmarshal(st.Data, &k) != nil || k.Type != GroupTypeClassic {
		return decodeGroupRecord(st)
	}
	var rec classicRecord
	if err := json.Unmarshal(st.Data, &rec); err != nil {
		return nil, fmt.Errorf("classic group record is corrupt: %w", err)
	}
	out := &groupRecord{Epoch: rec.Generation, Members: map[string]*memberRecord{}, TopicIDs: map[string]uuid.UUID{}}
	for id, m := range rec.Members {
		owned := m.Owned
		if owned == nil {
			owned = partitionSet{}
		}
		out.Members[id] = &memberRecord{Epoch: rec.Generation, Topics: m.Topics, SessionMs: m.SessionMs, Target: owned, Assigned: owned}
	}
	return out, nil
}
