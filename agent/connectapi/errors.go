package connectapi

// The one place where the core's errors become Connect errors (DESIGN.md,
// "Failure model"): a code, the message kept, and the typed details of
// proto/strata/v1/errors.proto.

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// kafkaError is a Kafka protocol error: its name and numeric code, from
// Kafka's table (org.apache.kafka.common.protocol.Errors).
type kafkaError struct {
	name string
	code int32
}

var (
	kafkaNone                    = kafkaError{}
	kafkaOffsetOutOfRange        = kafkaError{"OFFSET_OUT_OF_RANGE", 1}
	kafkaCorruptMessage          = kafkaError{"CORRUPT_MESSAGE", 2}
	kafkaUnknownTopicOrPartition = kafkaError{"UNKNOWN_TOPIC_OR_PARTITION", 3}
	kafkaRequestTimedOut         = kafkaError{"REQUEST_TIMED_OUT", 7}
	kafkaMessageTooLarge         = kafkaError{"MESSAGE_TOO_LARGE", 10}
	kafkaOffsetMetadataTooLarge  = kafkaError{"OFFSET_METADATA_TOO_LARGE", 12}
	kafkaInvalidTopic            = kafkaError{"INVALID_TOPIC_EXCEPTION", 17}
	kafkaNotEnoughReplicasAfter  = kafkaError{"NOT_ENOUGH_REPLICAS_AFTER_APPEND", 20}
	kafkaUnknownMemberID         = kafkaError{"UNKNOWN_MEMBER_ID", 25}
	kafkaTopicAlreadyExists      = kafkaError{"TOPIC_ALREADY_EXISTS", 36}
	kafkaInvalidPartitions       = kafkaError{"INVALID_PARTITIONS", 37}
	kafkaInvalidConfig           = kafkaError{"INVALID_CONFIG", 40}
	kafkaInvalidRequest          = kafkaError{"INVALID_REQUEST", 42}
	kafkaInvalidRecord           = kafkaError{"INVALID_RECORD", 87}
	kafkaInconsistentProtocol    = kafkaError{"INCONSISTENT_GROUP_PROTOCOL", 23}
	kafkaOutOfOrderSequence      = kafkaError{"OUT_OF_ORDER_SEQUENCE_NUMBER", 45}
	kafkaStorageError            = kafkaError{"KAFKA_STORAGE_ERROR", 56}
	kafkaNonEmptyGroup           = kafkaError{"NON_EMPTY_GROUP", 68}
	kafkaGroupIDNotFound         = kafkaError{"GROUP_ID_NOT_FOUND", 69}
	kafkaUnknownTopicID          = kafkaError{"UNKNOWN_TOPIC_ID", 100}
	kafkaFencedMemberEpoch       = kafkaError{"FENCED_MEMBER_EPOCH", 110}
	kafkaStaleMemberEpoch        = kafkaError{"STALE_MEMBER_EPOCH", 113}
)

// codeTable maps domain errors to Connect codes and Kafka errors, most
// specific first. It is the one place where that mapping lives (DESIGN.md,
// "Failure model"). A condition that a retry clears must map to a code
// clients retry (see retriable).
var codeTable = []struct {
	err   error
	code  connect.Code
	kafka kafkaError
}{
	{agent.ErrUnknownTopicOrPartition, connect.CodeNotFound, kafkaUnknownTopicOrPartition},
	{agent.ErrUnknownTopicID, connect.CodeNotFound, kafkaUnknownTopicID},
	{agent.ErrTopicRecreated, connect.CodeUnavailable, kafkaUnknownTopicID},
	{coordinator.ErrTopicDeleted, connect.CodeNotFound, kafkaUnknownTopicOrPartition},
	{coordinator.ErrGroupNotFound, connect.CodeNotFound, kafkaGroupIDNotFound},
	// Before ErrConflict: DeleteGroup's refusal joins the index's
	// ErrGroupNotEmpty (a conflict), but only stopping the consumers clears it.
	{agent.ErrGroupHasMembers, connect.CodeFailedPrecondition, kafkaNonEmptyGroup},
	{coordinator.ErrNotFound, connect.CodeNotFound, kafkaNone},
	{objectlog.ErrNotFound, connect.CodeNotFound, kafkaNone},
	{coordinator.ErrOffsetOutOfRange, connect.CodeOutOfRange, kafkaOffsetOutOfRange},
	// Group members, as KIP-848 answers them: each must drop its
	// partitions and rejoin, except a stale epoch, which a heartbeat clears.
	{agent.ErrUnknownMember, connect.CodeFailedPrecondition, kafkaUnknownMemberID},
	{agent.ErrFencedMemberEpoch, connect.CodeFailedPrecondition, kafkaFencedMemberEpoch},
	{agent.ErrStaleMemberEpoch, connect.CodeFailedPrecondition, kafkaStaleMemberEpoch},
	// A group is classic (Kafka's JoinGroup) or consumer (native), not both.
	{agent.ErrInconsistentGroupProtocol, connect.CodeFailedPrecondition, kafkaInconsistentProtocol},
	{coordinator.ErrFenced, connect.CodeFailedPrecondition, kafkaNone},
	// A sequence gap is OUT_OF_RANGE, apart from a fenced epoch, so a client
	// can tell the gap it may retry from the fencing it may not (producer.proto).
	{coordinator.ErrOutOfOrderSequence, connect.CodeOutOfRange, kafkaOutOfOrderSequence},
	{coordinator.ErrConflict, connect.CodeAborted, kafkaNone},
	{coordinator.ErrAlreadyExists, connect.CodeAlreadyExists, kafkaTopicAlreadyExists},
	{objectlog.ErrAlreadyExists, connect.CodeAlreadyExists, kafkaNone},
	// Redis WAIT short of replicas: Kafka's acks=all analogue.
	{coordinator.ErrNotEnoughReplicas, connect.CodeUnavailable, kafkaNotEnoughReplicasAfter},
	{coordinator.ErrUnavailable, connect.CodeUnavailable, kafkaStorageError},
	{objectlog.ErrUnavailable, connect.CodeUnavailable, kafkaStorageError},
	{objectlog.ErrInvalidRange, connect.CodeOutOfRange, kafkaNone},
	{objectlog.ErrCorrupt, connect.CodeDataLoss, kafkaCorruptMessage},
	{coordinator.ErrInvalidTopicName, connect.CodeInvalidArgument, kafkaInvalidTopic},
	{coordinator.ErrInvalidPartitions, connect.CodeInvalidArgument, kafkaInvalidPartitions},
	{coordinator.ErrInvalidConfig, connect.CodeInvalidArgument, kafkaInvalidConfig},
	{coordinator.ErrInvalid, connect.CodeInvalidArgument, kafkaNone},
	{agent.ErrInvalid, connect.CodeInvalidArgument, kafkaInvalidRequest},
	{agent.ErrInvalidRecord, connect.CodeInvalidArgument, kafkaInvalidRecord},
	{agent.ErrCorruptBatch, connect.CodeInvalidArgument, kafkaCorruptMessage},
	{agent.ErrOffsetMetadataTooLarge, connect.CodeInvalidArgument, kafkaOffsetMetadataTooLarge},
	{agent.ErrTooLarge, connect.CodeInvalidArgument, kafkaMessageTooLarge},
	{agent.ErrOverloaded, connect.CodeResourceExhausted, kafkaNone},
	{agent.ErrClosed, connect.CodeUnavailable, kafkaNone},
	{agent.ErrNotSupported, connect.CodeUnimplemented, kafkaNone},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded, kafkaRequestTimedOut},
	{context.Canceled, connect.CodeCanceled, kafkaNone},
}

// retriable reports whether clients retry code as it stands: the codes of
// conditions that clear by themselves.
func retriable(code connect.Code) bool {
	switch code {
	case connect.CodeUnavailable, connect.CodeAborted, connect.CodeResourceExhausted, connect.CodeDeadlineExceeded:
		return true
	}
	return false
}

// connectError turns any error into a Connect error with the right code,
// keeping its message, and attaches its facts as typed details
// (proto/strata/v1/errors.proto): always an ErrorInfo, plus an
// OffsetOutOfRange or LimitExceeded when the error carries one. Errors not
// in the table come from the store's transport (timeouts, refused
// connections after retries), so they are Unavailable: retryable.
func connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code, kafka := connect.CodeUnavailable, kafkaNone
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			code, kafka = e.code, e.kafka
			break
		}
	}
	ce = connect.NewError(code, err)
	addDetail(ce, &stratav1.ErrorInfo{Retriable: retriable(code), KafkaErrorName: kafka.name, KafkaErrorCode: kafka.code})
	var oor *agent.OffsetRangeError
	if errors.As(err, &oor) {
		addDetail(ce, &stratav1.OffsetOutOfRange{
			Topic: oor.Topic, Partition: oor.Partition, RequestedOffset: oor.Requested,
			LogStartOffset: oor.LogStart, HighWatermark: oor.HighWatermark,
		})
	}
	var le *agent.LimitError
	var cle *coordinator.LimitError
	if errors.As(err, &le) {
		addDetail(ce, &stratav1.LimitExceeded{Name: le.Name, Limit: le.Limit, Actual: le.Actual})
	} else if errors.As(err, &cle) {
		addDetail(ce, &stratav1.LimitExceeded{Name: cle.Name, Limit: cle.Limit, Actual: cle.Actual})
	}
	return ce
}

func addDetail(ce *connect.Error, m proto.Message) {
	// NewErrorDetail fails only when m cannot be marshalled, which our own
	// messages always can.
	if d, err := connect.NewErrorDetail(m); err == nil {
		ce.AddDetail(d)
	}
}

// partitionError is a partition's error in a batch call's answer (Kafka's
// per-partition error codes): the code, message and details connectError
// gives a failed call.
func partitionError(err error) *stratav1.PartitionError {
	var ce *connect.Error
	if !errors.As(connectError(err), &ce) {
		return &stratav1.PartitionError{Code: connect.CodeUnknown.String(), Message: err.Error()}
	}
	pe := &stratav1.PartitionError{Code: ce.Code().String(), Message: ce.Message()}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		switch m := v.(type) {
		case *stratav1.ErrorInfo:
			pe.Info = m
		case *stratav1.LimitExceeded:
			pe.LimitExceeded = m
		case *stratav1.OffsetOutOfRange:
			pe.OffsetOutOfRange = m
		}
	}
	return pe
}
