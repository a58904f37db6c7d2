package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords: key 21, versions 0-2 (KIP-107).
//
// Moves each partition's log start offset up to the offset given (-1: the
// high watermark); records below it are no longer readable and their storage
// is reclaimed by the core in time. The answer is the new log start offset
// (the "low watermark"). An offset above the high watermark is
// OFFSET_OUT_OF_RANGE, and so is a negative one other than -1, as Kafka's
// Partition.deleteRecordsOnLeader answers; an offset below the current
// start changes nothing.

func (s *Server) handleDeleteRecords(ctx context.Context, _ *clientConn, req *kmsg.DeleteRecordsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewDeleteRecordsResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewDeleteRecordsResponseTopicPartition()
			p.Partition = rp.Partition
			if rp.Offset < -1 {
				p.ErrorCode, p.LowWatermark = errorCode(ErrOffsetOutOfRange), -1
			} else if low, err := s.core.DeleteRecords(ctx, rt.Topic, rp.Partition, rp.Offset); err != nil {
				p.ErrorCode, p.LowWatermark = errorCode(err), -1
			} else {
				p.LowWatermark = low
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return ready(resp)
}
