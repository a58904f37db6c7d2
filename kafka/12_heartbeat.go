package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat: key 12, versions 0-4.
//
// Keeps a classic member's session alive: a member silent for its session
// timeout (judged by the index's clock) is removed and the group
// rebalances. During a rebalance the answer is REBALANCE_IN_PROGRESS and
// the member rejoins; an unknown member is UNKNOWN_MEMBER_ID, another
// generation ILLEGAL_GENERATION, a replaced static member FENCED_INSTANCE_ID
// (v3+). Any agent serves it.

func (s *Server) handleHeartbeat(ctx context.Context, _ *clientConn, req *kmsg.HeartbeatRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		instance := ""
		if req.InstanceID != nil {
			instance = *req.InstanceID
		}
		if req.Group == "" {
			resp.ErrorCode = errorCode(ErrInvalidGroupID)
			return resp, nil
		}
		resp.ErrorCode = errorCode(s.core.Heartbeat(ctx, req.Group, req.MemberID, instance, req.Generation))
		return resp, nil
	}
}
