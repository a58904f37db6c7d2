package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestErrorTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err       error
		want      *kerr.Error
		retriable bool
	}{
		{nil, nil, false},
		{fmt.Errorf("topic x: %w", ErrUnknownTopicOrPartition), kerr.UnknownTopicOrPartition, true},
		{fmt.Errorf("wrapped: %w", ErrUnavailable), kerr.KafkaStorageError, true},
		{ErrMessageTooLarge, kerr.MessageTooLarge, false},
		{ErrCorruptMessage, kerr.CorruptMessage, true},
		{ErrOffsetOutOfRange, kerr.OffsetOutOfRange, false},
		{ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber, false},
		{ErrThrottled, kerr.ThrottlingQuotaExceeded, true},
		{context.DeadlineExceeded, kerr.RequestTimedOut, true},
		{fmt.Errorf("%w: acks 2", kerr.InvalidRequiredAcks), kerr.InvalidRequiredAcks, false},
		{errors.New("something else"), kerr.UnknownServerError, false},
	} {
		got := kafkaError(tc.err)
		if got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
			continue
		}
		if got != nil && got.Retriable != tc.retriable {
			t.Errorf("%v: retriable %v, want %v", tc.err, got.Retriable, tc.retriable)
		}
	}
	// Every sentinel has its own row.
	seen := map[*kerr.Error]bool{}
	for _, e := range errorTable {
		if seen[e.code] && e.err != context.Canceled && e.err != context.DeadlineExceeded {
			t.Errorf("two sentinels map to %s", e.code.Message)
		}
		seen[e.code] = true
	}
}
