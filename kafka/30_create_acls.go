package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateAcls: key 30, versions 1-3 (KIP-140, KIP-290). No authorizer
// (29_describe_acls.go): each creation's result is SECURITY_DISABLED,
// "No Authorizer is configured.", and nothing is stored, as Kafka answers.

func (s *Server) handleCreateAcls(_ context.Context, _ *clientConn, req *kmsg.CreateACLsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	for i := range resp.Results {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(noAuthorizer)
		resp.Results[i] = r
	}
	return ready(resp)
}
