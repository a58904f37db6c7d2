package agent

// AdminService.DeleteRecords: Kafka's DeleteRecords (KIP-107). It moves log
// start offsets in the index; the janitor deletes the objects later, once
// no partition's entry points at them (janitor.go).

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// DeleteRecords is AdminService.DeleteRecords (strata/v1; Kafka's
// DeleteRecords, KIP-107) in the core; the Connect front-end,
// agent/connectapi, wraps it. Errors: ErrInvalid, coordinator.ErrNotFound
// for a partition the topic lacks, coordinator.ErrOffsetOutOfRange for an
// offset above the high watermark, ErrNotSupported from an index without
// lifecycle support.
func (a *Agent) DeleteRecords(ctx context.Context, req *stratav1.DeleteRecordsRequest) (*stratav1.DeleteRecordsResponse, error) {
	lc, ok := a.index.(coordinator.Lifecycle)
	if !ok {
		return nil, &hintError{msg: fmt.Sprintf("delete records: the index %T does not support it", a.index), err: ErrNotSupported}
	}
	name := req.GetTopic()
	parts := req.GetPartitions()
	if len(parts) == 0 {
		return nil, invalidf("delete records of topic %q: no partitions given", name)
	}
	t, err := a.index.DescribeTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	seen := make(map[int32]bool, len(parts))
	for _, p := range parts {
		switch {
		case p.GetPartition() < 0 || p.GetPartition() >= t.Config.Partitions:
			return nil, fmt.Errorf("delete records: %w: topic %q has partitions 0 to %d, not %d",
				coordinator.ErrNotFound, name, t.Config.Partitions-1, p.GetPartition())
		case seen[p.GetPartition()]:
			return nil, invalidf("delete records of topic %q: partition %d given twice", name, p.GetPartition())
		case p.GetBeforeOffset() < -1:
			return nil, invalidf("delete records of topic %q partition %d: offset %d; want -1 (the high watermark) or at least 0",
				name, p.GetPartition(), p.GetBeforeOffset())
		}
		seen[p.GetPartition()] = true
	}
	out := &stratav1.DeleteRecordsResponse{Partitions: make([]*stratav1.DeleteRecordsResult, 0, len(parts))}
	for _, p := range parts {
		res, err := lc.DeleteRecords(ctx, t.ID, p.GetPartition(), p.GetBeforeOffset())
		if err != nil {
			// The index names the topic by id; the user named it.
			op := fmt.Sprintf("delete records of topic %q partition %d before offset %d", name, p.GetPartition(), p.GetBeforeOffset())
			switch {
			case errors.Is(err, coordinator.ErrOffsetOutOfRange):
				err = fmt.Errorf("delete records: %w", &OffsetRangeError{Topic: name, Partition: p.GetPartition(), Requested: p.GetBeforeOffset(),
					LogStart: res.LogStartOffset, HighWatermark: res.HighWatermark})
			case errors.Is(err, coordinator.ErrNotFound):
				err = fmt.Errorf("%s: %w: no such partition", op, coordinator.ErrNotFound)
			default:
				err = fmt.Errorf("topic %q: %w", name, err)
			}
			return nil, err
		}
		out.Partitions = append(out.Partitions, &stratav1.DeleteRecordsResult{
			Partition: p.GetPartition(), LogStartOffset: res.LogStartOffset, HighWatermark: res.HighWatermark})
	}
	return out, nil
}
