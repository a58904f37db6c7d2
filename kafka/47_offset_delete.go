package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete: key 47, version 0 (KIP-496).
//
// Forgets a group's committed offsets of some partitions. As in Kafka, the
// offsets of a topic the group's live members subscribe to stay
// (GROUP_SUBSCRIBED_TO_TOPIC, per partition): for a classic group of
// protocol type "consumer" the subscriptions are read from the members'
// metadata; a consumer group (KIP-848, native) with members keeps all of its
// offsets the same way, since its subscriptions may be patterns. A classic
// group of another protocol type with members is NON_EMPTY_GROUP; a group
// that does not exist GROUP_ID_NOT_FOUND.

func (s *Server) handleOffsetDelete(ctx context.Context, _ *clientConn, req *kmsg.OffsetDeleteRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		if req.Group == "" {
			resp.ErrorCode = errorCode(ErrInvalidGroupID)
			return resp, nil
		}
		d, err := s.core.DescribeGroup(ctx, req.Group)
		if err == nil && d.State == "Dead" {
			err = ErrGroupIDNotFound
		}
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		subscribed := map[string]bool{}
		allSubscribed := false
		if len(d.Members) > 0 {
			switch {
			case d.Type == "consumer":
				allSubscribed = true
			case d.ProtocolType != "consumer":
				resp.ErrorCode = kerr.NonEmptyGroup.Code
				return resp, nil
			}
			for _, m := range d.Members {
				var meta kmsg.ConsumerMemberMetadata
				if err := meta.ReadFrom(m.Metadata); err != nil {
					allSubscribed = true // unreadable: keep everything
					continue
				}
				for _, t := range meta.Topics {
					subscribed[t] = true
				}
			}
		}
		var tps []TopicPartition
		for _, rt := range req.Topics {
			if allSubscribed || subscribed[rt.Topic] {
				continue
			}
			for _, rp := range rt.Partitions {
				tps = append(tps, TopicPartition{rt.Topic, rp.Partition})
			}
		}
		var delErr error
		if len(tps) > 0 {
			delErr = s.core.DeleteOffsets(ctx, req.Group, tps)
		}
		for _, rt := range req.Topics {
			t := kmsg.NewOffsetDeleteResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetDeleteResponseTopicPartition()
				p.Partition = rp.Partition
				switch {
				case allSubscribed || subscribed[rt.Topic]:
					p.ErrorCode = kerr.GroupSubscribedToTopic.Code
				default:
					p.ErrorCode = errorCode(delErr)
				}
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
}
