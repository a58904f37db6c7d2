package agent

// The core's transactions (KIP-98) as a Go API, for protocol front-ends
// whose clients speak Kafka's transaction APIs (the Kafka listener, package
// kafka, through kafka/agentcore): the same calls, index state, markers and
// checks as ProducerService's transaction RPCs (txn.go), with Go types in
// place of the Connect messages, and the check of a transactional
// RecordBatch a Kafka client sends whole.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// ErrUnknownTransactionalID is a transaction call for a transactional id
// that no producer holds (never initialised, or its state expired):
// Kafka's INVALID_PRODUCER_ID_MAPPING. It is a coordinator.ErrNotFound.
var ErrUnknownTransactionalID = fmt.Errorf("%w: unknown transactional id", coordinator.ErrNotFound)

// TxnProducer is the producer of a transaction call: the transactional id
// and the producer id and epoch InitTxnProducer answered for it.
type TxnProducer struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

func (p TxnProducer) proto() *stratav1.TxnProducer {
	return &stratav1.TxnProducer{TransactionalId: p.TransactionalID, ProducerId: p.ProducerID, ProducerEpoch: int32(p.ProducerEpoch)}
}

// TxnTopicPartition names one partition of a transaction call.
type TxnTopicPartition struct {
	Topic     string
	Partition int32
}

// TxnOffset is one offset a transaction stages for a group.
type TxnOffset struct {
	Topic     string
	Partition int32
	Offset    int64
	Metadata  string
}

// InitTxnProducer is InitProducerId for a transactional id (KIP-98): the
// id's producer with its epoch bumped (a new producer id at epoch 0 the
// first time), which fences every older epoch; a transaction an older epoch
// left open is aborted (or, already committing, committed) before it
// returns. timeout is the transaction timeout, more than 0 and at most
// coordinator.MaxTxnTimeout (ErrInvalid otherwise). Errors also: the
// index's (coordinator.ErrConcurrentTransactions, ErrUnavailable).
func (a *Agent) InitTxnProducer(ctx context.Context, transactionalID string, timeout time.Duration) (int64, int16, error) {
	if transactionalID == "" {
		return 0, 0, invalidf("transactional id is empty")
	}
	return a.initProducerID(ctx, &stratav1.InitProducerIdRequest{TransactionalId: transactionalID, TransactionTimeout: durationpb.New(timeout)})
}

// AddTxnPartitions is AddPartitionsToTxn (txn.go) with Go types: all or
// none of the partitions are added. Errors: AddPartitionsToTxn's, and
// ErrUnknownTransactionalID.
func (a *Agent) AddTxnPartitions(ctx context.Context, p TxnProducer, parts []TxnTopicPartition) error {
	req := &stratav1.AddPartitionsToTxnRequest{Producer: p.proto()}
	for _, tp := range parts {
		i := slices.IndexFunc(req.Topics, func(t *stratav1.TxnTopicPartitions) bool { return t.GetTopic() == tp.Topic })
		if i < 0 {
			i = len(req.Topics)
			req.Topics = append(req.Topics, &stratav1.TxnTopicPartitions{Topic: tp.Topic})
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, tp.Partition)
	}
	_, err := a.AddPartitionsToTxn(ctx, req)
	return unknownTxnID(p.TransactionalID, err)
}

// AddTxnOffsets is AddOffsetsToTxn (txn.go) with Go types. Errors:
// AddOffsetsToTxn's, and ErrUnknownTransactionalID.
func (a *Agent) AddTxnOffsets(ctx context.Context, p TxnProducer, group string) error {
	_, err := a.AddOffsetsToTxn(ctx, &stratav1.AddOffsetsToTxnRequest{Producer: p.proto(), Group: group})
	return unknownTxnID(p.TransactionalID, err)
}

// CommitTxnOffsets is TxnOffsetCommit (txn.go) with Go types: the offsets
// are staged all or none. Errors: TxnOffsetCommit's, and
// ErrUnknownTransactionalID.
func (a *Agent) CommitTxnOffsets(ctx context.Context, p TxnProducer, group string, offsets []TxnOffset) error {
	req := &stratav1.TxnOffsetCommitRequest{Producer: p.proto(), Group: group}
	for _, o := range offsets {
		req.Offsets = append(req.Offsets, &stratav1.TxnOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata})
	}
	_, err := a.TxnOffsetCommit(ctx, req)
	return unknownTxnID(p.TransactionalID, err)
}

// FinishTxn is EndTxn (txn.go) with Go types: it returns once the markers
// are committed in every partition of the transaction and its staged
// offsets are committed or dropped. Errors: EndTxn's, and
// ErrUnknownTransactionalID.
func (a *Agent) FinishTxn(ctx context.Context, p TxnProducer, commit bool) error {
	_, err := a.EndTxn(ctx, &stratav1.EndTxnRequest{Producer: p.proto(), Commit: commit})
	return unknownTxnID(p.TransactionalID, err)
}

// unknownTxnID marks the index's not-found of a transactional id as
// ErrUnknownTransactionalID; the agent's own unknown-topic errors stay.
func unknownTxnID(tid string, err error) error {
	if err == nil || errors.Is(err, ErrUnknownTopicOrPartition) || !errors.Is(err, coordinator.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: %q: %w", ErrUnknownTransactionalID, tid, err)
}

// AppendTxnBatch is AppendBatch for a transactional RecordBatch (KIP-98)
// of the transactional id tid: before the batch is appended, as the
// Connect API's transactional Produce does (checkTxnProduce), the batch's
// producer id and epoch must be tid's current ones (coordinator.ErrFenced
// otherwise; ErrUnknownTransactionalID for an id no producer holds) and
// the partition must have been added to tid's open transaction
// (coordinator.ErrInvalidTxnState, Kafka's INVALID_TXN_STATE). The check
// and the append are not one step: as in Kafka before KIP-890 part 2, a
// batch still in flight when its producer ends the transaction may land
// after the markers; clients wait for their produces before EndTxn. A
// batch without the transactional flag is ErrInvalid.
func (a *Agent) AppendTxnBatch(ctx context.Context, tid, topic string, partition int32, raw []byte) (wait func(context.Context) (BatchAppended, error), err error) {
	// The header's attributes (at byte 21), producer id (43) and epoch
	// (51); AppendBatch checks the rest of the framing.
	const headerBytes = 61
	if len(raw) < headerBytes {
		return a.AppendRecordBatch(ctx, topic, partition, raw)
	}
	if binary.BigEndian.Uint16(raw[21:])&0x10 == 0 {
		return nil, invalidf("topic %q partition %d: AppendTxnBatch of a batch without the transactional flag", topic, partition)
	}
	if tid == "" {
		return nil, invalidf("topic %q partition %d: a transactional batch needs its transactional id", topic, partition)
	}
	t, err := a.partitionTopic(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	pid, epoch := int64(binary.BigEndian.Uint64(raw[43:])), int16(binary.BigEndian.Uint16(raw[51:]))
	txn, err := a.currentTxn(ctx, tid, pid, epoch)
	if err != nil {
		return nil, unknownTxnID(tid, err)
	}
	if txn.State != coordinator.TxnOngoing {
		return nil, fmt.Errorf("%w: transactional id %q has no open transaction (state %s): call AddPartitionsToTxn first",
			coordinator.ErrInvalidTxnState, tid, txn.State)
	}
	if !slices.Contains(txn.Partitions, coordinator.TxnPartition{TopicID: t.ID, Partition: partition}) {
		return nil, fmt.Errorf("%w: topic %q partition %d was not added to the transaction of %q: call AddPartitionsToTxn first",
			coordinator.ErrInvalidTxnState, topic, partition, tid)
	}
	return a.AppendRecordBatch(ctx, topic, partition, raw)
}
