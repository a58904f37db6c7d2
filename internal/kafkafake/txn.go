package kafkafake

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratabroker/strata/kafka"
)

// Transactions. The fake keeps each transactional id's producer, epoch and
// open transaction (its partitions, groups and staged offsets) and checks
// transactional batches against it, so the front-end's transaction APIs and
// real transactional clients run over it. It writes no control records:
// the last stable offset stays the high watermark and no transaction is
// ever listed as aborted (the agent core's markers and read_committed reads
// are tested over the agent, in kafka/agentcore).

type txnState struct {
	pid        int64
	epoch      int16
	ongoing    bool
	partitions map[kafka.TopicPartition]bool
	groups     map[string]bool
	staged     map[string]map[kafka.TopicPartition]kafka.CommittedOffset
	timeout    time.Duration
	started    time.Time // of the open transaction
	ended      string    // the state once a transaction ended: CompleteCommit or CompleteAbort
}

// begin marks the transaction open, from now if it was not.
func (t *txnState) begin() {
	if !t.ongoing {
		t.ongoing, t.started = true, time.Now()
	}
}

func (t *txnState) reset() {
	t.ongoing = false
	t.partitions, t.groups, t.staged = map[kafka.TopicPartition]bool{}, map[string]bool{}, map[string]map[kafka.TopicPartition]kafka.CommittedOffset{}
}

// initTxnLocked is InitProducerID for a transactional id: a new id gets a
// fresh producer id at epoch 0, a known one its epoch bumped, which fences
// the older epoch and aborts what it left open.
func (c *Core) initTxnLocked(req kafka.InitProducer) (int64, int16, error) {
	if req.TransactionTimeout <= 0 || req.TransactionTimeout > 15*time.Minute {
		return -1, -1, fmt.Errorf("%w: %s", kafka.ErrInvalidTxnTimeout, req.TransactionTimeout)
	}
	if c.txns == nil {
		c.txns = map[string]*txnState{}
	}
	t := c.txns[req.TransactionalID]
	if t == nil {
		c.nextPID++
		t = &txnState{pid: c.nextPID}
		c.txns[req.TransactionalID] = t
	} else {
		t.epoch++
	}
	t.reset()
	t.timeout, t.ended = req.TransactionTimeout, ""
	c.producers[t.pid] = t.epoch
	return t.pid, t.epoch, nil
}

// txnLocked returns p's transaction state if p is its current producer.
func (c *Core) txnLocked(p kafka.TxnProducer) (*txnState, error) {
	t := c.txns[p.TransactionalID]
	switch {
	case t == nil:
		return nil, fmt.Errorf("%w: %q", kafka.ErrInvalidProducerIDMapping, p.TransactionalID)
	case t.pid != p.ProducerID:
		return nil, fmt.Errorf("%w: transactional id %q belongs to producer %d, not %d", kafka.ErrInvalidProducerIDMapping, p.TransactionalID, t.pid, p.ProducerID)
	case t.epoch != p.ProducerEpoch:
		return nil, fmt.Errorf("%w: transactional id %q is at epoch %d, not %d", kafka.ErrProducerFenced, p.TransactionalID, t.epoch, p.ProducerEpoch)
	}
	return t, nil
}

// checkTxnBatchLocked checks a transactional batch against its transaction.
func (c *Core) checkTxnBatchLocked(name string, p int32, b kafka.Batch) error {
	t, err := c.txnLocked(kafka.TxnProducer{TransactionalID: b.TransactionalID, ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch})
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", kafka.ErrInvalidProducerEpoch, err)
	case !t.partitions[kafka.TopicPartition{Topic: name, Partition: p}]:
		return fmt.Errorf("%w: partition %d of %q was not added to the transaction", kafka.ErrInvalidTxnState, p, name)
	}
	return nil
}

// AddPartitionsToTxn implements kafka.TxnCore.
func (c *Core) AddPartitionsToTxn(_ context.Context, p kafka.TxnProducer, parts []kafka.TopicPartition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.txnLocked(p)
	if err != nil {
		return err
	}
	for _, tp := range parts {
		if _, _, err := c.partitionLocked(tp.Topic, tp.Partition); err != nil {
			return err
		}
	}
	for _, tp := range parts {
		t.partitions[tp] = true
	}
	t.begin()
	return nil
}

// AddOffsetsToTxn implements kafka.TxnCore.
func (c *Core) AddOffsetsToTxn(_ context.Context, p kafka.TxnProducer, group string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.txnLocked(p)
	if err != nil {
		return err
	}
	t.groups[group] = true
	t.begin()
	return nil
}

// TxnOffsetCommit implements kafka.TxnCore: the fake has no group
// members, so a member named (KIP-447) is unknown.
func (c *Core) TxnOffsetCommit(_ context.Context, p kafka.TxnProducer, group string, member kafka.TxnGroupMember, offsets map[kafka.TopicPartition]kafka.CommittedOffset) error {
	if member.MemberID != "" || member.InstanceID != "" || member.Generation >= 0 {
		return fmt.Errorf("%w: member %q: the fake core has no members", kafka.ErrUnknownMemberID, member.MemberID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.txnLocked(p)
	if err != nil {
		return err
	}
	if !t.groups[group] {
		return fmt.Errorf("%w: group %q was not added to the transaction", kafka.ErrInvalidTxnState, group)
	}
	for tp := range offsets {
		if _, _, err := c.partitionLocked(tp.Topic, tp.Partition); err != nil {
			return err
		}
	}
	if t.staged[group] == nil {
		t.staged[group] = map[kafka.TopicPartition]kafka.CommittedOffset{}
	}
	for tp, o := range offsets {
		t.staged[group][tp] = o
	}
	return nil
}

// EndTxn implements kafka.TxnCore: a commit moves the staged offsets into
// the groups' committed offsets.
func (c *Core) EndTxn(_ context.Context, p kafka.TxnProducer, commit bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.txnLocked(p)
	if err != nil {
		return err
	}
	if !t.ongoing {
		return fmt.Errorf("%w: transactional id %q has no open transaction", kafka.ErrInvalidTxnState, p.TransactionalID)
	}
	if commit {
		for g, offs := range t.staged {
			committed := c.groupOffsets(g)
			for tp, o := range offs {
				committed[tp] = o
			}
		}
	}
	t.reset()
	t.ended = "CompleteAbort"
	if commit {
		t.ended = "CompleteCommit"
	}
	return nil
}

// DescribeTransaction implements kafka.TxnDescribeCore.
func (c *Core) DescribeTransaction(_ context.Context, transactionalID string) (kafka.TxnDescription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.txns[transactionalID]
	if t == nil {
		return kafka.TxnDescription{}, fmt.Errorf("%w: %q", kafka.ErrTransactionalIDNotFound, transactionalID)
	}
	d := kafka.TxnDescription{State: "Empty", ProducerID: t.pid, ProducerEpoch: t.epoch, Timeout: t.timeout}
	switch {
	case t.ongoing:
		d.State, d.Started = "Ongoing", t.started
		d.Partitions = slices.SortedFunc(maps.Keys(t.partitions), func(a, b kafka.TopicPartition) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
	case t.ended != "":
		d.State = t.ended
	}
	return d, nil
}
