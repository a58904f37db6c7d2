package connectapi

import (
	"context"
	"errors"
	"io"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// producerService is the Connect handler of strata.v1.ProducerService
// (producer.proto) over an agent: Produce, ProduceStream, InitProducerId and
// the transaction RPCs (KIP-98).
type producerService struct{ a *agent.Agent }

var _ stratav1connect.ProducerServiceHandler = (*producerService)(nil)

// Produce is ProducerService.Produce: agent.Agent.Produce.
func (s *producerService) Produce(ctx context.Context, req *connect.Request[stratav1.ProduceRequest]) (*connect.Response[stratav1.ProduceResponse], error) {
	return unary(ctx, req, s.a.Produce)
}

// InitProducerId is ProducerService.InitProducerId: agent.Agent.InitProducerId.
func (s *producerService) InitProducerId(ctx context.Context, req *connect.Request[stratav1.InitProducerIdRequest]) (*connect.Response[stratav1.InitProducerIdResponse], error) {
	return unary(ctx, req, s.a.InitProducerId)
}

// AddPartitionsToTxn is ProducerService.AddPartitionsToTxn: agent.Agent.AddPartitionsToTxn.
func (s *producerService) AddPartitionsToTxn(ctx context.Context, req *connect.Request[stratav1.AddPartitionsToTxnRequest]) (*connect.Response[stratav1.AddPartitionsToTxnResponse], error) {
	return unary(ctx, req, s.a.AddPartitionsToTxn)
}

// AddOffsetsToTxn is ProducerService.AddOffsetsToTxn: agent.Agent.AddOffsetsToTxn.
func (s *producerService) AddOffsetsToTxn(ctx context.Context, req *connect.Request[stratav1.AddOffsetsToTxnRequest]) (*connect.Response[stratav1.AddOffsetsToTxnResponse], error) {
	return unary(ctx, req, s.a.AddOffsetsToTxn)
}

// TxnOffsetCommit is ProducerService.TxnOffsetCommit: agent.Agent.TxnOffsetCommit.
func (s *producerService) TxnOffsetCommit(ctx context.Context, req *connect.Request[stratav1.TxnOffsetCommitRequest]) (*connect.Response[stratav1.TxnOffsetCommitResponse], error) {
	return unary(ctx, req, s.a.TxnOffsetCommit)
}

// EndTxn is ProducerService.EndTxn: agent.Agent.EndTxn.
func (s *producerService) EndTxn(ctx context.Context, req *connect.Request[stratav1.EndTxnRequest]) (*connect.Response[stratav1.EndTxnResponse], error) {
	return unary(ctx, req, s.a.EndTxn)
}

// maxInFlightStream bounds the requests of one ProduceStream appended but
// not yet answered.
const maxInFlightStream = 64

// ProduceStream is ProducerService.ProduceStream. Requests are appended as
// they arrive (agent.Agent.StartProduce) and answered in order as their
// segments commit, so one stream keeps several flushes in flight. A
// request's failure is its answer's ProduceError (the code it would get
// from Produce), and the stream goes on.
func (s *producerService) ProduceStream(ctx context.Context, stream *connect.BidiStream[stratav1.ProduceStreamRequest, stratav1.ProduceStreamResponse]) error {
	type inflight struct {
		id   uint64
		wait func(context.Context) (*stratav1.ProduceResponse, error)
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan inflight, maxInFlightStream)
	sendErr := make(chan error, 1)
	go func() {
		defer close(sendErr)
		for f := range queue {
			out := &stratav1.ProduceStreamResponse{RequestId: f.id}
			err := f.err
			if err == nil {
				out.Response, err = f.wait(ctx)
			}
			if err != nil {
				ce := connectError(err).(*connect.Error)
				out.Error = &stratav1.ProduceError{Code: ce.Code().String(), Message: ce.Message()}
			}
			if err := stream.Send(out); err != nil {
				sendErr <- err
				cancel()
				// Drain so the receiver never blocks on a full queue.
				for range queue {
				}
				return
			}
		}
	}()
	var recvErr error
	for {
		msg, err := stream.Receive()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				recvErr = err
			}
			break
		}
		wait, err := s.a.StartProduce(ctx, msg.GetRequest())
		select {
		case queue <- inflight{id: msg.GetRequestId(), wait: wait, err: err}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(queue)
	if err := <-sendErr; err != nil {
		return err
	}
	if recvErr != nil && ctx.Err() == nil {
		return recvErr
	}
	return nil
}
