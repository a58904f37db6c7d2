package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId: key 22, versions 0-5 (KIP-98, KIP-360).
//
// Hands a producer its producer id and epoch from the core (ids are
// cluster-wide: any agent may take the producer's next batch).
//
// A transactional id (KIP-98) gets its epoch bumped, which fences every
// older producer of the id and aborts the transaction one left open. v3+
// let a producer send the id and epoch it has (KIP-360, after an abortable
// error or a timeout): the epoch is bumped only if that pair is the
// transactional id's current one (or the id's state expired); the pair the
// producer's own last bump, or the fence of its timed-out transaction,
// replaced gets the current pair back (a retry whose answer was lost, or
// KIP-588's recovery from a transaction timeout); any other pair is a
// zombie's (a new producer of the id took it without a pair) and is
// answered PRODUCER_FENCED (v4+) or INVALID_PRODUCER_EPOCH (v3, which
// predates PRODUCER_FENCED, KIP-588), as Kafka's coordinator answers. An idempotent producer that sends its id (v3+) gets that
// id with its epoch bumped, so its sequences start again at 0 (a new id
// when the old one expired or used up its epochs); Kafka hands out a new id
// there, which clients take the same way.

func (s *Server) handleInitProducerID(ctx context.Context, _ *clientConn, req *kmsg.InitProducerIDRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	ip := InitProducer{
		TransactionTimeout: time.Duration(req.TransactionTimeoutMillis) * time.Millisecond,
		ProducerID:         req.ProducerID,
		ProducerEpoch:      req.ProducerEpoch,
	}
	if req.TransactionalID != nil {
		ip.TransactionalID = *req.TransactionalID
	}
	id, epoch, err := s.core.InitProducerID(ctx, ip)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		if req.Version < 4 && resp.ErrorCode == kerr.ProducerFenced.Code {
			resp.ErrorCode = kerr.InvalidProducerEpoch.Code
		}
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return ready(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return ready(resp)
}
