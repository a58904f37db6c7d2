package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch: key 23, versions 0-4 (KIP-101, KIP-320).
//
// Clients ask it to detect log truncation after a leader change: "where does
// epoch E end?". Strata's logs are never truncated and have no leader epochs
// (Metadata reports -1), so every epoch a client names is said to run to the
// end of the log: the answer is the requested epoch with the partition's high
// watermark as its end offset. A client therefore never sees truncation,
// which is the truth. Unknown topics or partitions answer
// UNKNOWN_TOPIC_OR_PARTITION. Replica (follower) requests are answered the
// same way.

func (s *Server) handleOffsetForLeaderEpoch(ctx context.Context, _ *clientConn, req *kmsg.OffsetForLeaderEpochRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewOffsetForLeaderEpochResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			p.Partition = rp.Partition
			if r, err := s.core.ListOffset(ctx, rt.Topic, rp.Partition, ListLatest, false); err != nil {
				p.ErrorCode = errorCode(err)
			} else {
				p.LeaderEpoch, p.EndOffset = rp.LeaderEpoch, r.Offset
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return ready(resp)
}
