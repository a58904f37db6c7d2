package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddOffsetsToTxn: key 25, versions 0-3 (KIP-98).
//
// Adds a consumer group to the producer's transaction through the core
// (TxnCore), opening it if none is open, so that TxnOffsetCommit may then
// stage the group's offsets: they become the group's committed offsets
// with the transaction's commit, and never with an abort. Kafka answers
// with the group's coordinator for the producer to send TxnOffsetCommit to;
// here any agent serves it. An empty group id is INVALID_GROUP_ID. Errors
// of the transaction as AddPartitionsToTxn's (24_add_partitions_to_txn.go).

func (s *Server) handleAddOffsetsToTxn(ctx context.Context, _ *clientConn, req *kmsg.AddOffsetsToTxnRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		var err error
		if req.Group == "" {
			err = ErrInvalidGroupID
		} else {
			err = s.core.AddOffsetsToTxn(ctx, txnProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch), req.Group)
		}
		resp.ErrorCode = txnErrorCode(err, req.Version)
		return resp, nil
	}
}
