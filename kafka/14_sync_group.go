package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup: key 14, versions 0-5.
//
// The second step of the classic protocol: the leader sends the assignment
// it computed for every member, the followers send none and wait until the
// leader's arrives (from whichever agent the leader asked); each gets its
// own. A member the assignment leaves out gets an empty one. Errors:
// REBALANCE_IN_PROGRESS when a new rebalance started meanwhile (rejoin),
// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID (v3+), and
// INCONSISTENT_GROUP_PROTOCOL when v5's protocol type or name are not the
// group's. A follower whose leader dies waits until the leader's session
// expires, then gets REBALANCE_IN_PROGRESS.

func (s *Server) handleSyncGroup(ctx context.Context, _ *clientConn, req *kmsg.SyncGroupRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		sg := SyncGroup{Group: req.Group, MemberID: req.MemberID, Generation: req.Generation, Assignments: map[string][]byte{}}
		if req.InstanceID != nil {
			sg.InstanceID = *req.InstanceID
		}
		if req.ProtocolType != nil {
			sg.ProtocolType = *req.ProtocolType
		}
		if req.Protocol != nil {
			sg.Protocol = *req.Protocol
		}
		for _, a := range req.GroupAssignment {
			sg.Assignments[a.MemberID] = a.MemberAssignment
			if req.ProtocolType != nil && *req.ProtocolType != "consumer" {
				continue
			}
			// Read as the consumer protocol's for describing the group
			// (11_join_group.go); an assignment that does not parse as one
			// is left undescribed.
			var ca kmsg.ConsumerMemberAssignment
			if ca.ReadFrom(a.MemberAssignment) != nil {
				continue
			}
			if sg.Partitions == nil {
				sg.Partitions = map[string][]TopicPartition{}
			}
			for _, t := range ca.Topics {
				for _, p := range t.Partitions {
					sg.Partitions[a.MemberID] = append(sg.Partitions[a.MemberID], TopicPartition{t.Topic, p})
				}
			}
		}
		if req.Group == "" {
			resp.ErrorCode = errorCode(ErrInvalidGroupID)
			return resp, nil
		}
		res, err := s.core.SyncGroup(ctx, sg)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		resp.MemberAssignment = res.Assignment
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(res.ProtocolType), kmsg.StringPtr(res.Protocol)
		return resp, nil
	}
}
