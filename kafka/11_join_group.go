package kafka

import (
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup: key 11, versions 2-9.
//
// The first step of Kafka's classic group protocol: the member names its
// protocol type ("consumer" for consumers) and the protocols (assignors) it
// supports, with their metadata; the core waits until every known member
// has rejoined or the rebalance timeout passed (KIP-62; the answer comes
// when the rebalance completes, from whichever agent each member asked),
// picks the protocol every member supports by vote, picks a leader and
// answers everyone with the new generation; the leader also gets every
// member's metadata, to assign from. Notes:
//
//   - v4+: a first join (empty member id) answers MEMBER_ID_REQUIRED with
//     the member's id, and the member joins again with it (KIP-394), so a
//     join retried after a timeout is not a second member.
//   - v5+: static members (group.instance.id, KIP-345) come back as
//     themselves: a known instance with an empty member id gets a new id,
//     the old one is fenced (FENCED_INSTANCE_ID), and a settled group is
//     not rebalanced for it unless it leads or its protocols (for
//     "consumer": the assignors and subscribed topics, not the owned
//     partitions or generation its metadata carries) changed.
//   - A protocol type or protocols that do not meet the group's are
//     INCONSISTENT_GROUP_PROTOCOL, and so is a join of a consumer group
//     (KIP-848, or the Connect API's native groups): a group is one kind or
//     the other, as in Kafka.
//   - A session timeout outside the agent's --group-min-session-timeout and
//     --group-max-session-timeout is INVALID_SESSION_TIMEOUT.
//   - v9's SkipAssignment is never set: a static leader coming back
//     rebalances the group instead. Reasons (v8+) are ignored.
//   - v0-1 predate rebalance timeouts and are not served (nor by Kafka 4).
//   - For protocol type "consumer", the subscription in the first
//     protocol's metadata and, in SyncGroup, the leader's assignment are
//     read (kmsg's ConsumerMemberMetadata and ConsumerMemberAssignment) so
//     that the group is described with its topics and partitions, also by
//     the Connect API (`strata group describe`); they are never acted on.

func (s *Server) handleJoinGroup(ctx context.Context, cc *clientConn, req *kmsg.JoinGroupRequest) func() (kmsg.Response, error) {
	clientID, remote := cc.clientID, cc.remote
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.Generation = -1
		j := JoinGroup{
			Group:                req.Group,
			MemberID:             req.MemberID,
			ClientID:             clientID,
			ClientHost:           clientHost(remote),
			ProtocolType:         req.ProtocolType,
			SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
			RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
			RequireKnownMemberID: req.Version >= 4,
		}
		if req.InstanceID != nil {
			j.InstanceID = *req.InstanceID
			j.RequireKnownMemberID = false // KIP-345: the instance id names it
		}
		for _, p := range req.Protocols {
			j.Protocols = append(j.Protocols, GroupProtocol{Name: p.Name, Metadata: p.Metadata})
		}
		if req.ProtocolType == "consumer" && len(req.Protocols) > 0 {
			// For describing the group only: a subscription that does
			// not parse is not the coordinator's business.
			var meta kmsg.ConsumerMemberMetadata
			if meta.ReadFrom(req.Protocols[0].Metadata) == nil {
				j.Topics = meta.Topics
			}
		}
		if req.Group == "" {
			resp.ErrorCode = errorCode(ErrInvalidGroupID)
			return resp, nil
		}
		res, err := s.core.JoinGroup(ctx, j)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			resp.MemberID = res.MemberID // the id to join with, for MEMBER_ID_REQUIRED
			return resp, nil
		}
		resp.Generation, resp.LeaderID, resp.MemberID = res.Generation, res.LeaderID, res.MemberID
		resp.Protocol = kmsg.StringPtr(res.Protocol)
		resp.ProtocolType = kmsg.StringPtr(res.ProtocolType)
		for _, m := range res.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
			if m.InstanceID != "" {
				rm.InstanceID = kmsg.StringPtr(m.InstanceID)
			}
			resp.Members = append(resp.Members, rm)
		}
		return resp, nil
	}
}

// clientHost is a member's host as Kafka reports it: "/" and the address.
func clientHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return "/" + h
	}
	return "/" + remote
}
