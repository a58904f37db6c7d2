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
	// LeaderEpoch is the committed leader epoch a Kafka client sent
	// (TxnOffsetCommit v2+, KIP-320), kept with the offset; nil for none.
	LeaderEpoch *int32
}

// TxnGroupMember is the group member a transaction's offsets are committed
// for (KIP-447: TxnOffsetCommit v3's member id, group instance id and
// generation), checked as OffsetCommit checks a member: a classic group's
// member at the group's generation, a consumer group's (KIP-848 or the
// native API) at its member epoch, sent as Generation. Generation -1 with
// no member id and no instance id is a producer that does not name its
// member (Kafka's clients before KIP-447): nothing is checked.
type TxnGroupMember struct {
	MemberID   string
	InstanceID string
	Generation int32
}

// noTxnGroupMember names no member: nothing is checked.
var noTxnGroupMember = TxnGroupMember{Generation: -1}

func (m TxnGroupMember) unchecked() bool {
	return m.Generation < 0 && m.MemberID == "" && m.InstanceID == ""
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

// InitKnownTxnProducer is InitTxnProducer for a producer that sends the
// producer id and epoch it has (InitProducerId v3+, KIP-360): the epoch is
// bumped (and a transaction left open aborted) only if they are the
// transactional id's current ones, or the id has no producer (its state
// expired). The pair the holder's own last bump, or the reaper's fence of
// its timed-out transaction, replaced gets the current pair back (a retry,
// or KIP-588's recovery from a transaction timeout). Any other pair is a
// zombie's, refused with coordinator.ErrFenced (Kafka's PRODUCER_FENCED):
// a producer that took the id without a pair fences every older holder.
func (a *Agent) InitKnownTxnProducer(ctx context.Context, transactionalID string, timeout time.Duration, producerID int64, epoch int16) (int64, int16, error) {
	if transactionalID == "" {
		return 0, 0, invalidf("transactional id is empty")
	}
	id, e, err := a.index.BumpTransactionalProducer(ctx, transactionalID, timeout, producerID, epoch)
	if err != nil {
		return 0, 0, err
	}
	// As initProducerID: the new epoch becomes the transaction's producer,
	// aborting what an older one left open (a retry finds it done).
	if err := a.initTxn(ctx, transactionalID, id, e, timeout); err != nil {
		return 0, 0, err
	}
	return id, e, nil
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

// CommitTxnOffsets is Kafka's TxnOffsetCommit: the offsets are staged in
// the producer's transaction all or none (stageTxnOffsets), for member (use
// TxnGroupMember{Generation: -1} for none). Errors: TxnOffsetCommit's
// (txn.go), ErrUnknownTransactionalID, and the member's, as Kafka's group
// coordinator answers them: ErrUnknownMemberID, ErrIllegalGeneration (a
// consumer group's stale member epoch too, as Kafka answers it for this
// API), ErrFencedInstanceID.
func (a *Agent) CommitTxnOffsets(ctx context.Context, p TxnProducer, group string, member TxnGroupMember, offsets []TxnOffset) error {
	tid, pid, epoch, err := txnProducer(p.proto())
	if err != nil {
		return err
	}
	return unknownTxnID(p.TransactionalID, a.stageTxnOffsets(ctx, tid, pid, epoch, group, member, offsets))
}

// stageTxnOffsets stages offsets for group in the open transaction of
// (tid, pid, epoch), which must have added the group (AddOffsetsToTxn;
// coordinator.ErrInvalidTxnState otherwise), all or none. A member named
// (KIP-447) is checked against the group's record first (the errors of
// CommitTxnOffsets), and its lease at that generation or member epoch
// again in the index, in the same step as the staging: a zombie whose
// generation a rebalance just ended is refused even when it races the
// rebalance (ErrIllegalGeneration for a classic group, ErrUnknownMemberID
// for a consumer group, as CommitKafkaOffsets answers).
func (a *Agent) stageTxnOffsets(ctx context.Context, tid string, pid int64, epoch int16, group string, member TxnGroupMember, offs []TxnOffset) error {
	if group == "" {
		return invalidf("group is required")
	}
	txn, err := a.currentTxn(ctx, tid, pid, epoch)
	if err != nil {
		return err
	}
	if txn.State != coordinator.TxnOngoing || !slices.Contains(txn.Groups, group) {
		return fmt.Errorf("%w: group %q was not added to the transaction of %q (state %s): call AddOffsetsToTxn first",
			coordinator.ErrInvalidTxnState, group, tid, txn.State)
	}
	offsets := make(map[coordinator.TopicPartition]coordinator.CommittedOffset, len(offs))
	for i, o := range offs {
		if o.Offset < 0 {
			return invalidf("offsets[%d]: offset %d is negative", i, o.Offset)
		}
		if o.LeaderEpoch != nil && *o.LeaderEpoch < 0 {
			o.LeaderEpoch = nil // Kafka's -1: none
		}
		if len(o.Metadata) > a.cfg.OffsetMetadataMaxBytes {
			return overLimit(errTooLarge, "offset-metadata-max-bytes", int64(a.cfg.OffsetMetadataMaxBytes), int64(len(o.Metadata)),
				"offsets[%d]: metadata of %d bytes is over offset-metadata-max-bytes %d", i, len(o.Metadata), a.cfg.OffsetMetadataMaxBytes)
		}
		topic, err := a.partitionTopic(ctx, o.Topic, o.Partition)
		if err != nil {
			return err
		}
		offsets[coordinator.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = coordinator.CommittedOffset{
			Offset: o.Offset, Metadata: o.Metadata, TopicID: topic.ID, LeaderEpoch: o.LeaderEpoch}
	}
	fence, consumer, err := a.txnMemberFence(ctx, group, member)
	if err != nil {
		return err
	}
	err = a.index.TxnOffsetCommit(ctx, group, pid, epoch, fence, offsets)
	switch {
	case !errors.Is(err, coordinator.ErrMemberFenced):
		return err
	case consumer:
		return fmt.Errorf("%w: member %q's session expired or its epoch moved on: rejoin (%v)", ErrUnknownMemberID, fence.MemberID, err)
	default:
		return fmt.Errorf("%w: member %q's generation %d ended or its session expired: rejoin (%v)", ErrIllegalGeneration, fence.MemberID, fence.Epoch, err)
	}
}

// txnMemberFence checks member against the group's record as Kafka's group
// coordinator checks a TxnOffsetCommit (ClassicGroup and ConsumerGroup's
// validateOffsetCommit, transactional): nothing for an unnamed member or a
// generation -1 in a group with no members; else the member must be in
// the group (ErrUnknownMemberID), be the instance it says (classic,
// ErrFencedInstanceID), and be at the group's generation or its member
// epoch (ErrIllegalGeneration). Unlike OffsetCommit, a classic group
// waiting for its leader's assignment takes the commit. It returns the
// fence for the index (nil: none) and whether the group is a consumer one.
func (a *Agent) txnMemberFence(ctx context.Context, group string, member TxnGroupMember) (*coordinator.MemberFence, bool, error) {
	if member.unchecked() {
		return nil, false, nil
	}
	st, err := a.index.LoadGroup(ctx, group)
	if err != nil {
		return nil, false, err
	}
	if recordKind(st.Data) == GroupTypeConsumer {
		rec, err := decodeGroupRecord(st)
		if err != nil {
			return nil, true, err
		}
		if member.Generation < 0 && len(rec.Members) == 0 {
			return nil, true, nil
		}
		m, ok := rec.Members[member.MemberID]
		if !ok {
			return nil, true, fmt.Errorf("%w: member %q is not in group %q (it left or its session expired): rejoin", ErrUnknownMemberID, member.MemberID, group)
		}
		if member.Generation != m.Epoch {
			// Both errors: Kafka's for this API, and the native API's
			// (nativeMemberError) with the stale/fenced distinction.
			return nil, true, fmt.Errorf("%w: %w: member %q sent member epoch %d, its epoch is %d",
				ErrIllegalGeneration, memberEpochError(member.Generation, m.Epoch), member.MemberID, member.Generation, m.Epoch)
		}
		return &coordinator.MemberFence{MemberID: member.MemberID, Epoch: member.Generation}, true, nil
	}
	rec, _, err := a.loadClassic(ctx, group)
	if err != nil {
		return nil, false, err
	}
	if member.Generation < 0 && len(rec.Members) == 0 {
		return nil, false, nil
	}
	if len(st.Data) == 0 {
		// Kafka: a group that does not exist takes no member's commit.
		return nil, false, fmt.Errorf("%w: group %q has no members: generation %d is not its", ErrIllegalGeneration, group, member.Generation)
	}
	if _, err := rec.checkMember(group, member.MemberID, member.InstanceID, member.Generation); err != nil {
		return nil, false, err
	}
	if member.Generation != rec.Generation {
		return nil, false, fmt.Errorf("%w: generation %d, the group is at %d: rejoin", ErrIllegalGeneration, member.Generation, rec.Generation)
	}
	return &coordinator.MemberFence{MemberID: member.MemberID, Epoch: member.Generation}, false, nil
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
