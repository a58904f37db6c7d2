package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit: key 28, versions 0-3 (KIP-98, KIP-447).
//
// Stages a group's offsets in the producer's transaction through the core
// (TxnCore): they become the group's committed offsets when the transaction
// commits, and are dropped when it aborts. The group must have been added
// with AddOffsetsToTxn (INVALID_TXN_STATE otherwise). Offsets are staged all
// or none: an error goes on every partition (UNKNOWN_TOPIC_OR_PARTITION,
// OFFSET_METADATA_TOO_LARGE over --offset-metadata-max-bytes,
// INVALID_PRODUCER_EPOCH for a fenced producer, as Kafka's group coordinator
// answers it). The committed leader epoch (v2+) is kept as OffsetCommit
// keeps it.
//
// v3 (KIP-447) names the group member the producer consumes for: member
// id, group instance id and generation (a consumer group's member: its
// member epoch). They are checked as Kafka's group coordinator checks a
// transactional commit, in the same step in the index as the staging, so a
// zombie whose generation a rebalance ended cannot stage offsets for
// partitions that moved on: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION (a
// consumer group's stale member epoch too), FENCED_INSTANCE_ID. Unlike
// OffsetCommit, a classic group waiting for its leader's assignment takes
// the commit. Generation -1 with no member id and no instance id (and v0-2)
// check nothing: the transactional id's epoch fences zombie producers.
// v4+ (KIP-890 part 2) are not served.

func (s *Server) handleTxnOffsetCommit(ctx context.Context, _ *clientConn, req *kmsg.TxnOffsetCommitRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		offsets := map[TopicPartition]CommittedOffset{}
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				o := CommittedOffset{Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				offsets[TopicPartition{rt.Topic, rp.Partition}] = o
			}
		}
		var err error
		if req.Group == "" {
			err = ErrInvalidGroupID
		} else {
			member := TxnGroupMember{Generation: -1}
			if req.Version >= 3 {
				member = TxnGroupMember{MemberID: req.MemberID, Generation: req.Generation}
				if req.InstanceID != nil {
					member.InstanceID = *req.InstanceID
				}
			}
			err = s.core.TxnOffsetCommit(ctx, txnProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch), req.Group, member, offsets)
		}
		code := errorCode(err)
		if code == errorCode(ErrProducerFenced) {
			code = errorCode(ErrInvalidProducerEpoch)
		}
		for _, rt := range req.Topics {
			t := kmsg.NewTxnOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = code
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
}
