package connectapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func TestConnectErrorCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err       error
		want      connect.Code
		kafka     string // ErrorInfo.kafka_error_name
		kafkaCode int32
	}{
		{coordinator.ErrNotFound, connect.CodeNotFound, "", 0},
		{objectlog.ErrNotFound, connect.CodeNotFound, "", 0},
		{coordinator.ErrGroupNotFound, connect.CodeNotFound, "GROUP_ID_NOT_FOUND", 69},
		{coordinator.ErrTopicDeleted, connect.CodeNotFound, "UNKNOWN_TOPIC_OR_PARTITION", 3},
		{errors.Join(coordinator.ErrNotFound, agent.ErrUnknownTopicOrPartition), connect.CodeNotFound, "UNKNOWN_TOPIC_OR_PARTITION", 3},
		{agent.ErrTopicRecreated, connect.CodeUnavailable, "UNKNOWN_TOPIC_ID", 100},
		{agent.ErrUnknownTopicID, connect.CodeNotFound, "UNKNOWN_TOPIC_ID", 100},
		{errors.Join(coordinator.ErrNotFound, agent.ErrUnknownTopicID), connect.CodeNotFound, "UNKNOWN_TOPIC_ID", 100},
		{coordinator.ErrOffsetOutOfRange, connect.CodeOutOfRange, "OFFSET_OUT_OF_RANGE", 1},
		{&agent.OffsetRangeError{Topic: "t", Partition: 1, Requested: 9, LogStart: 2, HighWatermark: 5}, connect.CodeOutOfRange, "OFFSET_OUT_OF_RANGE", 1},
		{coordinator.ErrFenced, connect.CodeFailedPrecondition, "", 0},
		{agent.ErrUnknownMember, connect.CodeFailedPrecondition, "UNKNOWN_MEMBER_ID", 25},
		{agent.ErrFencedMemberEpoch, connect.CodeFailedPrecondition, "FENCED_MEMBER_EPOCH", 110},
		{agent.ErrStaleMemberEpoch, connect.CodeFailedPrecondition, "STALE_MEMBER_EPOCH", 113},
		{coordinator.ErrOutOfOrderSequence, connect.CodeOutOfRange, "OUT_OF_ORDER_SEQUENCE_NUMBER", 45},
		{coordinator.ErrConflict, connect.CodeAborted, "", 0},
		{coordinator.ErrGroupNotEmpty, connect.CodeAborted, "", 0},
		{agent.ErrGroupHasMembers, connect.CodeFailedPrecondition, "NON_EMPTY_GROUP", 68},
		{errors.Join(agent.ErrGroupHasMembers, coordinator.ErrGroupNotEmpty), connect.CodeFailedPrecondition, "NON_EMPTY_GROUP", 68},
		{coordinator.ErrAlreadyExists, connect.CodeAlreadyExists, "TOPIC_ALREADY_EXISTS", 36},
		{coordinator.ErrUnavailable, connect.CodeUnavailable, "KAFKA_STORAGE_ERROR", 56},
		{objectlog.ErrUnavailable, connect.CodeUnavailable, "KAFKA_STORAGE_ERROR", 56},
		{coordinator.ErrNotEnoughReplicas, connect.CodeUnavailable, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 20},
		{objectlog.ErrCorrupt, connect.CodeDataLoss, "CORRUPT_MESSAGE", 2},
		{coordinator.ErrInvalid, connect.CodeInvalidArgument, "", 0},
		{coordinator.ErrInvalidTopicName, connect.CodeInvalidArgument, "INVALID_TOPIC_EXCEPTION", 17},
		{coordinator.ErrInvalidPartitions, connect.CodeInvalidArgument, "INVALID_PARTITIONS", 37},
		{coordinator.ErrInvalidConfig, connect.CodeInvalidArgument, "INVALID_CONFIG", 40},
		{&coordinator.LimitError{Err: coordinator.ErrInvalidPartitions, Name: "partitions", Limit: 10000, Actual: 10001, Msg: "10001 partitions"},
			connect.CodeInvalidArgument, "INVALID_PARTITIONS", 37},
		{agent.ErrInvalid, connect.CodeInvalidArgument, "INVALID_REQUEST", 42},
		{agent.ErrInvalidRecord, connect.CodeInvalidArgument, "INVALID_RECORD", 87},
		{agent.ErrInconsistentGroupProtocol, connect.CodeFailedPrecondition, "INCONSISTENT_GROUP_PROTOCOL", 23},
		{agent.ErrTooLarge, connect.CodeInvalidArgument, "MESSAGE_TOO_LARGE", 10},
		{agent.ErrOffsetMetadataTooLarge, connect.CodeInvalidArgument, "OFFSET_METADATA_TOO_LARGE", 12},
		{&agent.LimitError{Err: agent.ErrOffsetMetadataTooLarge, Name: "offset-metadata-max-bytes", Limit: 4096, Actual: 5000, Msg: "5000 bytes"}, connect.CodeInvalidArgument, "OFFSET_METADATA_TOO_LARGE", 12},
		{&agent.LimitError{Err: agent.ErrTooLarge, Name: "max.message.bytes", Limit: 1000, Actual: 1500, Msg: "record is 1500 bytes"}, connect.CodeInvalidArgument, "MESSAGE_TOO_LARGE", 10},
		{&agent.LimitError{Err: agent.ErrInvalid, Name: "partitions", Limit: 1000, Actual: 1001, Msg: "1001 lookups"}, connect.CodeInvalidArgument, "INVALID_REQUEST", 42},
		{agent.ErrOverloaded, connect.CodeResourceExhausted, "", 0},
		{&agent.LimitError{Err: agent.ErrOverloaded, Name: "max-buffered-bytes", Limit: 1 << 20, Actual: 0, Msg: "buffer full"}, connect.CodeResourceExhausted, "", 0},
		{agent.ErrClosed, connect.CodeUnavailable, "", 0},
		{agent.ErrNotSupported, connect.CodeUnimplemented, "", 0},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded, "REQUEST_TIMED_OUT", 7},
		{context.Canceled, connect.CodeCanceled, "", 0},
		{errors.New("dial tcp: connection refused"), connect.CodeUnavailable, "", 0},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			t.Parallel()
			// Wrapped twice, as errors travel up from the index or store.
			wrapped := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", c.err))
			ce := connectError(wrapped).(*connect.Error)
			if got := ce.Code(); got != c.want {
				t.Errorf("code of %v = %v, want %v", wrapped, got, c.want)
			}
			if ce.Message() != wrapped.Error() {
				t.Errorf("message %q, want the error's text %q", ce.Message(), wrapped.Error())
			}
			info := detailOf[*stratav1.ErrorInfo](t, ce)
			if info == nil {
				t.Fatal("no ErrorInfo detail")
			}
			if info.GetKafkaErrorName() != c.kafka || info.GetKafkaErrorCode() != c.kafkaCode {
				t.Errorf("Kafka error %s (%d), want %s (%d)", info.GetKafkaErrorName(), info.GetKafkaErrorCode(), c.kafka, c.kafkaCode)
			}
			wantRetriable := c.want == connect.CodeUnavailable || c.want == connect.CodeAborted ||
				c.want == connect.CodeResourceExhausted || c.want == connect.CodeDeadlineExceeded
			if info.GetRetriable() != wantRetriable {
				t.Errorf("retriable = %v for code %v", info.GetRetriable(), c.want)
			}
		})
	}
	// An error that is already a Connect error keeps its code, untouched.
	denied := connect.NewError(connect.CodePermissionDenied, errors.New("no"))
	if got := connectError(denied); got != denied {
		t.Errorf("connectError(%v) = %v, want it unchanged", denied, got)
	}
	if connectError(nil) != nil {
		t.Error("connectError(nil) is not nil")
	}
}

func TestConnectErrorFactDetails(t *testing.T) {
	t.Parallel()
	oor := connectError(fmt.Errorf("fetch: %w", &agent.OffsetRangeError{Topic: "orders", Partition: 3, Requested: 99, LogStart: 10, HighWatermark: 42})).(*connect.Error)
	want := &stratav1.OffsetOutOfRange{Topic: "orders", Partition: 3, RequestedOffset: 99, LogStartOffset: 10, HighWatermark: 42}
	if got := detailOf[*stratav1.OffsetOutOfRange](t, oor); !proto.Equal(got, want) {
		t.Errorf("OffsetOutOfRange detail %v, want %v", got, want)
	}
	if !errors.Is(&agent.OffsetRangeError{}, coordinator.ErrOffsetOutOfRange) {
		t.Error("OffsetRangeError is not an ErrOffsetOutOfRange")
	}
	// The facts stay in the text too.
	const text = `offset out of range: topic "orders" partition 3 has offsets from log start 10 to high watermark 42, offset 99 is outside`
	if oor.Message() != "fetch: "+text {
		t.Errorf("message %q, want %q", oor.Message(), "fetch: "+text)
	}

	le := connectError(&agent.LimitError{Err: agent.ErrTooLarge, Name: "max.message.bytes", Limit: 1000, Actual: 1500, Msg: "record 0 is 1500 bytes, over max.message.bytes 1000"}).(*connect.Error)
	wantLimit := &stratav1.LimitExceeded{Name: "max.message.bytes", Limit: 1000, Actual: 1500}
	if got := detailOf[*stratav1.LimitExceeded](t, le); !proto.Equal(got, wantLimit) {
		t.Errorf("LimitExceeded detail %v, want %v", got, wantLimit)
	}
	if le.Message() != "too large: record 0 is 1500 bytes, over max.message.bytes 1000" {
		t.Errorf("message %q", le.Message())
	}
	cle := connectError(fmt.Errorf("create partitions: %w", &coordinator.LimitError{
		Err: coordinator.ErrInvalidPartitions, Name: "partitions", Limit: 10000, Actual: 100000, Msg: "at most 10000 partitions"})).(*connect.Error)
	wantPartitions := &stratav1.LimitExceeded{Name: "partitions", Limit: 10000, Actual: 100000}
	if got := detailOf[*stratav1.LimitExceeded](t, cle); !proto.Equal(got, wantPartitions) {
		t.Errorf("LimitExceeded detail of the index's limit %v, want %v", got, wantPartitions)
	}
	if cle.Message() != "create partitions: invalid argument: at most 10000 partitions" {
		t.Errorf("message %q", cle.Message())
	}
	if detailOf[*stratav1.OffsetOutOfRange](t, le) != nil {
		t.Error("a limit error carries an OffsetOutOfRange detail")
	}
}

// detailOf returns the error's detail of type M, or nil.
func detailOf[M proto.Message](t *testing.T, err *connect.Error) M {
	t.Helper()
	var zero M
	for _, d := range err.Details() {
		v, derr := d.Value()
		if derr != nil {
			t.Fatalf("detail %s: %v", d.Type(), derr)
		}
		if m, ok := v.(M); ok {
			return m
		}
	}
	return zero
}
