package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConsumerGroupHeartbeat: key 68, versions 0-1 (KIP-848).
//
// The consumer group protocol's one call, over the core's server-side
// groups (ConsumerGroupCore), the same as the Connect API's native groups:
// the coordinator assigns, members reconcile by heartbeat. Notes:
//
//   - ServerAssignor, as Kafka's servers offer them: "uniform" (the default:
//     balanced and sticky) or "range" (per topic, contiguous ranges over the
//     subscribed members sorted by member id, co-partitioned topics split
//     alike); the group uses the one most members ask for. Another name is
//     UNSUPPORTED_ASSIGNOR. The rack id is not used.
//
//   - Epoch 0 joins: v0 members get their member id from the answer, v1
//     members (KIP-1082) send their own. -1 leaves.
//   - Static members (InstanceID), as Kafka: -2 is a static member's
//     temporary leave, answered with epoch -2: it keeps its assignment until
//     its session expires, and the instance joining again (epoch 0, a new
//     member id) takes its place and its assignment, the old member id then
//     FENCED_INSTANCE_ID. Joining with the instance id of a member that has
//     not left so and whose session lasts is UNRELEASED_INSTANCE_ID (a
//     killed static member's instance is released when its session ends).
//     A -2 without the instance id (franz-go sends none) is the static
//     leave of the member the member id names (Kafka would answer
//     INVALID_REQUEST and keep the member until its session ends: the same
//     outcome); a dynamic member's -2 is a leave.
//   - A subscription (topic names, or v1's regex, matched whole as a Go
//     regular expression) or an owned set left out (null) is unchanged.
//     Owned partitions and the assignment name topics by id (KIP-516); an
//     owned topic id no longer known is dropped from what the member owns.
//   - The assignment is sent with every answer.
//   - Errors: UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, FENCED_INSTANCE_ID,
//     UNRELEASED_INSTANCE_ID, INCONSISTENT_GROUP_PROTOCOL
//     (a classic group with members), INVALID_REQUEST, INVALID_GROUP_ID.

func (s *Server) handleConsumerGroupHeartbeat(ctx context.Context, cc *clientConn, req *kmsg.ConsumerGroupHeartbeatRequest) func() (kmsg.Response, error) {
	// Read now: the connection's client id is the next request's by the
	// time the answer runs.
	clientID, host := cc.clientID, clientHost(cc.remote)
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		fail := func(err error) (kmsg.Response, error) {
			resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
			resp.MemberEpoch = -1
			return resp, nil
		}
		if req.Group == "" {
			return fail(ErrInvalidGroupID)
		}
		hb := ConsumerHeartbeat{Group: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
			Topics: req.SubscribedTopicNames, Regex: req.SubscribedTopicRegex, ClientID: clientID, ClientHost: host}
		if req.InstanceID != nil {
			hb.InstanceID = *req.InstanceID
		}
		if req.ServerAssignor != nil {
			hb.ServerAssignor = *req.ServerAssignor
		}
		if req.Topics != nil {
			hb.Owned = []TopicPartition{}
			for _, rt := range req.Topics {
				t, err := s.core.TopicByID(ctx, rt.TopicID)
				if errors.Is(err, ErrUnknownTopicID) {
					continue // deleted: nothing of it is owned any more
				}
				if err != nil {
					return fail(err)
				}
				for _, p := range rt.Partitions {
					hb.Owned = append(hb.Owned, TopicPartition{t.Name, p})
				}
			}
		}
		res, err := s.core.ConsumerGroupHeartbeat(ctx, hb)
		if err != nil {
			return fail(err)
		}
		resp.MemberID = kmsg.StringPtr(res.MemberID)
		resp.MemberEpoch = res.MemberEpoch
		resp.HeartbeatIntervalMillis = int32(res.Interval.Milliseconds())
		if req.MemberEpoch < 0 {
			return resp, nil
		}
		assignment := &kmsg.ConsumerGroupHeartbeatResponseAssignment{}
		byTopic := map[string]int{}
		for _, tp := range res.Assigned {
			i, ok := byTopic[tp.Topic]
			if !ok {
				t, err := s.core.Topic(ctx, tp.Topic)
				if err != nil {
					return fail(fmt.Errorf("assigned topic %q: %w", tp.Topic, err))
				}
				i = len(assignment.Topics)
				byTopic[tp.Topic] = i
				assignment.Topics = append(assignment.Topics, kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{TopicID: t.ID})
			}
			assignment.Topics[i].Partitions = append(assignment.Topics[i].Partitions, tp.Partition)
		}
		resp.Assignment = assignment
		return resp, nil
	}
}
