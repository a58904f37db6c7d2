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
	return produceStream(ctx, stream, s.a.StartProduce,
		func(id uint64, resp *stratav1.ProduceResponse, perr *stratav1.ProduceError) *stratav1.ProduceStreamResponse {
			return &stratav1.ProduceStreamResponse{RequestId: id, Response: resp, Error: perr}
		})
}

// ProduceBatches is ProducerService.ProduceBatches:
// agent.Agent.StartProduceBatches, each partition's error mapped into its
// result (partitionError).
func (s *producerService) ProduceBatches(ctx context.Context, req *connect.Request[stratav1.ProduceBatchesRequest]) (*connect.Response[stratav1.ProduceBatchesResponse], error) {
	wait, err := s.startProduceBatches(ctx, req.Msg)
	if err != nil {
		return nil, connectError(err)
	}
	resp, _ := wait(ctx)
	return connect.NewResponse(resp), nil
}

// ProduceBatchesStream is ProducerService.ProduceBatchesStream: requests
// are appended as they arrive and answered in order as their segments
// commit, as ProduceStream does.
func (s *producerService) ProduceBatchesStream(ctx context.Context, stream *connect.BidiStream[stratav1.ProduceBatchesStreamRequest, stratav1.ProduceBatchesStreamResponse]) error {
	return produceStream(ctx, stream, s.startProduceBatches,
		func(id uint64, resp *stratav1.ProduceBatchesResponse, perr *stratav1.ProduceError) *stratav1.ProduceBatchesStreamResponse {
			return &stratav1.ProduceBatchesStreamResponse{RequestId: id, Response: resp, Error: perr}
		})
}

// startProduceBatches is agent.Agent.StartProduceBatches with each
// partition's error mapped into its result.
func (s *producerService) startProduceBatches(ctx context.Context, req *stratav1.ProduceBatchesRequest) (func(context.Context) (*stratav1.ProduceBatchesResponse, error), error) {
	wait, err := s.a.StartProduceBatches(ctx, req)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (*stratav1.ProduceBatchesResponse, error) {
		resp, errs := wait(ctx)
		for i, err := range errs {
			if err != nil {
				resp.Partitions[i].Error = partitionError(err)
			}
		}
		return resp, nil
	}, nil
}

// streamRequest is a produce stream's request message: an id and the
// request.
type streamRequest[In, Req any] interface {
	*In
	GetRequestId() uint64
	GetRequest() *Req
}

// produceStream runs a produce stream: each request is started (appended)
// as it arrives and answered in order once its wait returns, with up to
// maxInFlightStream requests started but not answered. A request's failure
// is its answer's ProduceError (the code the unary call would get), and the
// stream goes on.
func produceStream[Req, Resp, In, Out any, PIn streamRequest[In, Req]](ctx context.Context, stream *connect.BidiStream[In, Out],
	start func(context.Context, *Req) (func(context.Context) (*Resp, error), error),
	answer func(id uint64, resp *Resp, perr *stratav1.ProduceError) *Out) error {
	type inflight struct {
		id   uint64
		wait func(context.Context) (*Resp, error)
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan inflight, maxInFlightStream)
	sendErr := make(chan error, 1)
	go func() {
		defer close(sendErr)
		for f := range queue {
			var resp *Resp
			var perr *stratav1.ProduceError
			err := f.err
			if err == nil {
				resp, err = f.wait(ctx)
			}
			if err != nil {
				ce := connectError(err).(*connect.Error)
				perr = &stratav1.ProduceError{Code: ce.Code().String(), Message: ce.Message()}
			}
			if err := stream.Send(answer(f.id, resp, perr)); err != nil {
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
		wait, err := start(ctx, PIn(msg).GetRequest())
		select {
		case queue <- inflight{id: PIn(msg).GetRequestId(), wait: wait, err: err}:
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
