package agentcore

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
)

// Transactions: kafka.TxnCore over the agent's transaction calls
// (agent/core_txn.go), the same index state and markers as the Connect
// API's transactions.

func txnProducer(p kafka.TxnProducer) agent.TxnProducer {
	return agent.TxnProducer{TransactionalID: p.TransactionalID, ProducerID: p.ProducerID, ProducerEpoch: p.ProducerEpoch}
}

// AddPartitionsToTxn implements kafka.TxnCore.
func (c *Core) AddPartitionsToTxn(ctx context.Context, p kafka.TxnProducer, partitions []kafka.TopicPartition) error {
	parts := make([]agent.TxnTopicPartition, len(partitions))
	for i, tp := range partitions {
		parts[i] = agent.TxnTopicPartition{Topic: tp.Topic, Partition: tp.Partition}
	}
	return txnErr(c.a.AddTxnPartitions(ctx, txnProducer(p), parts))
}

// AddOffsetsToTxn implements kafka.TxnCore.
func (c *Core) AddOffsetsToTxn(ctx context.Context, p kafka.TxnProducer, group string) error {
	return txnErr(c.a.AddTxnOffsets(ctx, txnProducer(p), group))
}

// TxnOffsetCommit implements kafka.TxnCore, the committed leader epoch
// kept with each offset.
func (c *Core) TxnOffsetCommit(ctx context.Context, p kafka.TxnProducer, group string, member kafka.TxnGroupMember, offsets map[kafka.TopicPartition]kafka.CommittedOffset) error {
	offs := make([]agent.TxnOffset, 0, len(offsets))
	for tp, o := range offsets {
		offs = append(offs, agent.TxnOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset, Metadata: o.Metadata, LeaderEpoch: leaderEpochToIndex(o.LeaderEpoch)})
	}
	m := agent.TxnGroupMember{MemberID: member.MemberID, InstanceID: member.InstanceID, Generation: member.Generation}
	return txnErr(c.a.CommitTxnOffsets(ctx, txnProducer(p), group, m, offs))
}

// EndTxn implements kafka.TxnCore.
func (c *Core) EndTxn(ctx context.Context, p kafka.TxnProducer, commit bool) error {
	return txnErr(c.a.FinishTxn(ctx, txnProducer(p), commit))
}

// txnErr is kafkaErr for the transaction coordinator's calls, whose fenced
// producer is PRODUCER_FENCED (a produce's is INVALID_PRODUCER_EPOCH).
func txnErr(err error) error {
	if errors.Is(err, agent.ErrUnknownMemberID) || errors.Is(err, agent.ErrIllegalGeneration) || errors.Is(err, agent.ErrFencedInstanceID) {
		// A group member's (KIP-447), some of which also read as the
		// native API's fenced member epochs: not the producer's fence.
		return kafkaErr(err)
	}
	if err != nil && !errors.Is(err, agent.ErrUnknownTopicOrPartition) && errors.Is(err, coordinator.ErrFenced) {
		return fmt.Errorf("%w: %w", kafka.ErrProducerFenced, err)
	}
	return kafkaErr(err)
}
