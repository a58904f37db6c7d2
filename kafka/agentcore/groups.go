package agentcore

import (
	"context"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
)

// Consumer groups: kafka.GroupCore over the agent's classic groups
// (agent/core_groups.go) and the committed offsets it shares with the
// Connect API's native groups.

func protocolsToAgent(in []kafka.GroupProtocol) []agent.ClassicProtocol {
	out := make([]agent.ClassicProtocol, len(in))
	for i, p := range in {
		out[i] = agent.ClassicProtocol{Name: p.Name, Metadata: p.Metadata}
	}
	return out
}

func membersToKafka(in []agent.ClassicMember) []kafka.GroupMember {
	var out []kafka.GroupMember
	for _, m := range in {
		km := kafka.GroupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost, Metadata: m.Metadata, Assignment: m.Assignment, Topics: m.Topics}
		if m.Assigned != nil {
			km.Assigned = toKafkaTPs(m.Assigned)
		}
		out = append(out, km)
	}
	return out
}

func tpsToIndex(in []kafka.TopicPartition) []coordinator.TopicPartition {
	var out []coordinator.TopicPartition
	for _, tp := range in {
		out = append(out, coordinator.TopicPartition{Topic: tp.Topic, Partition: tp.Partition})
	}
	return out
}

// JoinGroup implements kafka.GroupCore.
func (c *Core) JoinGroup(ctx context.Context, req kafka.JoinGroup) (kafka.JoinGroupResult, error) {
	res, err := c.a.JoinClassicGroup(ctx, agent.JoinRequest{
		Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID,
		ClientID: req.ClientID, ClientHost: req.ClientHost, ProtocolType: req.ProtocolType,
		Protocols: protocolsToAgent(req.Protocols), SessionTimeout: req.SessionTimeout,
		RebalanceTimeout: req.RebalanceTimeout, RequireKnownMemberID: req.RequireKnownMemberID,
		Topics: req.Topics,
	})
	return kafka.JoinGroupResult{
		Generation: res.Generation, ProtocolType: res.ProtocolType, Protocol: res.Protocol,
		LeaderID: res.LeaderID, MemberID: res.MemberID, Members: membersToKafka(res.Members),
	}, kafkaErr(err)
}

// SyncGroup implements kafka.GroupCore.
func (c *Core) SyncGroup(ctx context.Context, req kafka.SyncGroup) (kafka.SyncGroupResult, error) {
	var partitions map[string][]coordinator.TopicPartition
	if req.Partitions != nil {
		partitions = make(map[string][]coordinator.TopicPartition, len(req.Partitions))
		for id, tps := range req.Partitions {
			partitions[id] = tpsToIndex(tps)
		}
	}
	assignment, pt, p, err := c.a.SyncClassicGroup(ctx, agent.SyncRequest{
		Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID, Generation: req.Generation,
		ProtocolType: req.ProtocolType, Protocol: req.Protocol, Assignments: req.Assignments, Partitions: partitions,
	})
	return kafka.SyncGroupResult{ProtocolType: pt, Protocol: p, Assignment: assignment}, kafkaErr(err)
}

// Heartbeat implements kafka.GroupCore.
func (c *Core) Heartbeat(ctx context.Context, group, memberID, instanceID string, generation int32) error {
	return kafkaErr(c.a.HeartbeatClassicGroup(ctx, group, memberID, instanceID, generation))
}

// LeaveGroup implements kafka.GroupCore.
func (c *Core) LeaveGroup(ctx context.Context, group string, members []kafka.GroupMemberIdentity) ([]error, error) {
	who := make([]agent.MemberIdentity, len(members))
	for i, m := range members {
		who[i] = agent.MemberIdentity{MemberID: m.MemberID, InstanceID: m.InstanceID}
	}
	errs, err := c.a.LeaveClassicGroup(ctx, group, who)
	for i := range errs {
		errs[i] = kafkaErr(errs[i])
	}
	return errs, kafkaErr(err)
}

// CommitOffsets implements kafka.GroupCore.
func (c *Core) CommitOffsets(ctx context.Context, req kafka.OffsetCommit) (map[kafka.TopicPartition]error, error) {
	offsets := make(map[coordinator.TopicPartition]coordinator.CommittedOffset, len(req.Offsets))
	for tp, o := range req.Offsets {
		offsets[coordinator.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}] = coordinator.CommittedOffset{Offset: o.Offset, Metadata: o.Metadata, LeaderEpoch: leaderEpochToIndex(o.LeaderEpoch)}
	}
	errs, err := c.a.CommitKafkaOffsets(ctx, agent.KafkaOffsetCommit{
		Group: req.Group, MemberID: req.MemberID, InstanceID: req.InstanceID, Generation: req.Generation, Offsets: offsets,
	})
	if err != nil {
		return nil, kafkaErr(err)
	}
	out := make(map[kafka.TopicPartition]error, len(errs))
	for tp, e := range errs {
		out[kafka.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}] = kafkaErr(e)
	}
	return out, nil
}

// FetchOffsets implements kafka.GroupCore.
func (c *Core) FetchOffsets(ctx context.Context, group string, tps []kafka.TopicPartition) (map[kafka.TopicPartition]kafka.CommittedOffset, error) {
	got, err := c.a.GroupOffsets(ctx, group, tpsToIndex(tps))
	if err != nil {
		return nil, kafkaErr(err)
	}
	out := make(map[kafka.TopicPartition]kafka.CommittedOffset, len(got))
	for tp, o := range got {
		out[kafka.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}] = kafka.CommittedOffset{Offset: o.Offset, LeaderEpoch: leaderEpochToKafka(o.LeaderEpoch), Metadata: o.Metadata}
	}
	return out, nil
}

// PendingTxnOffsets implements kafka.GroupCore.
func (c *Core) PendingTxnOffsets(ctx context.Context, group string) (map[kafka.TopicPartition]bool, error) {
	got, err := c.a.PendingTxnOffsets(ctx, group)
	if err != nil {
		return nil, kafkaErr(err)
	}
	out := make(map[kafka.TopicPartition]bool, len(got))
	for tp := range got {
		out[kafka.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}] = true
	}
	return out, nil
}

// leaderEpochToIndex is a committed leader epoch as the index keeps it:
// nil for Kafka's -1 (none).
func leaderEpochToIndex(e int32) *int32 {
	if e < 0 {
		return nil
	}
	return &e
}

// leaderEpochToKafka is leaderEpochToIndex's inverse.
func leaderEpochToKafka(e *int32) int32 {
	if e == nil {
		return -1
	}
	return *e
}

func describeToKafka(d agent.GroupDescription) kafka.GroupDescription {
	return kafka.GroupDescription{Group: d.Group, Type: d.Type, State: d.State, ProtocolType: d.ProtocolType, Protocol: d.Protocol, Members: membersToKafka(d.Members)}
}

// DescribeGroup implements kafka.GroupCore.
func (c *Core) DescribeGroup(ctx context.Context, group string) (kafka.GroupDescription, error) {
	d, err := c.a.DescribeKafkaGroup(ctx, group)
	if err != nil {
		return kafka.GroupDescription{}, kafkaErr(err)
	}
	return describeToKafka(d), nil
}

// ListGroups implements kafka.GroupCore.
func (c *Core) ListGroups(ctx context.Context) ([]kafka.GroupDescription, error) {
	ds, err := c.a.KafkaGroups(ctx)
	if err != nil {
		return nil, kafkaErr(err)
	}
	out := make([]kafka.GroupDescription, len(ds))
	for i, d := range ds {
		out[i] = describeToKafka(d)
	}
	return out, nil
}

// DeleteGroup implements kafka.GroupCore.
func (c *Core) DeleteGroup(ctx context.Context, group string) error {
	return kafkaErr(c.a.DeleteKafkaGroup(ctx, group))
}

// DeleteOffsets implements kafka.GroupCore.
func (c *Core) DeleteOffsets(ctx context.Context, group string, tps []kafka.TopicPartition) error {
	return kafkaErr(c.a.DeleteGroupOffsets(ctx, group, tpsToIndex(tps)))
}
