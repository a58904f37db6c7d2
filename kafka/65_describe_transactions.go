package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeTransactions: key 65, version 0 (KIP-664).
//
// Each transactional id asked gets its state from the core's transactions
// (TxnDescribeCore, the index's state per id): Kafka's state name, the
// current producer id and epoch, the transaction timeout, when the open
// transaction started (-1 when none is open) and the partitions added to
// it, by topic. An id with no state is TRANSACTIONAL_ID_NOT_FOUND, as Kafka
// answers. Any agent answers for any id: there is no transaction
// coordinator to route to. ListTransactions (66) and DescribeProducers (61)
// are not served: the index lists only open transactions' ids (the
// reaper's deadlines), not every id ListTransactions reports.

func (s *Server) handleDescribeTransactions(ctx context.Context, _ *clientConn, req *kmsg.DescribeTransactionsRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.StartTimestamp, st.ProducerID, st.ProducerEpoch = id, -1, -1, -1
		d, err := s.core.DescribeTransaction(ctx, id)
		if err != nil {
			st.ErrorCode = errorCode(err)
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.ProducerID, st.ProducerEpoch = d.State, d.ProducerID, d.ProducerEpoch
		st.TimeoutMillis = int32(min(d.Timeout.Milliseconds(), 1<<31-1))
		if !d.Started.IsZero() {
			st.StartTimestamp = d.Started.UnixMilli()
		}
		for _, tp := range d.Partitions {
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				st.Topics = append(st.Topics, t)
			}
			last := &st.Topics[len(st.Topics)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return ready(resp)
}
