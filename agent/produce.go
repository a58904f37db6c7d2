package agent

// ProducerService's Produce and ProduceStream, in the core (the stream's
// loop is the Connect front-end's). A request is validated whole before any
// of it is appended (unknown topic, bad partition, oversized record fail
// the request with nothing written); then each partition's records become
// one RecordBatch in the open segment, and the answer waits for the
// segment's commit.
//
// Idempotent requests (producer_id set, KIP-98) carry the producer id and
// epoch in that RecordBatch, and the partition's base sequence: the commit
// checks them against the partition's last 5 batches from the producer and
// answers a batch written before with the offsets it got then. Two copies
// of one batch may sit in the same segment or in successive ones (a client
// retried while the first was in flight): the commit handles the batches in
// segment order, so the second is the duplicate, answered with the first's
// offsets; its bytes stay in the object but out of the index.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// stickyCounter spreads unkeyed records: each request's unkeyed records for a
// topic go to one partition (one batch, as Kafka's sticky partitioner does),
// and successive requests move on to the next partition.
var stickyCounter atomic.Uint32

// Produce appends a request's records and waits for their commit
// (ProducerService.Produce): the answer gives each record its partition,
// offset and timestamp, in request order. Errors: ErrInvalid, ErrTooLarge
// (a *LimitError naming max.message.bytes), ErrUnknownTopicOrPartition,
// ErrOverloaded, ErrClosed, ErrTopicRecreated, and the index's
// ErrFenced, ErrOutOfOrderSequence, ErrUnavailable.
func (a *Agent) Produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	wait, err := a.StartProduce(ctx, req)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// StartProduce validates the request whole and appends its batches, with
// Produce's errors; the function it returns waits for the commit and builds
// the answer. Once StartProduce returns, a later request's records for the
// same partition are stored after these, so a stream of requests
// (ProducerService.ProduceStream) keeps several flushes in flight and is
// answered in order by waiting on each in turn.
func (a *Agent) StartProduce(ctx context.Context, req *stratav1.ProduceRequest) (func(context.Context) (*stratav1.ProduceResponse, error), error) {
	if req == nil || len(req.GetTopics()) == 0 {
		return nil, invalidf("a produce request needs at least one topic with records")
	}
	idem, err := checkIdempotence(req)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	// where[i][j] is the (batch index, position in batch) of record j of
	// topic i, filled in while grouping by partition.
	type slot struct{ batch, pos int }
	where := make([][]slot, len(req.GetTopics()))
	var batches []partitionBatch
	batchIndex := map[partitionKey]int{}
	names := map[uuid.UUID]string{} // topic id -> name, for errors
	var recordCount int
	var payload int64
	for i, tr := range req.GetTopics() {
		if tr.GetTopic() == "" {
			return nil, invalidf("topics[%d]: topic name is empty", i)
		}
		topic, err := a.topics.get(ctx, tr.GetTopic())
		if err != nil {
			return nil, unknownTopic(tr.GetTopic(), err)
		}
		if maxExplicitPartition(tr) >= topic.Config.Partitions {
			// Partitions may have been added since the cache was filled
			// (CreatePartitions on any agent): ask the index before
			// refusing, so the refusal is never a stale cache's.
			a.topics.invalidate(tr.GetTopic())
			if topic, err = a.topics.get(ctx, tr.GetTopic()); err != nil {
				return nil, unknownTopic(tr.GetTopic(), err)
			}
		}
		names[topic.ID] = topic.Name
		codec, err := topicCodec(topic)
		if err != nil {
			return nil, err
		}
		n := topic.Config.Partitions
		sticky := int32(stickyCounter.Add(1) % uint32(n))
		maxMessageBytes, limitFresh := topic.Config.MaxMessageBytes, false
		if idem {
			for p, seq := range tr.GetBaseSequences() {
				if p < 0 || p >= n || seq < 0 {
					return nil, fmt.Errorf("%w: topics[%d] (%q, %d partitions): base_sequences has partition %d sequence %d", errInvalid, i, topic.Name, n, p, seq)
				}
			}
		}
		where[i] = make([]slot, len(tr.GetRecords()))
		for j, r := range tr.GetRecords() {
			var p int32
			switch {
			case idem && r.Partition == nil:
				return nil, invalidf("topics[%d] (%q) record %d names no partition: an idempotent request's sequences are per partition, so every record must name its partition", i, topic.Name, j)
			case r.Partition != nil:
				p = r.GetPartition()
				if p < 0 || p >= n {
					return nil, fmt.Errorf("%w: topic %q has %s, record %d asks for partition %d", errInvalid, topic.Name, partitionCount(n), j, p)
				}
			case r.Key != nil:
				p = keyPartition(r.Key, n)
			default:
				p = sticky
			}
			if r.Key == nil && topic.Config.Compacted() {
				return nil, nullKeyError(topic.Name, p, fmt.Sprintf("topics[%d] record %d", i, j))
			}
			rec := objectlog.Record{Key: r.Key, Value: r.Value, Timestamp: now.UnixMilli()}
			if r.Timestamp != nil {
				rec.Timestamp = r.GetTimestamp().AsTime().UnixMilli()
			}
			for _, h := range r.GetHeaders() {
				rec.Headers = append(rec.Headers, objectlog.Header{Key: h.GetKey(), Value: h.Value})
			}
			if size := recordBytes(rec); size > int64(maxMessageBytes) {
				if !limitFresh {
					// The limit may have been raised since the cache was
					// filled (UpdateTopicConfig on any agent): refuse on
					// the index's word only.
					limitFresh = true
					a.topics.invalidate(tr.GetTopic())
					if fresh, err := a.topics.get(ctx, tr.GetTopic()); err == nil {
						maxMessageBytes = fresh.Config.MaxMessageBytes
					}
				}
				if size > int64(maxMessageBytes) {
					return nil, overLimit(errTooLarge, "max.message.bytes", int64(maxMessageBytes), size,
						"record %d of topic %q is %d bytes, over the topic's max.message.bytes %d", j, topic.Name, size, maxMessageBytes)
				}
			}
			payload += recordBytes(rec)
			k := partitionKey{topic.ID, p}
			bi, ok := batchIndex[k]
			if !ok {
				bi = len(batches)
				batchIndex[k] = bi
				batches = append(batches, partitionBatch{key: k, spec: objectlog.NoProducer})
				batches[bi].spec.Codec = codec
				if idem {
					seq, ok := tr.GetBaseSequences()[p]
					if !ok {
						return nil, invalidf("topics[%d] (%q) has records for partition %d but no base_sequences entry for it", i, topic.Name, p)
					}
					batches[bi].spec.ProducerID = req.GetProducerId()
					batches[bi].spec.ProducerEpoch = int16(req.GetProducerEpoch())
					batches[bi].spec.BaseSequence = seq
				}
			}
			where[i][j] = slot{bi, len(batches[bi].records)}
			batches[bi].records = append(batches[bi].records, rec)
			recordCount++
		}
	}
	if recordCount == 0 {
		return nil, invalidf("a produce request needs at least one record")
	}
	if idem {
		for i, tr := range req.GetTopics() {
			parts := map[int]bool{}
			for _, sl := range where[i] {
				parts[sl.batch] = true
			}
			if len(tr.GetBaseSequences()) != len(parts) {
				return nil, invalidf("topics[%d] (%q): base_sequences names a partition without records in the request", i, tr.GetTopic())
			}
		}
	}
	if req.GetTransactionalId() != "" {
		if !idem {
			return nil, invalidf("transactional_id %q needs producer_id and base_sequences: a transactional request is idempotent", req.GetTransactionalId())
		}
		if err := a.checkTxnProduce(ctx, req, batches); err != nil {
			return nil, err
		}
		for i := range batches {
			batches[i].spec.Transactional = true
		}
	}
	pending, err := a.batcher.append(ctx, batches)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (*stratav1.ProduceResponse, error) {
		for i, p := range pending {
			if err := p.wait(ctx); err != nil {
				if errors.Is(err, coordinator.ErrTopicDeleted) {
					return nil, a.topicDeleted(ctx, req, names[batches[i].key.topic], batches[i].key.topic, err)
				}
				return nil, err
			}
		}
		resp := &stratav1.ProduceResponse{Topics: make([]*stratav1.TopicResults, len(req.GetTopics()))}
		for i, tr := range req.GetTopics() {
			out := &stratav1.TopicResults{Topic: tr.GetTopic(), Results: make([]*stratav1.RecordResult, len(where[i]))}
			for j, s := range where[i] {
				b := batches[s.batch]
				out.Results[j] = &stratav1.RecordResult{
					Partition: b.key.partition,
					Offset:    pending[s.batch].base + int64(s.pos),
					Timestamp: timestamppb.New(time.UnixMilli(b.records[s.pos].Timestamp)),
				}
			}
			resp.Topics[i] = out
		}
		metricProducedRecords.Add(float64(recordCount))
		metricProducedBytes.Add(float64(payload))
		return resp, nil
	}, nil
}

// checkIdempotence checks a request's producer fields and reports whether
// it is idempotent.
func checkIdempotence(req *stratav1.ProduceRequest) (bool, error) {
	if req.GetProducerId() == 0 {
		if req.GetProducerEpoch() != 0 {
			return false, invalidf("producer_epoch %d without a producer_id", req.GetProducerEpoch())
		}
		for i, tr := range req.GetTopics() {
			if len(tr.GetBaseSequences()) > 0 {
				return false, invalidf("topics[%d] (%q) has base_sequences but the request has no producer_id", i, tr.GetTopic())
			}
		}
		return false, nil
	}
	if req.GetProducerId() < 0 {
		return false, invalidf("producer_id %d: want an id from InitProducerId, or 0 for a request that is not idempotent", req.GetProducerId())
	}
	if e := req.GetProducerEpoch(); e < 0 || e > math.MaxInt16 {
		return false, invalidf("producer_epoch %d: want 0 to %d", e, math.MaxInt16)
	}
	seen := make(map[string]bool, len(req.GetTopics()))
	for i, tr := range req.GetTopics() {
		if seen[tr.GetTopic()] {
			return false, invalidf("topics[%d]: topic %q appears twice; an idempotent request has one entry per topic, one batch per partition", i, tr.GetTopic())
		}
		seen[tr.GetTopic()] = true
	}
	return true, nil
}

// topicDeleted answers a commit that met a deleted topic (name, with id
// deleted, as the cache had it). The request's cached topics are dropped so
// the next request re-reads them. If the name now belongs to a new topic
// (deleted and created again), the same request sent again succeeds, so
// the answer is retryable, not NotFound.
func (a *Agent) topicDeleted(ctx context.Context, req *stratav1.ProduceRequest, name string, deleted uuid.UUID, err error) error {
	for _, tr := range req.GetTopics() {
		a.topics.invalidate(tr.GetTopic())
	}
	t, gerr := a.topics.get(ctx, name)
	switch {
	case gerr == nil && t.ID != deleted:
		return fmt.Errorf("%w: topic %q: %w; send the request again", errTopicRecreated, name, err)
	case errors.Is(gerr, coordinator.ErrNotFound):
		return unknownTopic(name, errors.Join(err, gerr)) // deleted for good
	}
	return err
}

// maxExplicitPartition is the largest partition the topic's records name,
// or -1.
func maxExplicitPartition(tr *stratav1.TopicRecords) int32 {
	m := int32(-1)
	for _, r := range tr.GetRecords() {
		if r.Partition != nil {
			m = max(m, r.GetPartition())
		}
	}
	return m
}

// topicCodec is the codec a topic's compression.type asks for. "producer"
// means none for the native API, whose records arrive uncompressed (the
// transport compresses).
func topicCodec(t coordinator.Topic) (objectlog.Codec, error) {
	switch t.Config.Compression {
	case "", "producer", "none":
		return objectlog.CodecNone, nil
	}
	c, err := objectlog.ParseCodec(t.Config.Compression)
	if err != nil {
		return 0, fmt.Errorf("topic %q compression.type: %w", t.Name, err)
	}
	return c, nil
}

// unknownTopic says how to fix a missing topic.
func unknownTopic(name string, err error) error {
	if errors.Is(err, coordinator.ErrNotFound) {
		return &hintError{msg: fmt.Sprintf("topic %q does not exist; create it with `strata topic create %s`", name, name),
			err: errors.Join(err, errUnknownTopicOrPartition)}
	}
	return err
}

// unknownPartition is a partition past the topic's count as the index has
// it (read afresh, not from the cache).
func unknownPartition(name string, partition, partitions int32) error {
	return &hintError{msg: fmt.Sprintf("%v: partition %d: topic %q has %s", coordinator.ErrNotFound, partition, name, partitionCount(partitions)),
		err: errors.Join(coordinator.ErrNotFound, errUnknownTopicOrPartition)}
}

// partitionCount is "1 partition" or "n partitions", for messages.
func partitionCount(n int32) string {
	if n == 1 {
		return "1 partition"
	}
	return fmt.Sprintf("%d partitions", n)
}

// hintError replaces an error's message with one a person can act on,
// keeping the error for errors.Is.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }
