package client

// Transactions (Kafka's transactional producer, KIP-98): a Producer made
// with TransactionalID calls InitTransactions once, then, per transaction,
// BeginTransaction, Produce (each partition is added to the transaction
// with AddPartitionsToTxn before its first record goes), optionally
// SendOffsetsToTransaction (consume-transform-produce), and
// CommitTransaction or AbortTransaction. read_committed readers see the
// transaction's records once it commits, never if it aborts.
//
// A transaction whose records could not all be written cannot commit:
// CommitTransaction fails and the caller aborts. An epoch bump (the
// producer gave up on a batch) aborts the open transaction on the agent, as
// a new InitProducerId with the transactional id does; the commit then
// fails the same way.
//
// As Kafka's transactional producer does, the transaction RPCs
// (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
// EndTxn) are retried on retriable errors (UNAVAILABLE, a lost connection,
// CONCURRENT_TRANSACTIONS) until DeliveryTimeout passes: an agent that
// dies or restarts meanwhile costs a pause, not the transaction. Each is
// safe to repeat: the index adds a partition or group once, stages the
// same offsets again, and answers a retried EndTxn whose transaction
// already ended with the same outcome in the same epoch with success
// (the other outcome is INVALID_TXN_STATE).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// ErrNoTransaction: a transactional producer's Produce, commit or abort
// outside BeginTransaction ... CommitTransaction/AbortTransaction.
var ErrNoTransaction = errors.New("client.Producer: no transaction is open")

// ErrTxnOutcomeUnknown wraps a CommitTransaction or AbortTransaction error
// from EndTxn itself that was still retriable when DeliveryTimeout (or the
// context) ended its retries: the agent may have ended the transaction or
// not. Calling CommitTransaction (or AbortTransaction) again finds out:
// the index answers a repeated EndTxn of an ended transaction with success.
var ErrTxnOutcomeUnknown = errors.New("client.Producer: the transaction's outcome is unknown")

// TransactionalID makes the producer transactional (Kafka's
// transactional.id): it keeps one producer id across restarts, fencing the
// producers that used the id before, and writes in transactions, each open
// for at most timeout (Kafka's transaction.timeout.ms; 0 for the agent's
// default, 60s; at most 15 minutes) before an agent aborts it. It needs
// idempotence (the default).
func TransactionalID(id string, timeout time.Duration) ProducerOpt {
	return producerOptFunc(func(c *producerConfig) { c.transactionalID, c.txnTimeout = id, timeout })
}

// txnState is a transactional producer's client side of its transaction.
type txnState struct {
	mu     sync.Mutex
	open   bool
	epoch  int16                       // the epoch the transaction began in
	parts  map[*producerPartition]bool // added to the transaction
	groups map[string]bool
	err    error // the first record that failed in the transaction
}

func (s *txnState) fail(err error) {
	s.mu.Lock()
	if s.open && s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// transactional reports whether the producer was made with TransactionalID.
func (p *Producer) transactional() bool { return p.cfg.transactionalID != "" }

// initProducerIDRequest is the InitProducerId request of this producer:
// pid to bump, or, for a transactional producer, its transactional id
// (which bumps the epoch too, and aborts an open transaction).
func (p *Producer) initProducerIDRequest(pid int64) *stratav1.InitProducerIdRequest {
	if !p.transactional() {
		return &stratav1.InitProducerIdRequest{ProducerId: pid}
	}
	req := &stratav1.InitProducerIdRequest{TransactionalId: p.cfg.transactionalID}
	if p.cfg.txnTimeout > 0 {
		req.TransactionTimeout = durationpb.New(p.cfg.txnTimeout)
	}
	if pid != 0 {
		p.txn.fail(errors.New("client.Producer: the producer's epoch was bumped, which aborted the transaction"))
	}
	return req
}

// InitTransactions gets the producer's id and epoch for its transactional
// id (Kafka's initTransactions): the producers that used the id before are
// fenced, and a transaction one of them left open is aborted. Call it once,
// before the first BeginTransaction.
func (p *Producer) InitTransactions(ctx context.Context) error {
	if !p.transactional() {
		return errors.New("client.Producer: InitTransactions needs TransactionalID")
	}
	var resp *connect.Response[stratav1.InitProducerIdResponse]
	err := p.retryTxnRPC(ctx, "InitProducerId", func() (err error) {
		resp, err = p.svc.InitProducerId(ctx, connect.NewRequest(p.initProducerIDRequest(0)))
		return err
	})
	if err != nil {
		return fmt.Errorf("init transactions: %w", err)
	}
	p.mu.Lock()
	p.pid, p.epoch = resp.Msg.GetProducerId(), int16(resp.Msg.GetProducerEpoch())
	p.needID = false
	p.mu.Unlock()
	return nil
}

// BeginTransaction opens a transaction (Kafka's beginTransaction): the
// records produced until CommitTransaction or AbortTransaction belong to it.
func (p *Producer) BeginTransaction() error {
	if !p.transactional() {
		return errors.New("client.Producer: transactions need TransactionalID")
	}
	p.mu.Lock()
	pid, epoch := p.pid, p.epoch
	p.mu.Unlock()
	if pid == 0 {
		return errors.New("client.Producer: call InitTransactions before BeginTransaction")
	}
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	if p.txn.open {
		return errors.New("client.Producer: a transaction is already open")
	}
	p.txn.open, p.txn.epoch, p.txn.err = true, epoch, nil
	p.txn.parts, p.txn.groups = map[*producerPartition]bool{}, map[string]bool{}
	return nil
}

// txnProducer is the producer's identity for the transaction RPCs.
func (p *Producer) txnProducer() *stratav1.TxnProducer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &stratav1.TxnProducer{TransactionalId: p.cfg.transactionalID, ProducerId: p.pid, ProducerEpoch: int32(p.epoch)}
}

// addToTxn adds part to the open transaction (AddPartitionsToTxn) unless it
// is in already, and wraps promise so a failed record fails the commit.
func (p *Producer) addToTxn(ctx context.Context, part *producerPartition, promise func(*Record, error)) (func(*Record, error), error) {
	p.txn.mu.Lock()
	open, added := p.txn.open, p.txn.parts[part]
	p.txn.mu.Unlock()
	if !open {
		return nil, ErrNoTransaction
	}
	if !added {
		req := &stratav1.AddPartitionsToTxnRequest{Producer: p.txnProducer(),
			Topics: []*stratav1.TxnTopicPartitions{{Topic: part.topic, Partitions: []int32{part.partition}}}}
		err := p.retryTxnRPC(ctx, "AddPartitionsToTxn", func() error {
			_, err := p.svc.AddPartitionsToTxn(ctx, connect.NewRequest(req))
			return err
		})
		if err != nil {
			err = fmt.Errorf("add partition %d of %q to the transaction: %w", part.partition, part.topic, err)
			p.txn.fail(err)
			return nil, err
		}
		p.txn.mu.Lock()
		p.txn.parts[part] = true
		p.txn.mu.Unlock()
	}
	return func(r *Record, err error) {
		if err != nil {
			p.txn.fail(err)
		}
		promise(r, err)
	}, nil
}

// SendOffsetsToTransaction commits the group's offsets with the transaction
// (Kafka's sendOffsetsToTransaction: AddOffsetsToTxn, then
// TxnOffsetCommit): the group's committed offsets become these when the
// transaction commits, and stay as they were if it aborts. The agent does
// not check who sends them; SendGroupOffsetsToTransaction has a member's
// commit checked against the group (KIP-447).
func (p *Producer) SendOffsetsToTransaction(ctx context.Context, group string, offsets []PartitionOffset) error {
	return p.SendGroupOffsetsToTransaction(ctx, GroupMetadata{Group: group}, offsets)
}

// SendGroupOffsetsToTransaction is SendOffsetsToTransaction for a member of
// the group, as Kafka's sendOffsetsToTransaction with a
// ConsumerGroupMetadata (KIP-447): the agent stages the offsets only if
// m.MemberID is still in the group at m.MemberEpoch, in the same index
// step, so a member whose partitions moved on in a rebalance (a zombie)
// cannot commit offsets for them. Get m from GroupConsumer.GroupMetadata
// just before. A refused member is a FAILED_PRECONDITION naming
// UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH or FENCED_MEMBER_EPOCH, not
// retried: abort the transaction, and poll the consumer so it rejoins.
func (p *Producer) SendGroupOffsetsToTransaction(ctx context.Context, m GroupMetadata, offsets []PartitionOffset) error {
	group := m.Group
	p.txn.mu.Lock()
	open, added := p.txn.open, p.txn.groups[group]
	p.txn.mu.Unlock()
	if !open {
		return ErrNoTransaction
	}
	id := p.txnProducer()
	if !added {
		req := &stratav1.AddOffsetsToTxnRequest{Producer: id, Group: group}
		if err := p.retryTxnRPC(ctx, "AddOffsetsToTxn", func() error {
			_, err := p.svc.AddOffsetsToTxn(ctx, connect.NewRequest(req))
			return err
		}); err != nil {
			return fmt.Errorf("add group %q to the transaction: %w", group, err)
		}
		p.txn.mu.Lock()
		p.txn.groups[group] = true
		p.txn.mu.Unlock()
	}
	req := &stratav1.TxnOffsetCommitRequest{Producer: id, Group: group, MemberId: m.MemberID}
	if m.MemberID != "" {
		req.MemberEpoch = m.MemberEpoch
	}
	for _, o := range offsets {
		req.Offsets = append(req.Offsets, &stratav1.TxnOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset})
	}
	if err := p.retryTxnRPC(ctx, "TxnOffsetCommit", func() error {
		_, err := p.svc.TxnOffsetCommit(ctx, connect.NewRequest(req))
		return err
	}); err != nil {
		return fmt.Errorf("commit offsets of group %q in the transaction: %w", group, err)
	}
	return nil
}

// CommitTransaction waits for every record produced in the transaction
// (Flush), then commits it (EndTxn): its records become visible to
// read_committed readers and its offsets the groups' committed ones. It
// fails, committing nothing, when a record of the transaction failed or
// the producer's epoch was bumped meanwhile: call AbortTransaction then.
// EndTxn is retried on retriable errors until DeliveryTimeout; an error
// left after that leaves the outcome unknown (the commit may have been
// recorded): CommitTransaction may be called again.
func (p *Producer) CommitTransaction(ctx context.Context) error {
	return p.endTxn(ctx, true)
}

// AbortTransaction waits for the records produced in the transaction to
// be answered (Flush), then aborts it (EndTxn): read_committed readers
// never see its records, and its offsets are dropped.
func (p *Producer) AbortTransaction(ctx context.Context) error {
	return p.endTxn(ctx, false)
}

func (p *Producer) endTxn(ctx context.Context, commit bool) error {
	p.txn.mu.Lock()
	open := p.txn.open
	p.txn.mu.Unlock()
	if !open {
		return ErrNoTransaction
	}
	// Every produce answered before the marker: a batch landing after it
	// would open a transaction on its partition that nothing closes.
	if err := p.Flush(ctx); err != nil {
		return fmt.Errorf("flush the transaction: %w", err)
	}
	p.txn.mu.Lock()
	txnErr, began := p.txn.err, p.txn.epoch
	if len(p.txn.parts) == 0 && len(p.txn.groups) == 0 && txnErr == nil {
		// Nothing was added: the agent knows of no transaction to end.
		p.txn.open, p.txn.parts, p.txn.groups = false, nil, nil
		p.txn.mu.Unlock()
		return nil
	}
	p.txn.mu.Unlock()
	id := p.txnProducer()
	if commit && txnErr != nil {
		return fmt.Errorf("client.Producer: the transaction cannot commit, abort it: %w", txnErr)
	}
	if commit && int16(id.GetProducerEpoch()) != began {
		return errors.New("client.Producer: the transaction cannot commit, abort it: the producer's epoch was bumped, which aborted it")
	}
	err := p.retryTxnRPC(ctx, "EndTxn", func() error {
		_, err := p.svc.EndTxn(ctx, connect.NewRequest(&stratav1.EndTxnRequest{Producer: id, Commit: commit}))
		return err
	})
	if err != nil && !commit && int16(id.GetProducerEpoch()) != began {
		// The epoch bump aborted it already.
		err = nil
	}
	if err != nil && retriable(connect.CodeOf(err)) {
		return fmt.Errorf("end transaction: %w: %w", ErrTxnOutcomeUnknown, err)
	}
	if err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	p.txn.mu.Lock()
	p.txn.open, p.txn.parts, p.txn.groups, p.txn.err = false, nil, nil, nil
	p.txn.mu.Unlock()
	return nil
}

// retryTxnRPC runs call, a transaction RPC that is safe to repeat, again
// after each retriable error (the producer's retriable codes: UNAVAILABLE
// for a lost connection or a restarting agent, ABORTED for Kafka's
// CONCURRENT_TRANSACTIONS, ...) with RetryBackoff between attempts, until
// it succeeds, fails otherwise, ctx ends, or DeliveryTimeout has passed
// since the first attempt; it returns the last error.
func (p *Producer) retryTxnRPC(ctx context.Context, rpc string, call func() error) error {
	deadline := time.Now().Add(p.cfg.deliveryTimeout)
	backoff := p.cfg.retryBackoffMin
	for {
		err := call()
		if err == nil || ctx.Err() != nil || !retriable(connect.CodeOf(err)) {
			return err
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("%s: still failing after the delivery timeout %s: %w", rpc, p.cfg.deliveryTimeout, err)
		}
		p.log.Warn(rpc+" failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, p.cfg.retryBackoffMax)
	}
}

// isolationLevel is the fetch isolation of GroupConsumerConfig.ReadCommitted.
func isolationLevel(readCommitted bool) stratav1.IsolationLevel {
	if readCommitted {
		return stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED
	}
	return stratav1.IsolationLevel_ISOLATION_LEVEL_READ_UNCOMMITTED
}

// SeekToCommitted moves the member's position in each of parts that it
// owns (every owned partition when parts is empty) back to the group's
// committed offset, or where the reset policy says when there is none
// usable, and drops the records fetched past it (Kafka's consumer.seek to
// consumer.committed). Partitions it does not own are left out.
//
// A consume-transform-produce loop (Kafka's exactly-once pattern, KIP-98)
// calls it after a transaction that carried its offsets aborted, so the
// records are read and processed again; and in OnAssigned after its
// transactional producer for the new partitions ran InitTransactions,
// which finishes (commits or aborts) what a previous owner's producer left
// open, so that the position read is the one that transaction left. Call
// it from the goroutine that calls Poll, or inside a callback.
func (c *GroupConsumer) SeekToCommitted(ctx context.Context, parts ...TopicPartition) error {
	if c.isClosed() {
		return ErrClosed
	}
	if len(parts) == 0 {
		parts = sortedParts(c.active)
	}
	parts = slices.DeleteFunc(slices.Clone(parts), func(tp TopicPartition) bool { return c.active[tp] == nil })
	if len(parts) == 0 {
		return nil
	}
	starts, committed, topicIDs, err := c.startPositions(ctx, parts)
	if err != nil {
		return fmt.Errorf("seek to the committed offsets: %w", err)
	}
	c.stop(parts)
	for _, tp := range parts {
		st := c.active[tp]
		running := st.fetcher != nil
		st.returned, st.processed, st.committed, st.topicID, st.fetcher = starts[tp], starts[tp], committed[tp], topicIDs[tp], nil
		if running {
			st.fetcher = c.startFetcher(tp, st.returned, st.topicID)
		}
	}
	return nil
}
