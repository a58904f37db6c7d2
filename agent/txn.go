package agent

// ProducerService's transaction RPCs: Kafka's transactions (KIP-98),
// AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn, over the
// index's per transactional id state (coordinator.Transactions). Any agent
// serves any transactional id: the state machine lives in the index, and
// every call is fenced there by the producer id and epoch.
//
// Ending a transaction (EndTxn, a new producer taking the transactional id
// in InitProducerId, or the reaper) has three steps, each safe to repeat:
// the index records the decision (Prepare*), a control batch (the marker)
// is appended to every partition of the transaction through the batcher,
// like any produced batch, and CompleteTxn moves the staged group offsets
// (commit) or drops them (abort). A failure after the decision leaves the
// transaction Prepare*: a retried EndTxn, InitProducerId or the reaper
// writes the markers again (a second marker finds nothing open on the
// partition and changes nothing) and completes it.
//
// Produce checks a transactional request's partitions against the
// transaction before appending (Kafka's INVALID_TXN_STATE). As in Kafka
// before KIP-890, a produce still in flight when its own producer calls
// EndTxn may land after the marker and open a transaction nothing closes;
// clients wait for their produces' answers before EndTxn.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// txnProducer checks a request's TxnProducer.
func txnProducer(p *stratav1.TxnProducer) (string, int64, int16, error) {
	switch {
	case p == nil || p.GetTransactionalId() == "":
		return "", 0, 0, invalidf("producer.transactional_id is required")
	case p.GetProducerId() <= 0:
		return "", 0, 0, invalidf("producer.producer_id %d: want the id InitProducerId answered", p.GetProducerId())
	case p.GetProducerEpoch() < 0 || p.GetProducerEpoch() > math.MaxInt16:
		return "", 0, 0, invalidf("producer.producer_epoch %d: want 0 to %d", p.GetProducerEpoch(), math.MaxInt16)
	}
	return p.GetTransactionalId(), p.GetProducerId(), int16(p.GetProducerEpoch()), nil
}

// AddPartitionsToTxn is ProducerService.AddPartitionsToTxn (strata/v1;
// KIP-98) in the core; the Connect front-end, agent/connectapi, wraps it.
// Errors: ErrInvalid, ErrUnknownTopicOrPartition, coordinator.ErrFenced,
// coordinator.ErrInvalidTxnState, coordinator.ErrConcurrentTransactions.
func (a *Agent) AddPartitionsToTxn(ctx context.Context, req *stratav1.AddPartitionsToTxnRequest) (*stratav1.AddPartitionsToTxnResponse, error) {
	tid, pid, epoch, err := txnProducer(req.GetProducer())
	if err != nil {
		return nil, err
	}
	var parts []coordinator.TxnPartition
	for i, tp := range req.GetTopics() {
		if len(tp.GetPartitions()) == 0 {
			return nil, invalidf("topics[%d] (%q) names no partitions", i, tp.GetTopic())
		}
		for _, p := range tp.GetPartitions() {
			topic, err := a.partitionTopic(ctx, tp.GetTopic(), p)
			if err != nil {
				return nil, err
			}
			parts = append(parts, coordinator.TxnPartition{TopicID: topic.ID, Partition: p})
		}
	}
	if len(parts) == 0 {
		return nil, invalidf("AddPartitionsToTxn needs at least one partition")
	}
	if _, err := a.index.AddPartitionsToTxn(ctx, tid, pid, epoch, parts); err != nil {
		return nil, err
	}
	return &stratav1.AddPartitionsToTxnResponse{}, nil
}

// AddOffsetsToTxn is ProducerService.AddOffsetsToTxn (strata/v1; KIP-98)
// in the core; the Connect front-end, agent/connectapi, wraps it. Errors:
// ErrInvalid, coordinator.ErrFenced, coordinator.ErrInvalidTxnState.
func (a *Agent) AddOffsetsToTxn(ctx context.Context, req *stratav1.AddOffsetsToTxnRequest) (*stratav1.AddOffsetsToTxnResponse, error) {
	tid, pid, epoch, err := txnProducer(req.GetProducer())
	if err != nil {
		return nil, err
	}
	if req.GetGroup() == "" {
		return nil, invalidf("group is required")
	}
	if _, err := a.index.AddOffsetsToTxn(ctx, tid, pid, epoch, req.GetGroup()); err != nil {
		return nil, err
	}
	return &stratav1.AddOffsetsToTxnResponse{}, nil
}

// TxnOffsetCommit is ProducerService.TxnOffsetCommit (strata/v1; KIP-98)
// in the core; the Connect front-end, agent/connectapi, wraps it: the
// offsets are staged all or none (stageTxnOffsets), for the member named
// (KIP-447) at its member epoch. Errors: ErrInvalid, ErrTooLarge (a
// *LimitError naming offset-metadata-max-bytes), coordinator.ErrFenced
// (the producer), coordinator.ErrInvalidTxnState (a group not added
// first), and the member's as the native groups answer them:
// ErrUnknownMember, ErrStaleMemberEpoch, ErrFencedMemberEpoch.
func (a *Agent) TxnOffsetCommit(ctx context.Context, m *stratav1.TxnOffsetCommitRequest) (*stratav1.TxnOffsetCommitResponse, error) {
	tid, pid, epoch, err := txnProducer(m.GetProducer())
	if err != nil {
		return nil, err
	}
	offsets := make([]TxnOffset, len(m.GetOffsets()))
	for i, o := range m.GetOffsets() {
		offsets[i] = TxnOffset{Topic: o.GetTopic(), Partition: o.GetPartition(), Offset: o.GetOffset(), Metadata: o.GetMetadata()}
	}
	member := noTxnGroupMember
	if m.GetMemberId() != "" {
		member = TxnGroupMember{MemberID: m.GetMemberId(), Generation: m.GetMemberEpoch()}
	} else if m.GetMemberEpoch() != 0 {
		return nil, invalidf("member_epoch %d without member_id", m.GetMemberEpoch())
	}
	if err := a.stageTxnOffsets(ctx, tid, pid, epoch, m.GetGroup(), member, offsets); err != nil {
		return nil, nativeMemberError(err)
	}
	return &stratav1.TxnOffsetCommitResponse{}, nil
}

// nativeMemberError is a member error of stageTxnOffsets (Kafka's names)
// as the native API's groups answer it (KIP-848's names, each a
// coordinator.ErrFenced): ErrUnknownMember, or ErrStaleMemberEpoch for an
// epoch that is not the member's unless it says it is ahead.
func nativeMemberError(err error) error {
	switch {
	case errors.Is(err, errUnknownMember), errors.Is(err, errStaleMemberEpoch), errors.Is(err, errFencedMemberEpoch):
		return err
	case errors.Is(err, ErrUnknownMemberID), errors.Is(err, ErrFencedInstanceID):
		return fmt.Errorf("%w: %w", errUnknownMember, err)
	case errors.Is(err, ErrIllegalGeneration):
		return fmt.Errorf("%w: %w", errStaleMemberEpoch, err)
	}
	return err
}

// EndTxn is ProducerService.EndTxn (strata/v1; KIP-98) in the core; the
// Connect front-end, agent/connectapi, wraps it: it writes the markers and
// completes the transaction. Errors: ErrInvalid, coordinator.ErrFenced,
// coordinator.ErrInvalidTxnState, the index's and the store's
// ErrUnavailable (retry: the ending is safe to repeat).
func (a *Agent) EndTxn(ctx context.Context, req *stratav1.EndTxnRequest) (*stratav1.EndTxnResponse, error) {
	tid, pid, epoch, err := txnProducer(req.GetProducer())
	if err != nil {
		return nil, err
	}
	txn, err := a.index.EndTxn(ctx, tid, pid, epoch, req.GetCommit())
	if err != nil {
		return nil, err
	}
	// Decided: finish even if the caller goes away (a Kafka client's
	// connection closed), as Kafka's coordinator does. Left Prepare* until
	// the reaper's pass at its deadline, a commit's offsets would be
	// missing from the group meanwhile (a new owner of the partitions
	// would read the older ones) and then move them back.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTxnTimeout)
	defer cancel()
	if err := a.finishTxn(fctx, txn); err != nil {
		return nil, err
	}
	return &stratav1.EndTxnResponse{}, nil
}

// finishTxnTimeout bounds the markers and completion of a decided EndTxn
// once detached from its caller; past it the reaper finishes the job.
const finishTxnTimeout = 30 * time.Second

// currentTxn returns the transactional id's state if (pid, epoch) is its
// current producer, else ErrFenced.
func (a *Agent) currentTxn(ctx context.Context, tid string, pid int64, epoch int16) (coordinator.Txn, error) {
	txn, err := a.index.DescribeTxn(ctx, tid)
	if err != nil {
		return coordinator.Txn{}, err
	}
	if txn.ProducerID != pid || txn.ProducerEpoch != epoch {
		return coordinator.Txn{}, fmt.Errorf("%w: transactional id %q belongs to producer %d epoch %d, not %d epoch %d",
			coordinator.ErrFenced, tid, txn.ProducerID, txn.ProducerEpoch, pid, epoch)
	}
	return txn, nil
}

// checkTxnProduce checks a transactional produce request: the producer is
// the transactional id's current one, and each partition written was added
// to its open transaction (Kafka's INVALID_TXN_STATE otherwise).
func (a *Agent) checkTxnProduce(ctx context.Context, req *stratav1.ProduceRequest, batches []partitionBatch) error {
	tid := req.GetTransactionalId()
	txn, err := a.currentTxn(ctx, tid, req.GetProducerId(), int16(req.GetProducerEpoch()))
	if err != nil {
		return err
	}
	if txn.State != coordinator.TxnOngoing {
		return fmt.Errorf("%w: transactional id %q has no open transaction (state %s): call AddPartitionsToTxn first",
			coordinator.ErrInvalidTxnState, tid, txn.State)
	}
	for _, b := range batches {
		if !slices.Contains(txn.Partitions, coordinator.TxnPartition{TopicID: b.key.topic, Partition: b.key.partition}) {
			return fmt.Errorf("%w: partition %d of topic id %s was not added to the transaction of %q: call AddPartitionsToTxn first",
				coordinator.ErrInvalidTxnState, b.key.partition, b.key.topic, tid)
		}
	}
	return nil
}

// finishTxn writes the markers of a transaction in PrepareCommit or
// PrepareAbort and completes it; other states need nothing.
func (a *Agent) finishTxn(ctx context.Context, txn coordinator.Txn) error {
	var typ int16
	switch txn.State {
	case coordinator.TxnPrepareCommit:
		typ = coordinator.ControlCommit
	case coordinator.TxnPrepareAbort:
		typ = coordinator.ControlAbort
	default:
		return nil
	}
	if err := a.writeMarkers(ctx, txn, typ); err != nil {
		return fmt.Errorf("transaction %q: write %s markers: %w", txn.TransactionalID, txn.State, err)
	}
	if _, err := a.index.CompleteTxn(ctx, txn.TransactionalID, txn.ProducerID, txn.ProducerEpoch); err != nil {
		return err
	}
	return nil
}

// writeMarkers appends a control batch of type typ to every partition of
// the transaction, in one segment, and waits for its commit. A partition
// of a topic deleted since has nothing left to close.
func (a *Agent) writeMarkers(ctx context.Context, txn coordinator.Txn, typ int16) error {
	if len(txn.Partitions) == 0 {
		return nil
	}
	// The markers carry the producer id the transaction's batches carry,
	// and the current epoch, which fences the older epochs' batches on the
	// partition. When the index moved the transactional id to a new
	// producer id (the old one's epochs used up), the old id's batches
	// were of its last epoch.
	epoch := txn.ProducerEpoch
	if txn.DataProducerID != txn.ProducerID {
		epoch = math.MaxInt16
	}
	spec := objectlog.BatchSpec{ProducerID: txn.DataProducerID, ProducerEpoch: epoch, BaseSequence: -1, Transactional: true, Control: true}
	rec := controlRecord(typ, time.Now().UnixMilli())
	batches := make([]partitionBatch, len(txn.Partitions))
	for i, p := range txn.Partitions {
		batches[i] = partitionBatch{key: partitionKey{p.TopicID, p.Partition}, spec: spec,
			records: []objectlog.Record{rec}, controlType: typ}
	}
	pending, err := a.batcher.append(ctx, batches)
	if err != nil {
		return err
	}
	for i, p := range pending {
		err := p.wait(ctx)
		if errors.Is(err, coordinator.ErrTopicDeleted) {
			a.log.Info("transaction marker for a deleted topic dropped", "transactional_id", txn.TransactionalID,
				"topic_id", batches[i].key.topic, "partition", batches[i].key.partition)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// controlRecord is Kafka's transaction marker record: key version 0 and the
// control type (0 abort, 1 commit), value version 0 and the coordinator
// epoch (0: this coordinator has no epochs, the index fences instead).
func controlRecord(typ int16, ts int64) objectlog.Record {
	key := []byte{0, 0, byte(uint16(typ) >> 8), byte(typ)}
	value := []byte{0, 0, 0, 0, 0, 0}
	return objectlog.Record{Key: key, Value: value, Timestamp: ts}
}

// initTxn makes a transactional producer's new epoch the transactional id's
// current incarnation; an open transaction the previous one left is
// aborted (or, already committing, committed) before the producer is
// answered, as Kafka's InitProducerId does.
func (a *Agent) initTxn(ctx context.Context, tid string, pid int64, epoch int16, timeout time.Duration) error {
	txn, err := a.index.InitTxn(ctx, tid, pid, epoch, timeout)
	if err != nil {
		return err
	}
	if txn.State == coordinator.TxnPrepareAbort || txn.State == coordinator.TxnPrepareCommit {
		a.log.Info("finishing the transaction of a fenced producer", "transactional_id", tid,
			"state", txn.State, "partitions", len(txn.Partitions), "groups", len(txn.Groups))
	}
	return a.finishTxn(ctx, txn)
}
