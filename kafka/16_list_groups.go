package kafka

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups: key 16, versions 0-5.
//
// Lists every group, of both kinds (the Connect API's native groups are
// consumer groups), with its protocol type, its state (v4+, KIP-518) and
// its type, classic or consumer (v5+, KIP-848). The states filter (v4+)
// and the types filter (v5+) keep the groups whose state or type is one of
// those named, case-insensitively as Kafka compares them; an empty filter
// keeps all.

func (s *Server) handleListGroups(ctx context.Context, _ *clientConn, req *kmsg.ListGroupsRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		groups, err := s.core.ListGroups(ctx)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		keep := func(filter []string, v string) bool {
			return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
		}
		for _, g := range groups {
			if !keep(req.StatesFilter, g.State) || !keep(req.TypesFilter, g.Type) {
				continue
			}
			rg := kmsg.NewListGroupsResponseGroup()
			rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, g.ProtocolType, g.State, g.Type
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil
	}
}
