package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId: key 22, versions 0-5 (KIP-98, KIP-360).
//
// Hands an idempotent producer its producer id and epoch from the core (ids
// are cluster-wide: any agent may take the producer's next batch). v3+ let a
// producer that knows its id ask for an epoch bump (KIP-360) after an
// UNKNOWN_PRODUCER_ID or a timeout; the core decides. A transactional id is
// passed on as is; until transactions are served the core answers
// UNSUPPORTED_VERSION for it (transactions come with their own issue, and
// their APIs are not advertised).

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
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return ready(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	return ready(resp)
}
