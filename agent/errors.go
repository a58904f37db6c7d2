package agent

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// Errors of the agent's own, mapped with the index's and the store's below.
var (
	// errInvalid: a request the agent refuses before touching anything.
	errInvalid = errors.New("invalid request")
	// errTooLarge: a record or request over a limit; the message names it.
	errTooLarge = errors.New("too large")
	// errOverloaded: the produce buffer stayed full.
	errOverloaded = errors.New("overloaded")
	// errUnknownTopicOrPartition: the index, read afresh, has no such topic
	// or partition. It is said only after the topic cache was refreshed,
	// so it is final (NotFound), never a stale cache's view.
	errUnknownTopicOrPartition = errors.New("unknown topic or partition")
	// errTopicRecreated: a request was bound to a topic id that was deleted
	// while the name now belongs to a new topic; the cache has been
	// refreshed, so the same request sent again reaches the new topic.
	errTopicRecreated = errors.New("topic was deleted and created again")
	// errUnknownTopicID: a request named a topic id (KIP-516) that the
	// topic of that name does not have, read afresh from the index: the
	// topic it meant was deleted (and maybe created again), or the id is
	// wrong. Final, like Kafka's UNKNOWN_TOPIC_ID.
	errUnknownTopicID = errors.New("unknown topic id")
	// errFencedMemberEpoch: a group member sent an epoch ahead of its own
	// (KIP-848's FENCED_MEMBER_EPOCH): it must rejoin with member epoch 0.
	// It is a coordinator.ErrFenced and reads as one.
	errFencedMemberEpoch = fmt.Errorf("%w", coordinator.ErrFenced)
	// errStaleMemberEpoch: a member committed at an epoch behind its own
	// (KIP-848's STALE_MEMBER_EPOCH): its next heartbeat answers the
	// current epoch, and the commit may be sent again with it.
	errStaleMemberEpoch = fmt.Errorf("%w", coordinator.ErrFenced)
)

// memberEpochError is the error of a member that sent epoch got while its
// epoch is want: stale when behind, fenced when ahead (KIP-848's OffsetCommit).
func memberEpochError(got, want int32) error {
	if got < want {
		return errStaleMemberEpoch
	}
	return errFencedMemberEpoch
}

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
	kafkaOutOfOrderSequence      = kafkaError{"OUT_OF_ORDER_SEQUENCE_NUMBER", 45}
	kafkaStorageError            = kafkaError{"KAFKA_STORAGE_ERROR", 56}
	kafkaGroupIDNotFound         = kafkaError{"GROUP_ID_NOT_FOUND", 69}
	kafkaInconsistentProtocol    = kafkaError{"INCONSISTENT_GROUP_PROTOCOL", 23}
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
	{errUnknownTopicOrPartition, connect.CodeNotFound, kafkaUnknownTopicOrPartition},
	{errUnknownTopicID, connect.CodeNotFound, kafkaUnknownTopicID},
	{errTopicRecreated, connect.CodeUnavailable, kafkaUnknownTopicID},
	{coordinator.ErrTopicDeleted, connect.CodeNotFound, kafkaUnknownTopicOrPartition},
	{coordinator.ErrGroupNotFound, connect.CodeNotFound, kafkaGroupIDNotFound},
	{coordinator.ErrNotFound, connect.CodeNotFound, kafkaNone},
	{objectlog.ErrNotFound, connect.CodeNotFound, kafkaNone},
	{coordinator.ErrOffsetOutOfRange, connect.CodeOutOfRange, kafkaOffsetOutOfRange},
	// Group members, as KIP-848 answers them: each must drop its
	// partitions and rejoin, except a stale epoch, which a heartbeat clears.
	{errUnknownMember, connect.CodeFailedPrecondition, kafkaUnknownMemberID},
	{errFencedMemberEpoch, connect.CodeFailedPrecondition, kafkaFencedMemberEpoch},
	{errStaleMemberEpoch, connect.CodeFailedPrecondition, kafkaStaleMemberEpoch},
	// A group is classic (Kafka's JoinGroup) or consumer (native), not both.
	{ErrInconsistentGroupProtocol, connect.CodeFailedPrecondition, kafkaInconsistentProtocol},
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
	{errInvalid, connect.CodeInvalidArgument, kafkaInvalidRequest},
	{errOffsetMetadataTooLarge, connect.CodeInvalidArgument, kafkaOffsetMetadataTooLarge},
	{errTooLarge, connect.CodeInvalidArgument, kafkaMessageTooLarge},
	{errOverloaded, connect.CodeResourceExhausted, kafkaNone},
	{errClosed, connect.CodeUnavailable, kafkaNone},
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
	var oor *offsetRangeError
	if errors.As(err, &oor) {
		addDetail(ce, &stratav1.OffsetOutOfRange{
			Topic: oor.topic, Partition: oor.partition, RequestedOffset: oor.requested,
			LogStartOffset: oor.logStart, HighWatermark: oor.highWatermark,
		})
	}
	var le *limitError
	var cle *coordinator.LimitError
	if errors.As(err, &le) {
		addDetail(ce, &stratav1.LimitExceeded{Name: le.name, Limit: le.limit, Actual: le.actual})
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

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, args...))
}

// offsetRangeError is an offset outside a partition's bounds, with the
// bounds (an OffsetOutOfRange detail). It is a coordinator.ErrOffsetOutOfRange.
type offsetRangeError struct {
	topic         string
	partition     int32
	requested     int64
	logStart      int64
	highWatermark int64
}

func (e *offsetRangeError) Error() string {
	return fmt.Sprintf("%v: topic %q partition %d has offsets from log start %d to high watermark %d, offset %d is outside",
		coordinator.ErrOffsetOutOfRange, e.topic, e.partition, e.logStart, e.highWatermark, e.requested)
}

func (e *offsetRangeError) Unwrap() error { return coordinator.ErrOffsetOutOfRange }

// limitError is a request over a named limit (a LimitExceeded detail). It
// wraps the sentinel that decides its code: errTooLarge for what can never
// pass as it is, errInvalid for a request shape over an API limit,
// errOverloaded for load.
type limitError struct {
	kind   error
	msg    string
	name   string
	limit  int64
	actual int64
}

func (e *limitError) Error() string { return fmt.Sprintf("%v: %s", e.kind, e.msg) }
func (e *limitError) Unwrap() error { return e.kind }

// overLimit builds a limitError; msg says what broke the limit, in words.
func overLimit(kind error, name string, limit, actual int64, format string, args ...any) error {
	return &limitError{kind: kind, msg: fmt.Sprintf(format, args...), name: name, limit: limit, actual: actual}
}
