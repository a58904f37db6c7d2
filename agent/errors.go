package agent

// The core's errors: plain Go errors, matched with errors.Is and errors.As.
// Each front-end maps them to its protocol's codes in one table of its own
// (the Connect front-end: agent/connectapi/errors.go; the Kafka front-end:
// kafka/agentcore). Errors from the index (coordinator.ErrNotFound,
// ErrFenced, ErrOutOfOrderSequence, ErrOffsetOutOfRange, ErrUnavailable,
// ...) and the store (objectlog.ErrCorrupt, ErrUnavailable) come wrapped as
// they are, with context.

import (
	"errors"
	"fmt"

	"github.com/stratabroker/strata/coordinator"
)

// Errors of the agent's own. The exported names are the core's API; the
// package's code uses the short unexported ones, the same values.
var (
	// ErrInvalid: a request the agent refuses before touching anything
	// (Kafka's INVALID_REQUEST); the message names the bad field.
	ErrInvalid = errors.New("invalid request")
	// ErrTooLarge: a record, batch or request over a limit that it can
	// never pass as it is (Kafka's MESSAGE_TOO_LARGE); a *LimitError
	// names the limit.
	ErrTooLarge = errors.New("too large")
	// ErrOverloaded: the produce buffer stayed full for
	// --produce-queue-timeout; retry after a backoff.
	ErrOverloaded = errors.New("overloaded")
	// ErrUnknownTopicOrPartition: the index, read afresh, has no such
	// topic or partition (Kafka's UNKNOWN_TOPIC_OR_PARTITION). It is said
	// only after the topic cache was refreshed, so it is final, never a
	// stale cache's view.
	ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")
	// ErrTopicRecreated: a request was bound to a topic id that was deleted
	// while the name now belongs to a new topic; the cache has been
	// refreshed, so the same request sent again reaches the new topic.
	ErrTopicRecreated = errors.New("topic was deleted and created again")
	// ErrUnknownTopicID: a request named a topic id (KIP-516) that the
	// topic of that name does not have, read afresh from the index: the
	// topic it meant was deleted (and maybe created again), or the id is
	// wrong. Final, like Kafka's UNKNOWN_TOPIC_ID.
	ErrUnknownTopicID = errors.New("unknown topic id")
	// ErrFencedMemberEpoch: a group member sent an epoch ahead of its own
	// (KIP-848's FENCED_MEMBER_EPOCH): it must rejoin with member epoch 0.
	// It is a coordinator.ErrFenced and reads as one.
	ErrFencedMemberEpoch = fmt.Errorf("%w", coordinator.ErrFenced)
	// ErrStaleMemberEpoch: a member committed at an epoch behind its own
	// (KIP-848's STALE_MEMBER_EPOCH): its next heartbeat answers the
	// current epoch, and the commit may be sent again with it. It is a
	// coordinator.ErrFenced.
	ErrStaleMemberEpoch = fmt.Errorf("%w", coordinator.ErrFenced)
	// ErrUnknownMember: the member is not in the group (never joined, left,
	// or its session expired; KIP-848's UNKNOWN_MEMBER_ID). It must rejoin
	// with member epoch 0. It is a coordinator.ErrFenced.
	ErrUnknownMember = fmt.Errorf("%w: unknown member", coordinator.ErrFenced)
	// ErrOffsetMetadataTooLarge: a committed offset's metadata is over
	// --offset-metadata-max-bytes (Kafka's OFFSET_METADATA_TOO_LARGE). It
	// is an ErrTooLarge.
	ErrOffsetMetadataTooLarge = fmt.Errorf("%w: offset metadata too large", ErrTooLarge)
	// ErrGroupHasMembers: a group operation that needs the group empty
	// (DeleteGroup, ResetOffsets; Kafka's NON_EMPTY_GROUP) met live
	// members: stop its consumers, or wait for their sessions to time out.
	ErrGroupHasMembers = errors.New("group has live members")
	// ErrClosed: the agent is shutting down; retry on another agent.
	ErrClosed = errors.New("agent is shutting down")
	// ErrInvalidRecord: a record the topic cannot take as it is (Kafka's
	// INVALID_RECORD), e.g. a record without a key for a compacted topic.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrCorruptBatch: a record batch a client sent does not parse
	// (framing, magic, CRC-32C, codec, or any record inside it, as Kafka's
	// LogValidator walks them; Kafka's CORRUPT_MESSAGE): the
	// client's fault, unlike corrupt stored data (objectlog.ErrCorrupt
	// alone, which is data loss).
	ErrCorruptBatch = errors.New("corrupt record batch")
)

// Short names inside the package for the errors above.
var (
	errInvalid                 = ErrInvalid
	errTooLarge                = ErrTooLarge
	errOverloaded              = ErrOverloaded
	errUnknownTopicOrPartition = ErrUnknownTopicOrPartition
	errTopicRecreated          = ErrTopicRecreated
	errUnknownTopicID          = ErrUnknownTopicID
	errFencedMemberEpoch       = ErrFencedMemberEpoch
	errStaleMemberEpoch        = ErrStaleMemberEpoch
	errUnknownMember           = ErrUnknownMember
	errOffsetMetadataTooLarge  = ErrOffsetMetadataTooLarge
	errClosed                  = ErrClosed
	errInvalidRecord           = ErrInvalidRecord
	errCorruptBatch            = ErrCorruptBatch
)

// memberEpochError is the error of a member that sent epoch got while its
// epoch is want: stale when behind, fenced when ahead (KIP-848's OffsetCommit).
func memberEpochError(got, want int32) error {
	if got < want {
		return errStaleMemberEpoch
	}
	return errFencedMemberEpoch
}

// nullKeyError is Kafka's refusal of a record without a key for a topic
// whose cleanup.policy has compact: the cleaner keeps records by key.
func nullKeyError(topic string, partition int32, what string) error {
	return fmt.Errorf("%w: Compacted topic cannot accept message without key in topic partition %s-%d: %s has a null key (cleanup.policy compact)",
		errInvalidRecord, topic, partition, what)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, args...))
}

// OffsetRangeError is an offset outside a partition's bounds, with the
// bounds (the Connect API's OffsetOutOfRange detail; Kafka's
// OFFSET_OUT_OF_RANGE). It is a coordinator.ErrOffsetOutOfRange.
type OffsetRangeError struct {
	Topic         string
	Partition     int32
	Requested     int64 // the offset asked for
	LogStart      int64 // the partition's log start offset then
	HighWatermark int64 // the partition's high watermark then
}

func (e *OffsetRangeError) Error() string {
	return fmt.Sprintf("%v: topic %q partition %d has offsets from log start %d to high watermark %d, offset %d is outside",
		coordinator.ErrOffsetOutOfRange, e.Topic, e.Partition, e.LogStart, e.HighWatermark, e.Requested)
}

func (e *OffsetRangeError) Unwrap() error { return coordinator.ErrOffsetOutOfRange }

// LimitError is a request over a named limit of the agent (the Connect
// API's LimitExceeded detail). It is its sentinel Err (errors.Is), which
// decides how it is answered: ErrTooLarge for what can never pass as it is,
// ErrInvalid for a request shape over an API limit, ErrOverloaded for load.
// The index's limits come as a coordinator.LimitError, of the same shape.
type LimitError struct {
	Err    error  // the sentinel: ErrTooLarge, ErrInvalid, ErrOverloaded
	Name   string // the limit's name: a flag or topic config, e.g. "max.message.bytes"
	Limit  int64  // the limit, in the limit's unit (bytes, partitions)
	Actual int64  // what the request had, in the same unit
	Msg    string // what broke the limit, in words
}

func (e *LimitError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Msg) }
func (e *LimitError) Unwrap() error { return e.Err }

// overLimit builds a LimitError; msg says what broke the limit, in words.
func overLimit(kind error, name string, limit, actual int64, format string, args ...any) error {
	return &LimitError{Err: kind, Msg: fmt.Sprintf(format, args...), Name: name, Limit: limit, Actual: actual}
}
