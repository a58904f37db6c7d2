package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup: key 13, versions 0-5.
//
// Removes classic members at once, so the group rebalances without waiting
// for their sessions to expire. v0-2 name one member; v3+ a batch, each by
// member id or by group.instance.id (KIP-345), each answered with its own
// error (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID). Reasons (v5+) are ignored.

func (s *Server) handleLeaveGroup(ctx context.Context, _ *clientConn, req *kmsg.LeaveGroupRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		var who []GroupMemberIdentity
		if req.Version < 3 {
			who = []GroupMemberIdentity{{MemberID: req.MemberID}}
		}
		for _, m := range req.Members {
			id := GroupMemberIdentity{MemberID: m.MemberID}
			if m.InstanceID != nil {
				id.InstanceID = *m.InstanceID
			}
			who = append(who, id)
		}
		if req.Group == "" {
			resp.ErrorCode = errorCode(ErrInvalidGroupID)
			return resp, nil
		}
		errs, err := s.core.LeaveGroup(ctx, req.Group, who)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		if req.Version < 3 {
			if len(errs) > 0 {
				resp.ErrorCode = errorCode(errs[0])
			}
			return resp, nil
		}
		for i, m := range req.Members {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
			if i < len(errs) {
				rm.ErrorCode = errorCode(errs[i])
			}
			resp.Members = append(resp.Members, rm)
		}
		return resp, nil
	}
}
