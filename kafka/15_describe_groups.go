package kafka

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups: key 15, versions 0-5.
//
// Describes groups of both kinds: a classic group with its state, protocol
// type, chosen protocol and members (client id, host, instance id (v4+),
// protocol metadata and the leader's assignment, as Kafka's admin tools
// show them); a consumer group (KIP-848, or the Connect API's native
// groups) with protocol type "consumer", state Stable while it has live
// members (Empty otherwise), and its members as Kafka describes a consumer
// group to classic tools (ConsumerGroup.asDescribedGroup): member id,
// client id and host (a KIP-848 member's request header and address; empty
// for native Connect members, whose heartbeats carry neither), the
// subscription as ConsumerMemberMetadata and the partitions the member
// owns as ConsumerMemberAssignment (version 0), so kafka-consumer-groups
// --describe, kadm and kafkajs show who owns what. A group that does not
// exist is state Dead with no error, as Kafka answers. Authorized
// operations (v3+) are not computed.

func (s *Server) handleDescribeGroups(ctx context.Context, _ *clientConn, req *kmsg.DescribeGroupsRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group = g
			var d GroupDescription
			err := ErrInvalidGroupID
			if g != "" {
				d, err = s.core.DescribeGroup(ctx, g)
			}
			if err != nil {
				rg.ErrorCode = errorCode(err)
				resp.Groups = append(resp.Groups, rg)
				continue
			}
			rg.State, rg.ProtocolType, rg.Protocol = d.State, d.ProtocolType, d.Protocol
			for _, m := range d.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
				rm.ProtocolMetadata, rm.MemberAssignment = orEmpty(m.Metadata), orEmpty(m.Assignment)
				if m.Assigned != nil {
					rm.ProtocolMetadata, rm.MemberAssignment = consumerProtocolMember(m)
				}
				if m.InstanceID != "" {
					rm.InstanceID = kmsg.StringPtr(m.InstanceID)
				}
				rg.Members = append(rg.Members, rm)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil
	}
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// consumerProtocolMember encodes a consumer group member's subscription and
// owned partitions as the classic consumer protocol's metadata and
// assignment, topics and partitions sorted.
func consumerProtocolMember(m GroupMember) (metadata, assignment []byte) {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = slices.Sorted(slices.Values(m.Topics))
	var a kmsg.ConsumerMemberAssignment
	byTopic := map[string][]int32{}
	for _, tp := range m.Assigned {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	for _, t := range slices.Sorted(maps.Keys(byTopic)) {
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic, at.Partitions = t, slices.Sorted(slices.Values(byTopic[t]))
		a.Topics = append(a.Topics, at)
	}
	return meta.AppendTo(nil), a.AppendTo(nil)
}
