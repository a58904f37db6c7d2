package kafkafake

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/stratabroker/strata/kafka"
)

// Groups. The fake keeps committed offsets (simple commits only: generation
// -1, no member) so that tests of consumers that commit their own positions
// run over it; the classic group protocol (JoinGroup and the rest) is the
// agent core's state machine over the index, tested in package agent and,
// with real clients, in kafka/agentcore: here it answers ErrUnsupported.

func (c *Core) groupOffsets(group string) map[kafka.TopicPartition]kafka.CommittedOffset {
	if c.offsets == nil {
		c.offsets = map[string]map[kafka.TopicPartition]kafka.CommittedOffset{}
	}
	g := c.offsets[group]
	if g == nil {
		g = map[kafka.TopicPartition]kafka.CommittedOffset{}
		c.offsets[group] = g
	}
	return g
}

var errNoClassicGroups = fmt.Errorf("%w: the fake core has no classic group protocol", kafka.ErrUnsupported)

// JoinGroup implements kafka.GroupCore: unsupported.
func (c *Core) JoinGroup(context.Context, kafka.JoinGroup) (kafka.JoinGroupResult, error) {
	return kafka.JoinGroupResult{}, errNoClassicGroups
}

// SyncGroup implements kafka.GroupCore: unsupported.
func (c *Core) SyncGroup(context.Context, kafka.SyncGroup) (kafka.SyncGroupResult, error) {
	return kafka.SyncGroupResult{}, errNoClassicGroups
}

// Heartbeat implements kafka.GroupCore: unsupported.
func (c *Core) Heartbeat(context.Context, string, string, string, int32) error {
	return errNoClassicGroups
}

// LeaveGroup implements kafka.GroupCore: unsupported.
func (c *Core) LeaveGroup(context.Context, string, []kafka.GroupMemberIdentity) ([]error, error) {
	return nil, errNoClassicGroups
}

// CommitOffsets implements kafka.GroupCore: simple commits only.
func (c *Core) CommitOffsets(_ context.Context, req kafka.OffsetCommit) (map[kafka.TopicPartition]error, error) {
	if req.MemberID != "" || req.Generation >= 0 {
		return nil, fmt.Errorf("%w: member %q: the fake core has no members", kafka.ErrUnknownMemberID, req.MemberID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	errs := map[kafka.TopicPartition]error{}
	g := c.groupOffsets(req.Group)
	for tp, o := range req.Offsets {
		if _, _, err := c.partitionLocked(tp.Topic, tp.Partition); err != nil {
			errs[tp] = err
			continue
		}
		g[tp] = o
	}
	return errs, nil
}

// FetchOffsets implements kafka.GroupCore.
func (c *Core) FetchOffsets(_ context.Context, group string, tps []kafka.TopicPartition) (map[kafka.TopicPartition]kafka.CommittedOffset, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[kafka.TopicPartition]kafka.CommittedOffset{}
	for tp, o := range c.offsets[group] {
		if len(tps) == 0 || slices.Contains(tps, tp) {
			out[tp] = o
		}
	}
	return out, nil
}

// PendingTxnOffsets implements kafka.GroupCore: the partitions an open
// transaction staged offsets of for the group.
func (c *Core) PendingTxnOffsets(_ context.Context, group string) (map[kafka.TopicPartition]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[kafka.TopicPartition]bool{}
	for _, t := range c.txns {
		for tp := range t.staged[group] {
			out[tp] = true
		}
	}
	return out, nil
}

// DescribeGroup implements kafka.GroupCore: a group with offsets is Empty.
func (c *Core) DescribeGroup(_ context.Context, group string) (kafka.GroupDescription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.offsets[group]) == 0 {
		return kafka.GroupDescription{Group: group, State: "Dead"}, nil
	}
	return kafka.GroupDescription{Group: group, Type: "classic", State: "Empty"}, nil
}

// ListGroups implements kafka.GroupCore.
func (c *Core) ListGroups(context.Context) ([]kafka.GroupDescription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []kafka.GroupDescription
	for g, o := range c.offsets {
		if len(o) > 0 {
			out = append(out, kafka.GroupDescription{Group: g, Type: "classic", State: "Empty"})
		}
	}
	slices.SortFunc(out, func(a, b kafka.GroupDescription) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// DeleteGroup implements kafka.GroupCore.
func (c *Core) DeleteGroup(_ context.Context, group string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.offsets[group]) == 0 {
		return fmt.Errorf("%w: %q", kafka.ErrGroupIDNotFound, group)
	}
	delete(c.offsets, group)
	return nil
}

// DeleteOffsets implements kafka.GroupCore.
func (c *Core) DeleteOffsets(_ context.Context, group string, tps []kafka.TopicPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.offsets[group]) == 0 {
		return fmt.Errorf("%w: %q", kafka.ErrGroupIDNotFound, group)
	}
	for _, tp := range tps {
		delete(c.offsets[group], tp)
	}
	return nil
}

// ConsumerGroupHeartbeat implements kafka.ConsumerGroupCore: unsupported
// (KIP-848's groups are the agent core's, tested in kafka/agentcore).
func (c *Core) ConsumerGroupHeartbeat(context.Context, kafka.ConsumerHeartbeat) (kafka.ConsumerHeartbeatResult, error) {
	return kafka.ConsumerHeartbeatResult{}, fmt.Errorf("%w: the fake core has no consumer groups", kafka.ErrUnsupported)
}

// DescribeConsumerGroup implements kafka.ConsumerGroupCore: unsupported.
func (c *Core) DescribeConsumerGroup(context.Context, string) (kafka.ConsumerGroupDescription, error) {
	return kafka.ConsumerGroupDescription{}, fmt.Errorf("%w: the fake core has no consumer groups", kafka.ErrUnsupported)
}
