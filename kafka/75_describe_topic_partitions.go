package kafka

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeTopicPartitions: key 75, version 0 (KIP-966).
//
// Metadata's partition view, paginated: topics asked (all when the list is
// empty) in name order, from the cursor's (topic, partition) on, at most
// ResponsePartitionLimit partitions per answer (Kafka's default and cap,
// 2000, when 0 or higher); a NextCursor says where the next request starts.
// Leaders, replicas and epochs are Metadata's (leaders.go). Eligible leader
// replicas (ELR) are empty: there are no replicas to elect.

// maxPartitionsPerDescribe is Kafka's max.request.partition.size.limit default.
const maxPartitionsPerDescribe = 2000

func (s *Server) handleDescribeTopicPartitions(ctx context.Context, cc *clientConn, req *kmsg.DescribeTopicPartitionsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
	brokers, brokersErr := s.brokersFor(ctx, cc)
	limit := req.ResponsePartitionLimit
	if limit <= 0 || limit > maxPartitionsPerDescribe {
		limit = maxPartitionsPerDescribe
	}

	type asked struct {
		name string
		t    Topic
		err  error
	}
	var topics []asked
	if len(req.Topics) == 0 {
		all, err := s.core.Topics(ctx)
		if err != nil {
			s.log.Warn("DescribeTopicPartitions: listing topics failed", "err", err)
		}
		for _, t := range all {
			topics = append(topics, asked{name: t.Name, t: t})
		}
	} else {
		for _, rt := range req.Topics {
			t, err := s.core.Topic(ctx, rt.Topic)
			topics = append(topics, asked{name: rt.Topic, t: t, err: err})
		}
	}
	slices.SortFunc(topics, func(a, b asked) int { return strings.Compare(a.name, b.name) })

	left := limit
	for _, a := range topics {
		first := int32(0)
		if c := req.Cursor; c != nil {
			if a.name < c.Topic {
				continue
			}
			if a.name == c.Topic {
				first = c.Partition
			}
		}
		rt := kmsg.NewDescribeTopicPartitionsResponseTopic()
		rt.Topic = kmsg.StringPtr(a.name)
		if a.err != nil {
			rt.ErrorCode = errorCode(a.err)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if left == 0 {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: a.name, Partition: first}
			break
		}
		rt.TopicID = a.t.ID
		for p := first; p < a.t.Partitions; p++ {
			if left == 0 {
				resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: a.name, Partition: p}
				break
			}
			left--
			rp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			rp.Partition = p
			leader, code := leaderFor(brokers, brokersErr, a.t.ID, p)
			rp.ErrorCode, rp.LeaderID = code, leader
			rp.Replicas, rp.ISR = []int32{}, []int32{}
			if leader >= 0 {
				rp.Replicas, rp.ISR = []int32{leader}, []int32{leader}
			}
			rp.EligibleLeaderReplicas, rp.LastKnownELR, rp.OfflineReplicas = []int32{}, []int32{}, []int32{}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
		if resp.NextCursor != nil {
			break
		}
	}
	return ready(resp)
}
