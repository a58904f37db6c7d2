package agent

// The batch path's RPCs of the public API (ProducerService.ProduceBatches
// and ProduceBatchesStream, ConsumerService.FetchBatches), over the core's
// whole-batch Go API (core_batches.go), the one the Kafka listener uses: a
// client's RecordBatch v2 bytes are checked (framing, magic, CRC-32C,
// codec; records present; no control or transactional batch) and appended
// byte for byte with AppendBatch; stored batches are read back whole with
// ReadBatches, and cut at the last stable offset with the aborted
// transactions for read_committed (StableBatches), as Kafka's Fetch answers
// them (KIP-98). Errors are per partition, as Kafka's Produce and Fetch
// answer them: the methods return them beside the answer, one per
// partition (nil where it succeeded), for the front-end to map.

import (
	"context"
	"fmt"
	"time"

	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// maxFetchBatchesPartitions bounds the partitions of one FetchBatches call.
const maxFetchBatchesPartitions = 1000

// StartProduceBatches is ProduceBatches: it checks the request's shape
// (ErrInvalid, ErrClosed), then appends each partition's batches in request
// order (a partition whose batches fail their checks appends none:
// ErrCorruptBatch, ErrInvalidRecord, AppendBatch's errors); the function it
// returns waits for their commits and answers every partition, with each
// partition's error (nil where it succeeded) at its index.
func (a *Agent) StartProduceBatches(ctx context.Context, req *stratav1.ProduceBatchesRequest) (func(context.Context) (*stratav1.ProduceBatchesResponse, []error), error) {
	parts := req.GetPartitions()
	if len(parts) == 0 {
		return nil, invalidf("a produce request needs at least one partition with record batches")
	}
	type topicPartition struct {
		topic     string
		partition int32
	}
	seen := make(map[topicPartition]bool, len(parts))
	for _, p := range parts {
		tp := topicPartition{p.GetTopic(), p.GetPartition()}
		if seen[tp] {
			return nil, invalidf("topic %q partition %d appears twice; send its batches concatenated in one entry", tp.topic, tp.partition)
		}
		seen[tp] = true
	}
	if a.shuttingDown() {
		return nil, errClosed
	}
	type partitionWaits struct {
		waits []func(context.Context) (int64, error)
		err   error // the append's error, after len(waits) batches
	}
	appended := make([]partitionWaits, len(parts))
	for i, p := range parts {
		batches, err := clientBatches(p)
		if err != nil {
			appended[i].err = err
			continue
		}
		for _, b := range batches {
			wait, err := a.AppendBatch(ctx, p.GetTopic(), p.GetPartition(), b.Raw)
			if err != nil {
				appended[i].err = err
				break
			}
			appended[i].waits = append(appended[i].waits, wait)
		}
	}
	return func(ctx context.Context) (*stratav1.ProduceBatchesResponse, []error) {
		resp := &stratav1.ProduceBatchesResponse{Partitions: make([]*stratav1.PartitionBatchesResult, len(parts))}
		errs := make([]error, len(parts))
		for i, p := range parts {
			res := &stratav1.PartitionBatchesResult{Topic: p.GetTopic(), Partition: p.GetPartition()}
			err := appended[i].err
			for _, wait := range appended[i].waits {
				base, werr := wait(ctx)
				if werr != nil {
					// Later batches of the partition follow it in the
					// log; their offsets are not reported, as the client
					// sends them again after this one.
					err = werr
					break
				}
				res.BaseOffsets = append(res.BaseOffsets, base)
			}
			errs[i] = err
			resp.Partitions[i] = res
		}
		return resp, errs
	}, nil
}

// clientBatches splits one partition's record_batches into its batches and
// checks them all before any is appended: framing, magic, CRC-32C and codec
// (errCorruptBatch, Kafka's CORRUPT_MESSAGE), at least one record, neither a
// control batch nor a transactional one (errInvalidRecord, Kafka's
// INVALID_RECORD: markers are the agent's to write, and transactional
// batches need the transaction checks of Produce with transactional_id).
func clientBatches(p *stratav1.PartitionRecordBatches) ([]objectlog.Batch, error) {
	where := fmt.Sprintf("topic %q partition %d", p.GetTopic(), p.GetPartition())
	if len(p.GetRecordBatches()) == 0 {
		return nil, fmt.Errorf("%w: %s: record_batches is empty; send at least one record batch", errInvalidRecord, where)
	}
	batches, err := objectlog.DecodeChunk(p.GetRecordBatches(), -1)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errCorruptBatch, where, err)
	}
	for i, b := range batches {
		switch {
		case b.NumRecords == 0:
			return nil, fmt.Errorf("%w: %s: batch %d holds no records", errInvalidRecord, where, i)
		case b.Attrs.Control():
			return nil, fmt.Errorf("%w: %s: batch %d is a control batch; clients may not produce control batches", errInvalidRecord, where, i)
		case b.Attrs.Transactional():
			return nil, fmt.Errorf("%w: %s: batch %d is transactional; transactional producers use Produce with transactional_id", errInvalidRecord, where, i)
		}
	}
	return batches, nil
}

// FetchBatches is ConsumerService.FetchBatches, Kafka's Fetch over the
// public API: many partitions' stored batches, whole, with max wait, min
// bytes and max bytes as ReadBatches takes them. The request's errors
// (ErrInvalid, LimitError) fail the call; each partition's error (nil where
// it succeeded) is at its index in the second result.
func (a *Agent) FetchBatches(ctx context.Context, m *stratav1.FetchBatchesRequest) (*stratav1.FetchBatchesResponse, []error, error) {
	reads, wait, err := a.batchReads(m)
	if err != nil {
		return nil, nil, err
	}
	maxBytes := int64(m.GetMaxBytes())
	if maxBytes == 0 {
		maxBytes = defaultReadBytes
	}
	deadline := time.Now().Add(wait)
	res, err := a.ReadBatches(ctx, reads, wait, int64(m.GetMinBytes()), maxBytes)
	if err != nil {
		return nil, nil, err
	}
	committed := m.GetIsolationLevel() == stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED
	out := &stratav1.FetchBatchesResponse{Partitions: make([]*stratav1.FetchBatchesPartitionResult, len(res))}
	errs := make([]error, len(res))
	cut, empty := false, true
	for i, r := range res {
		pr := &stratav1.FetchBatchesPartitionResult{
			Topic: reads[i].Topic, Partition: reads[i].Partition,
			HighWatermark: r.HighWatermark, LastStableOffset: r.HighWatermark, LogStartOffset: r.LogStartOffset,
		}
		err := r.Err
		if err == nil {
			pr.TopicId = r.TopicID.String()
			pr.RecordBatches = r.Batches
			if committed {
				kept, lso, aborted, serr := a.StableBatches(ctx, reads[i], r.Batches)
				err = serr
				cut = cut || len(kept) < len(r.Batches)
				pr.RecordBatches, pr.LastStableOffset = kept, lso
				for _, t := range aborted {
					pr.AbortedTransactions = append(pr.AbortedTransactions, &stratav1.AbortedTransaction{ProducerId: t.ProducerID, FirstOffset: t.FirstOffset})
				}
			}
		}
		if err != nil {
			pr = &stratav1.FetchBatchesPartitionResult{Topic: pr.Topic, Partition: pr.Partition,
				HighWatermark: r.HighWatermark, LastStableOffset: r.HighWatermark, LogStartOffset: r.LogStartOffset}
			errs[i] = err
		}
		empty = empty && len(pr.RecordBatches) == 0 && err == nil
		out.Partitions[i] = pr
	}
	if cut && empty {
		// Batches past a last stable offset ended the wait, but none may
		// go out yet: wait out max_wait, so a read_committed consumer
		// parked at the LSO does not spin.
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return out, errs, nil
}

// batchReads checks a FetchBatches request whole and returns its reads and
// its wait, capped by --max-fetch-wait.
func (a *Agent) batchReads(m *stratav1.FetchBatchesRequest) ([]BatchRead, time.Duration, error) {
	parts := m.GetPartitions()
	switch {
	case len(parts) == 0:
		return nil, 0, invalidf("a fetch needs at least one partition")
	case len(parts) > maxFetchBatchesPartitions:
		return nil, 0, overLimit(errInvalid, "partitions", maxFetchBatchesPartitions, int64(len(parts)),
			"%d partitions in one fetch, at most %d", len(parts), maxFetchBatchesPartitions)
	case m.GetMaxBytes() < 0:
		return nil, 0, invalidf("max_bytes %d is negative", m.GetMaxBytes())
	case m.GetMinBytes() < 0:
		return nil, 0, invalidf("min_bytes %d is negative", m.GetMinBytes())
	}
	if err := checkIsolation(m.GetIsolationLevel()); err != nil {
		return nil, 0, err
	}
	var wait time.Duration
	if d := m.GetMaxWait(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, 0, invalidf("max_wait: %v", err)
		}
		if wait = d.AsDuration(); wait < 0 {
			return nil, 0, invalidf("max_wait %s is negative", wait)
		}
		wait = min(wait, a.cfg.MaxFetchWait)
	}
	type topicPartition struct {
		topic     string
		partition int32
	}
	seen := make(map[topicPartition]bool, len(parts))
	reads := make([]BatchRead, len(parts))
	for i, p := range parts {
		tp := topicPartition{p.GetTopic(), p.GetPartition()}
		if seen[tp] {
			return nil, 0, invalidf("topic %q partition %d appears twice", tp.topic, tp.partition)
		}
		seen[tp] = true
		if p.GetMaxBytes() < 0 {
			return nil, 0, invalidf("topic %q partition %d: max_bytes %d is negative", tp.topic, tp.partition, p.GetMaxBytes())
		}
		id, err := parseTopicID(p.GetTopicId())
		if err != nil {
			return nil, 0, err
		}
		reads[i] = BatchRead{Topic: tp.topic, Partition: tp.partition, Offset: p.GetOffset(), MaxBytes: int64(p.GetMaxBytes()), TopicID: id,
			ReadCommitted: m.GetIsolationLevel() == stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED}
	}
	return reads, wait, nil
}
