package connectapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// groupService is the Connect handler of strata.v1.GroupService
// (group.proto) over an agent: KIP-848-style group membership, committed
// offsets and group administration.
type groupService struct{ a *agent.Agent }

var _ stratav1connect.GroupServiceHandler = (*groupService)(nil)

// Heartbeat is GroupService.Heartbeat: agent.Agent.Heartbeat.
func (s *groupService) Heartbeat(ctx context.Context, req *connect.Request[stratav1.HeartbeatRequest]) (*connect.Response[stratav1.HeartbeatResponse], error) {
	return unary(ctx, req, s.a.Heartbeat)
}

// LeaveGroup is GroupService.LeaveGroup: agent.Agent.LeaveGroup.
func (s *groupService) LeaveGroup(ctx context.Context, req *connect.Request[stratav1.LeaveGroupRequest]) (*connect.Response[stratav1.LeaveGroupResponse], error) {
	return unary(ctx, req, s.a.LeaveGroup)
}

// CommitOffsets is GroupService.CommitOffsets: agent.Agent.CommitOffsets.
func (s *groupService) CommitOffsets(ctx context.Context, req *connect.Request[stratav1.CommitOffsetsRequest]) (*connect.Response[stratav1.CommitOffsetsResponse], error) {
	return unary(ctx, req, s.a.CommitOffsets)
}

// FetchOffsets is GroupService.FetchOffsets: agent.Agent.FetchOffsets.
func (s *groupService) FetchOffsets(ctx context.Context, req *connect.Request[stratav1.FetchOffsetsRequest]) (*connect.Response[stratav1.FetchOffsetsResponse], error) {
	return unary(ctx, req, s.a.FetchOffsets)
}

// ListGroups is GroupService.ListGroups: agent.Agent.ListGroups.
func (s *groupService) ListGroups(ctx context.Context, req *connect.Request[stratav1.ListGroupsRequest]) (*connect.Response[stratav1.ListGroupsResponse], error) {
	return unary(ctx, req, s.a.ListGroups)
}

// DescribeGroup is GroupService.DescribeGroup: agent.Agent.DescribeGroup.
func (s *groupService) DescribeGroup(ctx context.Context, req *connect.Request[stratav1.DescribeGroupRequest]) (*connect.Response[stratav1.DescribeGroupResponse], error) {
	return unary(ctx, req, s.a.DescribeGroup)
}

// DeleteGroup is GroupService.DeleteGroup: agent.Agent.DeleteGroup.
func (s *groupService) DeleteGroup(ctx context.Context, req *connect.Request[stratav1.DeleteGroupRequest]) (*connect.Response[stratav1.DeleteGroupResponse], error) {
	return unary(ctx, req, s.a.DeleteGroup)
}

// ResetOffsets is GroupService.ResetOffsets: agent.Agent.ResetOffsets.
func (s *groupService) ResetOffsets(ctx context.Context, req *connect.Request[stratav1.ResetOffsetsRequest]) (*connect.Response[stratav1.ResetOffsetsResponse], error) {
	return unary(ctx, req, s.a.ResetOffsets)
}
