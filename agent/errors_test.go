package agent

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// TestCoreErrorsMatchTheirSentinels: each of the core's error constructors
// gives an error that is the sentinels the front-ends map (the Connect
// front-end's table is tested in agent/connectapi, the Kafka one's in
// kafka/agentcore), and is not the ones that would map it elsewhere.
func TestCoreErrorsMatchTheirSentinels(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		is   []error
		not  []error
	}{
		{"unknown topic", unknownTopic("t", coordinator.ErrNotFound),
			[]error{ErrUnknownTopicOrPartition, coordinator.ErrNotFound}, []error{ErrUnknownTopicID}},
		{"unknown partition", unknownPartition("t", 5, 2),
			[]error{ErrUnknownTopicOrPartition, coordinator.ErrNotFound}, []error{ErrUnknownTopicID}},
		{"wrong topic id", wrongTopicID("t", uuid.New(), uuid.New()),
			[]error{ErrUnknownTopicID, coordinator.ErrNotFound}, []error{ErrUnknownTopicOrPartition}},
		{"topic deleted and recreated", errTopicDeleted("t", true),
			[]error{ErrUnknownTopicID, coordinator.ErrNotFound}, []error{ErrUnknownTopicOrPartition}},
		{"topic deleted and recreated while waiting", errTopicDeletedWhile("t", true, "the fetch waited for records"),
			[]error{ErrUnknownTopicID, coordinator.ErrNotFound}, []error{ErrUnknownTopicOrPartition}},
		{"topic deleted while waiting", errTopicDeletedWhile("t", false, "the fetch waited for records"),
			[]error{ErrUnknownTopicOrPartition, coordinator.ErrNotFound}, []error{ErrUnknownTopicID}},
		{"member epoch ahead", memberEpochError(6, 5),
			[]error{ErrFencedMemberEpoch, coordinator.ErrFenced}, []error{ErrStaleMemberEpoch, ErrUnknownMember}},
		{"member epoch behind", memberEpochError(4, 5),
			[]error{ErrStaleMemberEpoch, coordinator.ErrFenced}, []error{ErrFencedMemberEpoch, ErrUnknownMember}},
		{"unknown member", ErrUnknownMember, []error{coordinator.ErrFenced}, []error{ErrFencedMemberEpoch, ErrStaleMemberEpoch}},
		{"offset metadata too large", overLimit(errOffsetMetadataTooLarge, "offset-metadata-max-bytes", 4096, 5000, "5000 bytes"),
			[]error{ErrOffsetMetadataTooLarge, ErrTooLarge}, []error{ErrInvalid}},
		{"record too large", overLimit(errTooLarge, "max.message.bytes", 1000, 1500, "record is 1500 bytes"),
			[]error{ErrTooLarge}, []error{ErrOffsetMetadataTooLarge, ErrInvalid}},
		{"invalid", invalidf("partitions[%d]: topic name is empty", 3), []error{ErrInvalid}, []error{ErrTooLarge}},
		{"offset out of range", &OffsetRangeError{Topic: "t", Partition: 1, Requested: 9, LogStart: 2, HighWatermark: 5},
			[]error{coordinator.ErrOffsetOutOfRange}, []error{coordinator.ErrNotFound}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			wrapped := fmt.Errorf("outer: %w", c.err)
			for _, want := range c.is {
				if !errors.Is(wrapped, want) {
					t.Errorf("%v is not %v", wrapped, want)
				}
			}
			for _, not := range c.not {
				if errors.Is(wrapped, not) {
					t.Errorf("%v is %v, want not", wrapped, not)
				}
			}
		})
	}
	var le *LimitError
	if err := fmt.Errorf("produce: %w", overLimit(errTooLarge, "max.message.bytes", 1000, 1500, "record 0 is %d bytes", 1500)); !errors.As(err, &le) ||
		le.Name != "max.message.bytes" || le.Limit != 1000 || le.Actual != 1500 || le.Error() != "too large: record 0 is 1500 bytes" {
		t.Errorf("overLimit gave %+v", le)
	}
}
