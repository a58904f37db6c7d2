package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets: key 2, versions 1-8.
//
// Per partition, the offset for a timestamp (ms): the first offset whose
// record's timestamp is at or after it, with that timestamp; or one of the
// special values: -1 latest (the high watermark, or the last stable offset
// for isolation_level read_committed, v2+), -2 earliest (the log start
// offset), -3 the record with the largest timestamp (v7+, KIP-734), -4
// earliest local (v8+, KIP-1005: the same as earliest, every offset is
// "local" to the object store). Notes:
//
//   - v0 (a list of offsets per partition) is not served.
//   - A timestamp past every record answers offset -1, timestamp -1, as
//     Kafka does. Leader epochs are -1.
//   - Any other negative timestamp is INVALID_REQUEST.

const listEarliestLocal = -4

func (s *Server) handleListOffsets(ctx context.Context, _ *clientConn, req *kmsg.ListOffsetsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	readCommitted := req.IsolationLevel == 1
	for _, rt := range req.Topics {
		t := kmsg.NewListOffsetsResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			ts := rp.Timestamp
			if ts == listEarliestLocal {
				ts = ListEarliest
			}
			if ts < ListMaxTimestamp {
				p.ErrorCode = kerr.InvalidRequest.Code
			} else if r, err := s.core.ListOffset(ctx, rt.Topic, rp.Partition, ts, readCommitted); err != nil {
				p.ErrorCode = errorCode(err)
			} else {
				p.Offset, p.Timestamp = r.Offset, r.Timestamp
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return ready(resp)
}
