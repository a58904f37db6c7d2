package agent

// GroupService's RPCs in the core, over group.go's protocol and the
// index's group storage; the Connect front-end, agent/connectapi, wraps
// them.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// Heartbeat joins, keeps alive and reconciles a group member.
func (a *Agent) Heartbeat(ctx context.Context, m *stratav1.HeartbeatRequest) (*stratav1.HeartbeatResponse, error) {
	owned, err := partitionSetFromProto(m.GetOwned())
	if err != nil {
		return nil, err
	}
	h := heartbeat{
		group:    m.GetGroup(),
		memberID: m.GetMemberId(),
		epoch:    m.GetMemberEpoch(),
		topics:   m.GetTopics(),
		regex:    m.GetTopicRegex(),
		owned:    owned,
	}
	if m.GetSessionTimeout() != nil {
		if err := m.GetSessionTimeout().CheckValid(); err != nil {
			return nil, invalidf("session_timeout: %v", err)
		}
		h.session = m.GetSessionTimeout().AsDuration()
		if h.session <= 0 {
			return nil, invalidf("session_timeout %s must be positive", h.session)
		}
	}
	res, err := a.groupHeartbeat(ctx, h)
	if err != nil {
		return nil, err
	}
	return &stratav1.HeartbeatResponse{
		MemberId:          res.memberID,
		MemberEpoch:       res.epoch,
		Assigned:          partitionSetToProto(res.assigned),
		Pending:           partitionSetToProto(res.pending),
		HeartbeatInterval: durationpb.New(res.interval),
		SessionTimeout:    durationpb.New(res.session),
		GroupEpoch:        res.groupEpoch,
	}, nil
}

// LeaveGroup ends a member's session.
func (a *Agent) LeaveGroup(ctx context.Context, req *stratav1.LeaveGroupRequest) (*stratav1.LeaveGroupResponse, error) {
	if err := a.leaveGroup(ctx, req.GetGroup(), req.GetMemberId()); err != nil {
		return nil, err
	}
	return &stratav1.LeaveGroupResponse{}, nil
}

// CommitOffsets stores a group's positions.
func (a *Agent) CommitOffsets(ctx context.Context, m *stratav1.CommitOffsetsRequest) (*stratav1.CommitOffsetsResponse, error) {
	offsets := make(map[coordinator.TopicPartition]coordinator.CommittedOffset, len(m.GetOffsets()))
	for _, o := range m.GetOffsets() {
		tp := coordinator.TopicPartition{Topic: o.GetTopic(), Partition: o.GetPartition()}
		if _, dup := offsets[tp]; dup {
			return nil, invalidf("%s/%d appears twice in one commit", tp.Topic, tp.Partition)
		}
		// The native API keeps its positions real offsets; only Kafka's
		// OffsetCommit stores negative ones (CommitKafkaOffsets).
		if o.GetOffset() < 0 {
			return nil, invalidf("offset %d of %s/%d is negative", o.GetOffset(), tp.Topic, tp.Partition)
		}
		co := coordinator.CommittedOffset{Offset: o.GetOffset(), Metadata: o.GetMetadata()}
		if id := o.GetTopicId(); id != "" {
			var err error
			if co.TopicID, err = uuid.Parse(id); err != nil {
				return nil, invalidf("topic_id %q of %s/%d is not a UUID", id, tp.Topic, tp.Partition)
			}
		}
		offsets[tp] = co
	}
	if err := a.commitGroupOffsets(ctx, m.GetGroup(), m.GetMemberId(), m.GetMemberEpoch(), offsets); err != nil {
		return nil, err
	}
	return &stratav1.CommitOffsetsResponse{}, nil
}

// FetchOffsets reads a group's committed positions.
func (a *Agent) FetchOffsets(ctx context.Context, req *stratav1.FetchOffsetsRequest) (*stratav1.FetchOffsetsResponse, error) {
	if err := validGroupName(req.GetGroup()); err != nil {
		return nil, err
	}
	wanted, err := partitionSetFromProto(req.GetPartitions())
	if err != nil {
		return nil, err
	}
	got, err := a.committedOffsets(ctx, req.GetGroup(), wanted.list())
	if err != nil {
		return nil, err
	}
	return &stratav1.FetchOffsetsResponse{Offsets: offsetsToProto(withoutUnsetOffsets(got))}, nil
}

// ListGroups lists every group with its state, live members and lag.
func (a *Agent) ListGroups(ctx context.Context, _ *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	names, err := a.index.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := &stratav1.ListGroupsResponse{}
	for _, g := range names {
		d, err := a.describeGroup(ctx, g)
		if errors.Is(err, coordinator.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out.Groups = append(out.Groups, &stratav1.GroupSummary{
			Group: g, State: d.GetState(), Members: int32(len(d.GetMembers())), Lag: d.GetTotalLag(),
		})
	}
	return out, nil
}

// DescribeGroup tells a group's state, members, offsets and lag.
func (a *Agent) DescribeGroup(ctx context.Context, req *stratav1.DescribeGroupRequest) (*stratav1.DescribeGroupResponse, error) {
	d, err := a.describeGroup(ctx, req.GetGroup())
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (a *Agent) describeGroup(ctx context.Context, group string) (*stratav1.DescribeGroupResponse, error) {
	if err := validGroupName(group); err != nil {
		return nil, err
	}
	st, err := a.index.LoadGroup(ctx, group)
	if err != nil {
		return nil, err
	}
	if recordKind(st.Data) == GroupTypeClassic {
		// Expired classic members are removed, the generation bumped when
		// the group becomes Empty, as the Kafka side sees it.
		if _, err := a.loadClassicExpired(ctx, group); err != nil {
			return nil, err
		}
		if st, err = a.index.LoadGroup(ctx, group); err != nil {
			return nil, err
		}
	}
	rec, err := describedRecord(st) // core_groups.go: a classic group too
	if err != nil {
		return nil, err
	}
	expires, err := a.liveMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	committed, err := a.committedOffsets(ctx, group, nil)
	if err != nil {
		return nil, err
	}
	if st.Version == 0 && len(expires) == 0 && len(committed) == 0 {
		return nil, fmt.Errorf("%w: group %q does not exist", coordinator.ErrGroupNotFound, group)
	}
	out := &stratav1.DescribeGroupResponse{Group: group, GroupEpoch: rec.Epoch, State: "Empty"}
	owners := map[coordinator.TopicPartition]string{}
	partitions := partitionSet{}
	topics, err := a.groupTopics.list(ctx)
	if err != nil {
		return nil, err
	}
	reconciling := false
	for _, id := range slices.Sorted(maps.Keys(rec.Members)) {
		m := rec.Members[id]
		exp, ok := expires[id]
		if !ok {
			continue // expired: gone at the next heartbeat of anyone
		}
		// The record's revoking set is brought up to date by the member's
		// own heartbeat; what it owns beyond its target is revoking now.
		owned := m.Assigned.union(m.Revoking)
		revoking := owned.filter(func(tp coordinator.TopicPartition) bool { return !m.Target.has(tp) })
		// What it still owns of a deleted topic it must release too.
		revoking.addAll(m.Stale)
		owned.addAll(m.Stale)
		pending := m.Target.filter(func(tp coordinator.TopicPartition) bool { return !owned.has(tp) })
		if pending.len() > 0 || revoking.len() > 0 {
			reconciling = true
		}
		owned.forEach(func(tp coordinator.TopicPartition) { owners[tp] = id })
		for _, t := range resolveSubscription(m, topics) {
			for p := range topics[t] {
				partitions.add(coordinator.TopicPartition{Topic: t, Partition: p})
			}
		}
		partitions.addAll(owned)
		out.Members = append(out.Members, &stratav1.GroupMemberInfo{
			MemberId:       id,
			MemberEpoch:    m.Epoch,
			Topics:         m.Topics,
			TopicRegex:     m.Regex,
			Assigned:       partitionSetToProto(owned),
			Revoking:       partitionSetToProto(revoking),
			Pending:        partitionSetToProto(pending),
			SessionExpires: timestamppb.New(exp),
		})
	}
	if len(out.Members) > 0 {
		out.State = "Stable"
		if reconciling {
			out.State = "Reconciling"
		}
	}
	for tp := range committed {
		partitions.add(tp)
	}
	for _, tp := range partitions.list() {
		pl := &stratav1.PartitionLag{Topic: tp.Topic, Partition: tp.Partition, CommittedOffset: -1, Owner: owners[tp]}
		c, hasCommit := committed[tp]
		// A Kafka admin's -1/-2 is no position: the partition is listed,
		// with no committed offset and the lag counted from the log start.
		hasCommit = hasCommit && c.Offset >= 0
		if hasCommit {
			pl.CommittedOffset, pl.Metadata = c.Offset, c.Metadata
		}
		ps, err := a.partitionStateByName(ctx, tp)
		switch {
		case errors.Is(err, coordinator.ErrNotFound):
			// The topic is gone: the position stays, with no lag to tell.
		case err != nil:
			return nil, err
		default:
			pl.HighWatermark = ps.HighWatermark
			from := ps.LogStartOffset
			if hasCommit {
				from = max(c.Offset, ps.LogStartOffset)
			}
			pl.Lag = max(ps.HighWatermark-from, 0)
		}
		out.TotalLag += pl.Lag
		out.Partitions = append(out.Partitions, pl)
	}
	return out, nil
}

// partitionStateByName is a partition's bounds; ErrNotFound if the topic or
// partition does not exist.
func (a *Agent) partitionStateByName(ctx context.Context, tp coordinator.TopicPartition) (coordinator.PartitionState, error) {
	t, err := a.partitionTopic(ctx, tp.Topic, tp.Partition)
	if err != nil {
		return coordinator.PartitionState{}, err
	}
	return a.index.PartitionState(ctx, t.ID, tp.Partition)
}

// DeleteGroup forgets a group without live members.
func (a *Agent) DeleteGroup(ctx context.Context, req *stratav1.DeleteGroupRequest) (*stratav1.DeleteGroupResponse, error) {
	g := req.GetGroup()
	if err := validGroupName(g); err != nil {
		return nil, err
	}
	err := a.index.DeleteGroup(ctx, g)
	if errors.Is(err, coordinator.ErrGroupNotEmpty) {
		return nil, &hintError{msg: fmt.Sprintf("group %q has live members: stop its consumers (or wait for their session timeout) before deleting it", g),
			err: errors.Join(ErrGroupHasMembers, err)}
	}
	if errors.Is(err, coordinator.ErrNotFound) {
		return nil, &hintError{msg: fmt.Sprintf("group %q does not exist", g), err: err}
	}
	if err != nil {
		return nil, err
	}
	return &stratav1.DeleteGroupResponse{}, nil
}

// ResetOffsets moves a group's positions while it has no live members.
func (a *Agent) ResetOffsets(ctx context.Context, m *stratav1.ResetOffsetsRequest) (*stratav1.ResetOffsetsResponse, error) {
	g := m.GetGroup()
	if err := validGroupName(g); err != nil {
		return nil, err
	}
	if m.GetTo() == nil {
		return nil, invalidf("say where to reset to: earliest, latest, timestamp or offset")
	}
	if off, ok := m.GetTo().(*stratav1.ResetOffsetsRequest_Offset); ok && off.Offset < 0 {
		return nil, invalidf("offset %d is negative", off.Offset)
	}
	targets, err := partitionSetFromProto(m.GetPartitions())
	if err != nil {
		return nil, err
	}
	for _, name := range m.GetTopics() {
		a.topics.invalidate(name) // a cached topic may be one deleted since
		t, err := a.topics.get(ctx, name)
		if err != nil {
			return nil, err
		}
		for p := range t.Config.Partitions {
			targets.add(coordinator.TopicPartition{Topic: name, Partition: p})
		}
	}
	if targets.len() == 0 {
		return nil, invalidf("name the topics or partitions to reset")
	}
	live, err := a.liveMembers(ctx, g)
	if err != nil {
		return nil, err
	}
	if len(live) > 0 {
		return nil, &hintError{msg: fmt.Sprintf("group %q has %d live members: stop its consumers (or wait for their session timeout) before resetting its offsets", g, len(live)),
			err: ErrGroupHasMembers}
	}
	offsets := map[coordinator.TopicPartition]coordinator.CommittedOffset{}
	refreshed := map[string]bool{}
	for _, tp := range targets.list() {
		if !refreshed[tp.Topic] {
			a.topics.invalidate(tp.Topic) // a cached topic may be one deleted since
			refreshed[tp.Topic] = true
		}
		t, err := a.partitionTopic(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return nil, err
		}
		st, err := a.index.PartitionState(ctx, t.ID, tp.Partition)
		if err != nil {
			return nil, err
		}
		var off int64
		switch to := m.GetTo().(type) {
		case *stratav1.ResetOffsetsRequest_Earliest:
			off = st.LogStartOffset
		case *stratav1.ResetOffsetsRequest_Latest:
			off = st.HighWatermark
		case *stratav1.ResetOffsetsRequest_Offset:
			off = min(max(to.Offset, st.LogStartOffset), st.HighWatermark)
		case *stratav1.ResetOffsetsRequest_Timestamp:
			if off, err = a.offsetForTime(ctx, t, tp.Partition, millisCeil(to.Timestamp), st); err != nil {
				return nil, err
			}
		}
		offsets[tp] = coordinator.CommittedOffset{Offset: off, TopicID: t.ID}
	}
	if !m.GetDryRun() {
		if err := a.index.CommitOffsets(ctx, g, nil, offsets); err != nil {
			return nil, err
		}
	}
	return &stratav1.ResetOffsetsResponse{Offsets: offsetsToProto(offsets)}, nil
}

func partitionSetFromProto(in []*stratav1.TopicPartitions) (partitionSet, error) {
	s := partitionSet{}
	for _, tps := range in {
		if tps.GetTopic() == "" {
			return nil, invalidf("empty topic name in a partition list")
		}
		for _, p := range tps.GetPartitions() {
			if p < 0 {
				return nil, invalidf("partition %d of %q is negative", p, tps.GetTopic())
			}
			s.add(coordinator.TopicPartition{Topic: tps.GetTopic(), Partition: p})
		}
	}
	return s, nil
}

func partitionSetToProto(s partitionSet) []*stratav1.TopicPartitions {
	out := make([]*stratav1.TopicPartitions, 0, len(s))
	for _, t := range slices.Sorted(maps.Keys(s)) {
		if len(s[t]) > 0 {
			out = append(out, &stratav1.TopicPartitions{Topic: t, Partitions: slices.Clone(s[t])})
		}
	}
	return out
}

func offsetsToProto(m map[coordinator.TopicPartition]coordinator.CommittedOffset) []*stratav1.PartitionOffset {
	out := make([]*stratav1.PartitionOffset, 0, len(m))
	for _, tp := range slices.SortedFunc(maps.Keys(m), coordinator.CompareTopicPartitions) {
		o := m[tp]
		po := &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset, Metadata: o.Metadata}
		if o.TopicID != uuid.Nil {
			po.TopicId = o.TopicID.String()
		}
		if !o.CommitTime.IsZero() {
			po.CommitTime = timestamppb.New(o.CommitTime)
		}
		out = append(out, po)
	}
	return out
}
