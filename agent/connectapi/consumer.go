package connectapi

import (
	"context"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// consumerService is the Connect handler of strata.v1.ConsumerService
// (consumer.proto) over an agent: Fetch, Subscribe and ListOffsets.
type consumerService struct{ a *agent.Agent }

var _ stratav1connect.ConsumerServiceHandler = (*consumerService)(nil)

// Fetch is ConsumerService.Fetch: agent.Agent.Fetch.
func (s *consumerService) Fetch(ctx context.Context, req *connect.Request[stratav1.FetchRequest]) (*connect.Response[stratav1.FetchResponse], error) {
	return unary(ctx, req, s.a.Fetch)
}

// ListOffsets is ConsumerService.ListOffsets: agent.Agent.ListOffsets.
func (s *consumerService) ListOffsets(ctx context.Context, req *connect.Request[stratav1.ListOffsetsRequest]) (*connect.Response[stratav1.ListOffsetsResponse], error) {
	return unary(ctx, req, s.a.ListOffsets)
}

// Subscribe is ConsumerService.Subscribe over agent.Agent.Subscribe: the
// response headers go once every start position is fixed, then a message
// per batch of records (or keep-alive). The stream rides out the failures
// this front-end answers Unavailable, the ones clients retry.
func (s *consumerService) Subscribe(ctx context.Context, req *connect.Request[stratav1.SubscribeRequest], stream *connect.ServerStream[stratav1.SubscribeResponse]) error {
	return connectError(s.a.Subscribe(ctx, req.Msg, agent.SubscribeStream{
		Started:   func() error { return stream.Send(nil) },
		Send:      stream.Send,
		Transient: func(err error) bool { return connect.CodeOf(connectError(err)) == connect.CodeUnavailable },
	}))
}

// FetchBatches is ConsumerService.FetchBatches: agent.Agent.FetchBatches,
// each partition's error mapped into its result (partitionError).
func (s *consumerService) FetchBatches(ctx context.Context, req *connect.Request[stratav1.FetchBatchesRequest]) (*connect.Response[stratav1.FetchBatchesResponse], error) {
	resp, errs, err := s.a.FetchBatches(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	for i, err := range errs {
		if err != nil {
			resp.Partitions[i].Error = partitionError(err)
		}
	}
	return connect.NewResponse(resp), nil
}
