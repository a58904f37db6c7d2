package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups: key 42, versions 0-2.
//
// Deletes groups of either kind with their committed offsets. A group with
// live members is NON_EMPTY_GROUP; one that does not exist
// GROUP_ID_NOT_FOUND; an empty name INVALID_GROUP_ID.

func (s *Server) handleDeleteGroups(ctx context.Context, _ *clientConn, req *kmsg.DeleteGroupsRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, g := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group = g
			err := ErrInvalidGroupID
			if g != "" {
				err = s.core.DeleteGroup(ctx, g)
			}
			rg.ErrorCode = errorCode(err)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil
	}
}
