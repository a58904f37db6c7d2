package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConsumerGroupDescribe: key 69, version 0 (KIP-848).
//
// Describes consumer groups (ConsumerGroupCore): state (KIP-848's: Empty
// without live members, Reconciling while a member still has partitions
// to take or to release, Stable otherwise, as `strata group describe`
// says), group epoch, the group's server assignor ("uniform" or "range"),
// and each live member's epoch, client id, client host, instance id (static
// members), subscription, assignment (what it owns) and target assignment.
// The assignment epoch is the group epoch. A group that does not exist, or
// is classic, is GROUP_ID_NOT_FOUND, as Kafka answers. Rack ids are not
// kept: null. v1 (KIP-1099's member type) is not served.

func (s *Server) handleConsumerGroupDescribe(ctx context.Context, _ *clientConn, req *kmsg.ConsumerGroupDescribeRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
		ids := map[string][16]byte{}
		assignment := func(tps []TopicPartition) kmsg.Assignment {
			a := kmsg.NewAssignment()
			byTopic := map[string]int{}
			for _, tp := range tps {
				i, ok := byTopic[tp.Topic]
				if !ok {
					id, known := ids[tp.Topic]
					if !known {
						if t, err := s.core.Topic(ctx, tp.Topic); err == nil {
							id = t.ID
						}
						ids[tp.Topic] = id
					}
					i = len(a.TopicPartitions)
					byTopic[tp.Topic] = i
					atp := kmsg.NewAssignmentTopicPartition()
					atp.Topic, atp.TopicID = tp.Topic, id
					a.TopicPartitions = append(a.TopicPartitions, atp)
				}
				a.TopicPartitions[i].Partitions = append(a.TopicPartitions[i].Partitions, tp.Partition)
			}
			return a
		}
		for _, group := range req.Groups {
			g := kmsg.NewConsumerGroupDescribeResponseGroup()
			g.Group = group
			var d ConsumerGroupDescription
			var err error
			if group == "" {
				err = ErrInvalidGroupID
			} else {
				d, err = s.core.DescribeConsumerGroup(ctx, group)
			}
			if err != nil {
				g.ErrorCode, g.ErrorMessage = errorCode(err), errorMessage(err)
				resp.Groups = append(resp.Groups, g)
				continue
			}
			g.State, g.Epoch, g.AssignmentEpoch, g.AssignorName = d.State, d.Epoch, d.Epoch, d.Assignor
			for _, m := range d.Members {
				gm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
				gm.MemberID, gm.MemberEpoch, gm.SubscribedTopics = m.MemberID, m.MemberEpoch, m.Topics
				gm.ClientID, gm.ClientHost = m.ClientID, m.ClientHost
				if m.InstanceID != "" {
					gm.InstanceID = kmsg.StringPtr(m.InstanceID)
				}
				if m.Regex != "" {
					gm.SubscribedTopicRegex = kmsg.StringPtr(m.Regex)
				}
				gm.Assignment, gm.TargetAssignment = assignment(m.Assigned), assignment(m.Target)
				g.Members = append(g.Members, gm)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil
	}
}
