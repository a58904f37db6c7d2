package kafka

import (
	"context"
	"errors"
)

// TxnCore is the core's transactions (KIP-98) as the Kafka front-end needs
// them: the same index state and markers as the Connect API's native
// transactions, so a transaction begun by a Kafka producer is one a native
// read_committed reader sees ending, and the other way round. Any agent
// serves any transactional id: the state machine lives in the index, and
// every call is fenced there by the producer id and epoch InitProducerID
// handed out for the transactional id.
//
// Errors, matched with errors.Is: ErrProducerFenced (the producer id and
// epoch are not the transactional id's current ones: a newer producer took
// it), ErrInvalidProducerIDMapping (no producer ever took the transactional
// id, or its state expired), ErrInvalidTxnState (the call does not apply to
// the transaction's state: EndTxn with nothing open, a commit of a
// transaction being aborted, a TxnOffsetCommit of a group not added),
// ErrConcurrentTransactions (the previous transaction is still completing;
// retriable), ErrUnknownTopicOrPartition, ErrUnavailable.
type TxnCore interface {
	// AddPartitionsToTxn adds partitions to the producer's transaction,
	// opening it if none is open (Kafka's AddPartitionsToTxn v0-v3). All
	// or none are added.
	AddPartitionsToTxn(ctx context.Context, p TxnProducer, partitions []TopicPartition) error
	// AddOffsetsToTxn adds a group whose offsets the transaction commits
	// (Kafka's AddOffsetsToTxn), opening the transaction if none is open.
	AddOffsetsToTxn(ctx context.Context, p TxnProducer, group string) error
	// TxnOffsetCommit stages offsets of a group added with AddOffsetsToTxn:
	// they become the group's committed offsets when the transaction
	// commits, and are dropped when it aborts (Kafka's TxnOffsetCommit).
	// The member (v3, KIP-447) is checked as OffsetCommit checks one, in
	// the same step as the staging; TxnGroupMember{Generation: -1} checks
	// nothing. Errors also: ErrOffsetMetadataTooLarge (all or none are
	// staged), ErrUnknownMemberID, ErrIllegalGeneration,
	// ErrFencedInstanceID.
	TxnOffsetCommit(ctx context.Context, p TxnProducer, group string, member TxnGroupMember, offsets map[TopicPartition]CommittedOffset) error
	// EndTxn commits or aborts the producer's open transaction: it returns
	// once the control records (markers) are in every partition of the
	// transaction and the staged offsets are committed or dropped. Safe to
	// repeat after a failure (ErrUnavailable, a timeout).
	EndTxn(ctx context.Context, p TxnProducer, commit bool) error
}

// TxnGroupMember is the group member a TxnOffsetCommit (v3+, KIP-447)
// commits for: its member id, group instance id ("" for none) and
// generation (a consumer group's member: its member epoch). Generation -1
// with no member id and no instance id names no member (clients before
// KIP-447).
type TxnGroupMember struct {
	MemberID   string
	InstanceID string
	Generation int32
}

// TxnProducer is the transactional producer a transaction call comes from.
type TxnProducer struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

// The transaction errors a Core returns (see TxnCore); each maps to one Kafka
// error code in errors.go, named in its comment.
var (
	ErrProducerFenced           = errors.New("producer fenced")                          // PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before KIP-588's versions)
	ErrInvalidProducerIDMapping = errors.New("unknown transactional id")                 // INVALID_PRODUCER_ID_MAPPING
	ErrInvalidTxnState          = errors.New("invalid transaction state")                // INVALID_TXN_STATE
	ErrConcurrentTransactions   = errors.New("previous transaction is still completing") // CONCURRENT_TRANSACTIONS (retriable)
	ErrInvalidTxnTimeout        = errors.New("invalid transaction timeout")              // INVALID_TRANSACTION_TIMEOUT
)
