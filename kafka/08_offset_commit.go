package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit: key 8, versions 2-9.
//
// Commits a group's offsets through the core, into the same committed
// offsets as the Connect API's groups. Who may commit is Kafka's rule:
//
//   - generation -1 and no member id: a simple commit, allowed while the
//     group has no members (consumers that assign partitions themselves);
//     otherwise UNKNOWN_MEMBER_ID;
//   - a classic member at the group's generation; another generation is
//     ILLEGAL_GENERATION, a member the group does not know UNKNOWN_MEMBER_ID,
//     a group waiting for its leader's assignment REBALANCE_IN_PROGRESS, a
//     static member replaced by a newer instance FENCED_INSTANCE_ID (v7+);
//   - a member of a consumer group (KIP-848, or the native API) at its
//     member epoch, sent in the generation field (v9).
//
// The generation check and the commit are one step in the index, so a commit
// of a generation a rebalance just replaced is refused even when it races
// the rebalance. Per partition: UNKNOWN_TOPIC_OR_PARTITION, and
// OFFSET_METADATA_TOO_LARGE over the agent's --offset-metadata-max-bytes
// (Kafka's offset.metadata.max.bytes); the other partitions are committed.
// Any offset is stored as given, negative ones included, as Kafka does:
// admin resets commit -1 (latest) and -2 (earliest) and the clients resolve
// them when they fetch the offset (kafkajs's admin.resetOffsets; franz-go
// and librdkafka take a negative committed offset for none and apply their
// reset policy). OffsetFetch returns it; the native API reads it as no
// committed offset.
// The retention time of v2-4 is ignored (offsets live as long as the
// group). The committed leader epoch (v6+, KIP-320) is kept as sent and
// returned by OffsetFetch v5+ (see 09_offset_fetch.go for why any epoch is
// safe to validate). v0-1 (ZooKeeper era) and v10 (topic ids) are not
// served.

func (s *Server) handleOffsetCommit(ctx context.Context, _ *clientConn, req *kmsg.OffsetCommitRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		c := OffsetCommit{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation, Offsets: map[TopicPartition]CommittedOffset{}}
		if req.InstanceID != nil {
			c.InstanceID = *req.InstanceID
		}
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				o := CommittedOffset{Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				c.Offsets[TopicPartition{rt.Topic, rp.Partition}] = o
			}
		}
		var errs map[TopicPartition]error
		var err error
		if req.Group == "" {
			err = ErrInvalidGroupID
		} else {
			errs, err = s.core.CommitOffsets(ctx, c)
		}
		for _, rt := range req.Topics {
			t := kmsg.NewOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetCommitResponseTopicPartition()
				p.Partition = rp.Partition
				if err != nil {
					p.ErrorCode = errorCode(err)
				} else {
					p.ErrorCode = errorCode(errs[TopicPartition{rt.Topic, rp.Partition}])
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
}
