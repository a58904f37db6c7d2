package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddPartitionsToTxn: key 24, versions 0-3 (KIP-98).
//
// Adds partitions to the producer's transaction through the core (TxnCore),
// opening it if none is open, before the producer sends them transactional
// batches. All or none are added, as in Kafka: a partition that does not
// exist answers UNKNOWN_TOPIC_OR_PARTITION and every other partition
// OPERATION_NOT_ATTEMPTED; an error of the transaction (PRODUCER_FENCED,
// INVALID_PRODUCER_ID_MAPPING, INVALID_TXN_STATE, CONCURRENT_TRANSACTIONS,
// retriable for clients) goes on every partition. v0-1 answer a fenced
// producer INVALID_PRODUCER_EPOCH, as Kafka does for clients from before
// KIP-588. v4+ (KIP-890 part 2: batches of transactions, and the brokers'
// own verify-only calls) are not served, so clients keep to transaction
// protocol version 1.

func (s *Server) handleAddPartitionsToTxn(ctx context.Context, _ *clientConn, req *kmsg.AddPartitionsToTxnRequest) func() (kmsg.Response, error) {
	return func() (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
		var parts []TopicPartition
		unknown := map[TopicPartition]bool{}
		for _, rt := range req.Topics {
			t, err := s.core.Topic(ctx, rt.Topic)
			for _, p := range rt.Partitions {
				tp := TopicPartition{rt.Topic, p}
				parts = append(parts, tp)
				if errors.Is(err, ErrUnknownTopicOrPartition) || (err == nil && (p < 0 || p >= t.Partitions)) {
					unknown[tp] = true
				}
			}
		}
		var err error
		switch {
		case len(unknown) > 0:
			err = fmt.Errorf("%w: not attempted: another partition of the request does not exist", kerr.OperationNotAttempted)
		case len(parts) == 0:
			err = fmt.Errorf("%w: AddPartitionsToTxn names no partitions", ErrInvalidRequest)
		default:
			err = s.core.AddPartitionsToTxn(ctx, txnProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch), parts)
		}
		code := txnErrorCode(err, req.Version)
		for _, rt := range req.Topics {
			t := kmsg.NewAddPartitionsToTxnResponseTopic()
			t.Topic = rt.Topic
			for _, p := range rt.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition = p
				rp.ErrorCode = code
				if unknown[TopicPartition{rt.Topic, p}] {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				}
				t.Partitions = append(t.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
}

// txnProducer is the TxnProducer of a transaction request's fields.
func txnProducer(tid string, pid int64, epoch int16) TxnProducer {
	return TxnProducer{TransactionalID: tid, ProducerID: pid, ProducerEpoch: epoch}
}

// txnErrorCode is errorCode for the transaction coordinator's APIs
// (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn): a fenced producer is
// PRODUCER_FENCED from version 2 on and INVALID_PRODUCER_EPOCH before, as
// Kafka answers clients that predate PRODUCER_FENCED (KIP-588).
func txnErrorCode(err error, version int16) int16 {
	if version < 2 && (errors.Is(err, ErrProducerFenced) || errors.Is(err, kerr.ProducerFenced)) {
		return kerr.InvalidProducerEpoch.Code
	}
	return errorCode(err)
}
