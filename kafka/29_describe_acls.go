package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeAcls: key 29, versions 1-3 (KIP-140; v1 adds resource pattern
// types, KIP-290; v2 is flexible). CreateAcls (30_create_acls.go) and
// DeleteAcls (31_delete_acls.go) answer alike.
//
// Strata has no authorizer: a client that reaches a Kafka listener may do
// what any client may, and access is the network's to control. Kafka with
// no authorizer configured (authorizer.class.name unset) answers every ACL
// request SECURITY_DISABLED, "No Authorizer is configured.", and so do we:
// consoles (AKHQ, Kafka UI, Kafdrop) show "no ACLs" or "ACLs disabled",
// and kafka-acls.sh says why nothing changed.

// noAuthorizer is the error message of every ACL answer.
const noAuthorizer = "No Authorizer is configured."

func (s *Server) handleDescribeAcls(_ context.Context, _ *clientConn, req *kmsg.DescribeACLsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(noAuthorizer)
	return ready(resp)
}
