package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce: key 0, versions 0-11 (3-11 served).
//
// Each partition's records must be exactly one RecordBatch v2 (batch.go
// checks framing, magic and CRC-32C and answers INVALID_RECORD or
// CORRUPT_MESSAGE as Kafka does); it is handed to the core, which stores it
// byte for byte. Notes:
//
//   - Any agent accepts any partition: there is no NOT_LEADER_OR_FOLLOWER.
//   - The batches of one request, and of successive requests on one
//     connection, reach the core in request order before the next request is
//     read (LogCore.Produce fixes their order and returns), so pipelined
//     idempotent producers (max.in.flight up to 5) keep their sequence order
//     while the commits of several requests overlap.
//   - acks=1 and acks=all (-1) both answer after the batch is durable in the
//     object store and the index: there is no weaker acknowledgement to give.
//     acks=0 sends no response at all; a failure then closes the connection,
//     as Kafka does, so the client notices and refreshes its metadata. Other
//     acks values are INVALID_REQUIRED_ACKS.
//   - The request's timeout bounds the wait for durability: partitions not
//     durable in time answer REQUEST_TIMED_OUT (retriable; an idempotent
//     retry gets the offset of the first attempt).
//   - v0-2 (magic 0/1 message sets, Kafka < 0.11) are advertised but
//     answer UNSUPPORTED_VERSION in every partition: Strata stores record
//     batches v2 only and never converts. They are listed because librdkafka
//     up to 2.11 (Debian's kcat 1.7.1 has 2.0.2) turns gzip, snappy and lz4
//     compression off for a broker that does not list Produce v0; it then
//     produces at v3+ anyway. (Its LZ4 also needs FindCoordinator v0
//     listed, which comes with the group APIs.)
//   - Transactional batches (KIP-98) are appended only to a partition added
//     to the request's transactional id's open transaction, at its current
//     producer id and epoch: INVALID_TXN_STATE otherwise, as Kafka answers
//     since its produce verification (KIP-890 part 1), and
//     INVALID_PRODUCER_EPOCH for a fenced epoch. A transactional batch in a
//     request without a transactional id is TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
//     Kafka's answer. Control batches are the broker's own: INVALID_RECORD.
//   - MESSAGE_TOO_LARGE (batch over the topic's max.message.bytes),
//     UNKNOWN_TOPIC_OR_PARTITION, OUT_OF_ORDER_SEQUENCE_NUMBER and the like
//     come from the core; v8+ carry the error's text in ErrorMessage.

func (s *Server) handleProduce(ctx context.Context, cc *clientConn, req *kmsg.ProduceRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type waiting struct {
		p  *kmsg.ProduceResponseTopicPartition
		ch <-chan ProduceResult
	}
	var waits []waiting
	validAcks := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	oldVersion := req.Version < 3

	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		t := &resp.Topics[i]
		*t = kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			p := &t.Partitions[j]
			*p = kmsg.NewProduceResponseTopicPartition()
			p.Partition = rp.Partition
			p.BaseOffset = -1
			if oldVersion {
				p.ErrorCode = kerr.UnsupportedVersion.Code
				continue
			}
			if !validAcks {
				setProduceError(p, req.Version, fmt.Errorf("%w: acks %d; use 0, 1 or -1 (all)", kerr.InvalidRequiredAcks, req.Acks))
				continue
			}
			b, err := parseProduceBatch(rp.Records)
			if err != nil {
				setProduceError(p, req.Version, err)
				continue
			}
			if req.TransactionID != nil {
				b.TransactionalID = *req.TransactionID
			}
			if b.Transactional && b.TransactionalID == "" {
				setProduceError(p, req.Version, fmt.Errorf("%w: a transactional batch needs the request's transactional id", kerr.TransactionalIDAuthorizationFailed))
				continue
			}
			waits = append(waits, waiting{p, s.core.Produce(ctx, rt.Topic, rp.Partition, b)})
		}
	}

	if req.Acks == 0 {
		if len(waits) > 0 {
			go func() {
				for _, w := range waits {
					if r := <-w.ch; r.Err != nil {
						s.log.Info("closing Kafka connection after a failed acks=0 produce", "remote", cc.remote, "partition", w.p.Partition, "err", r.Err)
						cc.closeConn()
						return
					}
				}
			}()
		}
		return ready(nil)
	}

	return func() (kmsg.Response, error) {
		var timeout <-chan time.Time
		if req.TimeoutMillis > 0 {
			t := time.NewTimer(time.Duration(req.TimeoutMillis) * time.Millisecond)
			defer t.Stop()
			timeout = t.C
		}
		timedOut := false
		for _, w := range waits {
			if timedOut {
				select {
				case r := <-w.ch:
					setProduceResult(w.p, req.Version, r)
				default:
					setProduceError(w.p, req.Version, ErrTimeout)
				}
				continue
			}
			select {
			case r := <-w.ch:
				setProduceResult(w.p, req.Version, r)
			case <-timeout:
				timedOut = true
				setProduceError(w.p, req.Version, ErrTimeout)
			case <-ctx.Done():
				return nil, nil // the connection is going away; nobody to answer
			}
		}
		return resp, nil
	}
}

func setProduceResult(p *kmsg.ProduceResponseTopicPartition, version int16, r ProduceResult) {
	if r.Err != nil {
		setProduceError(p, version, r.Err)
		return
	}
	p.BaseOffset, p.LogAppendTime, p.LogStartOffset = r.BaseOffset, r.LogAppendTime, r.LogStartOffset
}

func setProduceError(p *kmsg.ProduceResponseTopicPartition, version int16, err error) {
	p.ErrorCode = errorCode(err)
	p.BaseOffset = -1
	if version >= 8 {
		p.ErrorMessage = errorMessage(err)
	}
}
