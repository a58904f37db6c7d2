package connectapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// adminService is the Connect handler of strata.v1.AdminService
// (admin.proto) over an agent: topics and DeleteRecords.
type adminService struct{ a *agent.Agent }

var _ stratav1connect.AdminServiceHandler = (*adminService)(nil)

// CreateTopic is AdminService.CreateTopic: agent.Agent.CreateTopic.
func (s *adminService) CreateTopic(ctx context.Context, req *connect.Request[stratav1.CreateTopicRequest]) (*connect.Response[stratav1.CreateTopicResponse], error) {
	return unary(ctx, req, s.a.CreateTopic)
}

// DeleteTopic is AdminService.DeleteTopic: agent.Agent.DeleteTopic.
func (s *adminService) DeleteTopic(ctx context.Context, req *connect.Request[stratav1.DeleteTopicRequest]) (*connect.Response[stratav1.DeleteTopicResponse], error) {
	return unary(ctx, req, s.a.DeleteTopic)
}

// ListTopics is AdminService.ListTopics: agent.Agent.ListTopics.
func (s *adminService) ListTopics(ctx context.Context, req *connect.Request[stratav1.ListTopicsRequest]) (*connect.Response[stratav1.ListTopicsResponse], error) {
	return unary(ctx, req, s.a.ListTopics)
}

// DescribeTopic is AdminService.DescribeTopic: agent.Agent.DescribeTopic.
func (s *adminService) DescribeTopic(ctx context.Context, req *connect.Request[stratav1.DescribeTopicRequest]) (*connect.Response[stratav1.DescribeTopicResponse], error) {
	return unary(ctx, req, s.a.DescribeTopic)
}

// UpdateTopicConfig is AdminService.UpdateTopicConfig: agent.Agent.UpdateTopicConfig.
func (s *adminService) UpdateTopicConfig(ctx context.Context, req *connect.Request[stratav1.UpdateTopicConfigRequest]) (*connect.Response[stratav1.UpdateTopicConfigResponse], error) {
	return unary(ctx, req, s.a.UpdateTopicConfig)
}

// CreatePartitions is AdminService.CreatePartitions: agent.Agent.CreatePartitions.
func (s *adminService) CreatePartitions(ctx context.Context, req *connect.Request[stratav1.CreatePartitionsRequest]) (*connect.Response[stratav1.CreatePartitionsResponse], error) {
	return unary(ctx, req, s.a.CreatePartitions)
}

// DeleteRecords is AdminService.DeleteRecords: agent.Agent.DeleteRecords.
func (s *adminService) DeleteRecords(ctx context.Context, req *connect.Request[stratav1.DeleteRecordsRequest]) (*connect.Response[stratav1.DeleteRecordsResponse], error) {
	return unary(ctx, req, s.a.DeleteRecords)
}
