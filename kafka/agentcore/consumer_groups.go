package agentcore

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
)

// KIP-848's consumer groups: kafka.ConsumerGroupCore over the agent's
// native server-side groups (agent/core_consumer_groups.go).

func toKafkaTPs(tps []coordinator.TopicPartition) []kafka.TopicPartition {
	out := make([]kafka.TopicPartition, len(tps))
	for i, tp := range tps {
		out[i] = kafka.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}
	}
	return out
}

// ConsumerGroupHeartbeat implements kafka.ConsumerGroupCore.
func (c *Core) ConsumerGroupHeartbeat(ctx context.Context, req kafka.ConsumerHeartbeat) (kafka.ConsumerHeartbeatResult, error) {
	h := agent.ConsumerHeartbeat{Group: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch, Topics: req.Topics, Regex: req.Regex,
		ClientID: req.ClientID, ClientHost: req.ClientHost, InstanceID: req.InstanceID, ServerAssignor: req.ServerAssignor}
	if req.Owned != nil {
		h.Owned = make([]coordinator.TopicPartition, len(req.Owned))
		for i, tp := range req.Owned {
			h.Owned[i] = coordinator.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}
		}
	}
	res, err := c.a.ConsumerGroupHeartbeat(ctx, h)
	if err != nil {
		return kafka.ConsumerHeartbeatResult{}, consumerGroupErr(err)
	}
	return kafka.ConsumerHeartbeatResult{MemberID: res.MemberID, MemberEpoch: res.MemberEpoch, Interval: res.Interval, Assigned: toKafkaTPs(res.Assigned)}, nil
}

// DescribeConsumerGroup implements kafka.ConsumerGroupCore.
func (c *Core) DescribeConsumerGroup(ctx context.Context, group string) (kafka.ConsumerGroupDescription, error) {
	d, err := c.a.DescribeConsumerGroup(ctx, group)
	if err != nil {
		return kafka.ConsumerGroupDescription{}, consumerGroupErr(err)
	}
	out := kafka.ConsumerGroupDescription{Group: d.Group, State: d.State, Epoch: d.Epoch, Assignor: d.Assignor}
	for _, m := range d.Members {
		out.Members = append(out.Members, kafka.ConsumerGroupMember{MemberID: m.MemberID, MemberEpoch: m.MemberEpoch,
			Topics: m.Topics, Regex: m.Regex, Assigned: toKafkaTPs(m.Assigned), Target: toKafkaTPs(m.Target),
			ClientID: m.ClientID, ClientHost: m.ClientHost, InstanceID: m.InstanceID})
	}
	return out, nil
}

// consumerGroupErr is kafkaErr for KIP-848's calls: the native groups'
// member errors are Kafka's UNKNOWN_MEMBER_ID and FENCED_MEMBER_EPOCH.
func consumerGroupErr(err error) error {
	switch {
	case errors.Is(err, agent.ErrUnknownMember):
		return fmt.Errorf("%w: %w", kafka.ErrUnknownMemberID, err)
	case errors.Is(err, agent.ErrFencedMemberEpoch), errors.Is(err, agent.ErrStaleMemberEpoch):
		return fmt.Errorf("%w: %w", kafka.ErrFencedMemberEpoch, err)
	}
	return kafkaErr(err)
}
