package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn: key 26, versions 0-3 (KIP-98).
//
// Commits or aborts the producer's transaction through the core (TxnCore).
// The answer comes once the control records (Kafka's markers) are in every
// partition of the transaction and the staged offsets are committed or
// dropped, so a read_committed consumer sees the outcome as soon as the
// producer does. Kafka answers before its markers are written; answering
// after costs the producer one segment commit and saves it the
// CONCURRENT_TRANSACTIONS retries of its next transaction. Errors:
// INVALID_TXN_STATE (nothing open, or a commit of a transaction being
// aborted), PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2),
// INVALID_PRODUCER_ID_MAPPING, CONCURRENT_TRANSACTIONS; a storage error
// (KAFKA_STORAGE_ERROR) leaves the decision made, and a retry finishes it.
// v4 and v5 (KIP-890 part 2: the epoch bump on every EndTxn) are not served.

func (s *Server) handleEndTxn(ctx context.Context, _ *clientConn, req *kmsg.EndTxnRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		err := s.core.EndTxn(ctx, txnProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch), req.Commit)
		resp.ErrorCode = txnErrorCode(err, req.Version)
		return resp, nil
	}
}
