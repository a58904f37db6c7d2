package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// errorTable maps the core's sentinel errors to Kafka error codes: the one
// place where that mapping lives. The codes come from franz-go's kerr table,
// which carries Kafka's retriable flag with each code: a client retries
// UNKNOWN_TOPIC_OR_PARTITION, CORRUPT_MESSAGE, KAFKA_STORAGE_ERROR,
// REQUEST_TIMED_OUT, THROTTLING_QUOTA_EXCEEDED and UNKNOWN_TOPIC_ID, and
// gives up on the rest.
var errorTable = []struct {
	err  error
	code *kerr.Error
}{
	{ErrUnknownTopicOrPartition, kerr.UnknownTopicOrPartition},
	{ErrUnknownTopicID, kerr.UnknownTopicID},
	{ErrTopicAlreadyExists, kerr.TopicAlreadyExists},
	{ErrInvalidTopic, kerr.InvalidTopicException},
	{ErrInvalidPartitions, kerr.InvalidPartitions},
	{ErrInvalidConfig, kerr.InvalidConfig},
	{ErrPolicyViolation, kerr.PolicyViolation},
	{ErrMessageTooLarge, kerr.MessageTooLarge},
	{ErrCorruptMessage, kerr.CorruptMessage},
	{ErrInvalidRecord, kerr.InvalidRecord},
	{ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{ErrUnknownProducerID, kerr.UnknownProducerID},
	{ErrUnavailable, kerr.KafkaStorageError},
	{ErrTimeout, kerr.RequestTimedOut},
	{ErrUnsupported, kerr.UnsupportedVersion},
	{ErrInvalidRequest, kerr.InvalidRequest},
	{ErrThrottled, kerr.ThrottlingQuotaExceeded},
	// Consumer groups (groups.go).
	{ErrUnknownMemberID, kerr.UnknownMemberID},
	{ErrIllegalGeneration, kerr.IllegalGeneration},
	{ErrRebalanceInProgress, kerr.RebalanceInProgress},
	{ErrMemberIDRequired, kerr.MemberIDRequired},
	{ErrInconsistentGroupProtocol, kerr.InconsistentGroupProtocol},
	{ErrFencedInstanceID, kerr.FencedInstanceID},
	{ErrUnreleasedInstanceID, kerr.UnreleasedInstanceID},
	{ErrUnsupportedAssignor, kerr.UnsupportedAssignor},
	{ErrInvalidSessionTimeout, kerr.InvalidSessionTimeout},
	{ErrOffsetMetadataTooLarge, kerr.OffsetMetadataTooLarge},
	{ErrGroupNotEmpty, kerr.NonEmptyGroup},
	{ErrGroupIDNotFound, kerr.GroupIDNotFound},
	{ErrInvalidGroupID, kerr.InvalidGroupID},
	{ErrFencedMemberEpoch, kerr.FencedMemberEpoch},
	// Transactions (txn.go).
	{ErrProducerFenced, kerr.ProducerFenced},
	{ErrInvalidProducerIDMapping, kerr.InvalidProducerIDMapping},
	{ErrInvalidTxnState, kerr.InvalidTxnState},
	{ErrConcurrentTransactions, kerr.ConcurrentTransactions},
	{ErrInvalidTxnTimeout, kerr.InvalidTransactionTimeout},
	{ErrTransactionalIDNotFound, kerr.TransactionalIDNotFound},
	// A request whose connection went away or whose deadline passed inside
	// the core: the client sees a retriable timeout if it is still there.
	{context.DeadlineExceeded, kerr.RequestTimedOut},
	{context.Canceled, kerr.RequestTimedOut},
}

// kafkaError returns the Kafka error for err: nil for nil, the table's code
// for a sentinel, the code itself for a *kerr.Error, UNKNOWN_SERVER_ERROR for
// anything else.
func kafkaError(err error) *kerr.Error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return kerr.UnknownServerError
}

// errorCode is kafkaError's code, 0 for nil.
func errorCode(err error) int16 {
	if ke := kafkaError(err); ke != nil {
		return ke.Code
	}
	return 0
}

// errorMessage is the text for an API's ErrorMessage field: nil for nil, the
// error's own text otherwise, which says more than the code (which limit, which
// config).
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// errShortFetch is a core that broke Fetch's contract of one result per
// partition: a bug, answered as UNKNOWN_SERVER_ERROR rather than a panic.
var errShortFetch = errors.New("core returned a fetch result count that does not match the request")
