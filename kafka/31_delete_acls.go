package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteAcls: key 31, versions 1-3 (KIP-140, KIP-290). No authorizer
// (29_describe_acls.go): each filter's result is SECURITY_DISABLED,
// "No Authorizer is configured.", matching no ACLs, as Kafka answers.

func (s *Server) handleDeleteAcls(_ context.Context, _ *clientConn, req *kmsg.DeleteACLsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	for i := range resp.Results {
		r := kmsg.NewDeleteACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(noAuthorizer)
		r.MatchingACLs = []kmsg.DeleteACLsResponseResultMatchingACL{}
		resp.Results[i] = r
	}
	return ready(resp)
}
