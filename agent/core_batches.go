package agent

// The core's whole-batch Go API, for protocol front-ends whose clients send
// and read Kafka RecordBatches themselves (the Kafka listener, package
// kafka): a client's batch is appended byte for byte through the same
// batcher as the Connect API's records (one segment object per flush, the
// commit assigns the offsets and checks idempotence), and stored batches are
// read back whole, through the same index lookups, block cache and long
// polls as the Connect API's per-record reads, with only their base offsets
// set. Appending walks every record's framing without keeping it (Kafka's
// LogValidator); reads decode no record.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// AppendBatch appends one Kafka RecordBatch v2 (magic 2), as a client
// encoded it, to a partition, stored byte for byte. It checks, before
// anything is appended: the topic and partition exist (ErrUnknownTopicOrPartition,
// read afresh before it is said); the batch is at most the topic's
// max.message.bytes (Kafka's limit on a record batch; ErrTooLarge naming the
// limit); a producer id with a negative epoch or base sequence
// (ErrInvalidRecord); its framing, magic, codec and CRC-32C
// (objectlog.ErrCorrupt); and every record's framing, as Kafka's
// LogValidator (ErrCorruptBatch, Kafka's CORRUPT_MESSAGE:
// checkBatchRecords). It
// returns once the batch has its place in the open segment, so a later
// AppendBatch for the same partition is stored after it.
//
// wait then blocks until the segment is committed (durable in the store and
// the index) and returns the batch's base offset, or the commit's error:
// coordinator.ErrFenced (a stale producer epoch), ErrOutOfOrderSequence,
// ErrTopicRecreated or ErrUnknownTopicOrPartition (deleted meanwhile),
// objectlog/coordinator ErrUnavailable (retryable). A duplicate of an
// idempotent batch already committed returns the offset it got then
// (KIP-98). A batch already appended is committed or failed whatever wait's
// ctx does. A successful wait counts the batch's records (its header's
// record count) in strata_produced_records_total, as the Connect API's
// Produce counts the records it acknowledges.
func (a *Agent) AppendBatch(ctx context.Context, topic string, partition int32, raw []byte) (wait func(context.Context) (int64, error), err error) {
	w, err := a.AppendRecordBatch(ctx, topic, partition, raw)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (int64, error) {
		r, err := w(ctx)
		return r.BaseOffset, err
	}, nil
}

// BatchAppended is where an appended batch landed.
type BatchAppended struct {
	BaseOffset int64 // the offset of the batch's first record
	// LogStartOffset is the partition's log start offset when the batch
	// was committed (read by the commit itself, no extra index round
	// trip), what Kafka's Produce v5+ answers (KIP-107); -1 if unknown.
	LogStartOffset int64
}

// AppendRecordBatch is AppendBatch answering the partition's log start
// offset with the base offset (issue 12); same checks, same errors.
func (a *Agent) AppendRecordBatch(ctx context.Context, topic string, partition int32, raw []byte) (wait func(context.Context) (BatchAppended, error), err error) {
	t, err := a.partitionTopic(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	if size := int64(len(raw)); size > int64(t.Config.MaxMessageBytes) {
		// The limit may have been raised since the cache was filled:
		// refuse on the index's word only.
		a.topics.invalidate(topic)
		if fresh, ferr := a.topics.get(ctx, topic); ferr == nil {
			t = fresh
		}
		if size > int64(t.Config.MaxMessageBytes) {
			return nil, overLimit(errTooLarge, "max.message.bytes", int64(t.Config.MaxMessageBytes), size,
				"record batch of %d bytes for topic %q partition %d is over the topic's max.message.bytes %d",
				size, topic, partition, t.Config.MaxMessageBytes)
		}
	}
	if err := checkBatchProducer(raw, topic, partition); err != nil {
		return nil, err
	}
	if err := checkBatchRecords(raw, topic, partition, t.Config.Compacted()); err != nil {
		return nil, err
	}
	p, err := a.batcher.appendEncoded(ctx, partitionKey{t.ID, partition}, raw)
	if err != nil {
		return nil, fmt.Errorf("topic %q partition %d: %w", topic, partition, err)
	}
	return func(ctx context.Context) (BatchAppended, error) {
		if err := p.wait(ctx); err != nil {
			if errors.Is(err, coordinator.ErrTopicDeleted) {
				return BatchAppended{}, a.batchTopicDeleted(ctx, t, err)
			}
			return BatchAppended{}, err
		}
		metricProducedBytes.Add(float64(len(raw)))
		metricProducedRecords.Add(float64(batchRecords(raw, math.MinInt64, nil)))
		return BatchAppended{BaseOffset: p.base, LogStartOffset: p.logStart}, nil
	}, nil
}

// Where a RecordBatch v2 header keeps its fields (Kafka's
// DefaultRecordBatch; objectlog/record.go has the layout), and how long the
// header is.
const (
	batchAttributesAt      = 21
	batchLastOffsetDeltaAt = 23
	batchProducerIDAt      = 43
	batchProducerEpochAt   = 51
	batchBaseSequenceAt    = 53
	batchRecordCountAt     = 57
	batchHeaderBytes       = 61
	batchControlFlag       = 0x20
)

// checkBatchProducer refuses a batch with a producer id (>= 0, so
// idempotent) but a negative producer epoch, or a negative base sequence
// outside a control batch, as malformed (ErrInvalidRecord, Kafka's
// INVALID_RECORD: its LogValidator refuses "Invalid sequence number" the
// same way). Refused here, before the batch joins a segment, the client
// hears why, and the segment's other batches are not failed with it by the
// index's commit check. A header too short to read is left to the
// segment writer's framing check (objectlog.ErrCorrupt).
func checkBatchProducer(raw []byte, topic string, partition int32) error {
	if len(raw) < batchHeaderBytes {
		return nil
	}
	id := int64(binary.BigEndian.Uint64(raw[batchProducerIDAt:]))
	if id < 0 {
		return nil
	}
	epoch := int16(binary.BigEndian.Uint16(raw[batchProducerEpochAt:]))
	seq := int32(binary.BigEndian.Uint32(raw[batchBaseSequenceAt:]))
	control := binary.BigEndian.Uint16(raw[batchAttributesAt:])&batchControlFlag != 0
	switch {
	case epoch < 0:
		return fmt.Errorf("%w: topic %q partition %d: record batch of producer id %d has producer epoch %d; an idempotent batch needs the epoch InitProducerId gave (0 or more)",
			errInvalidRecord, topic, partition, id, epoch)
	case seq < 0 && !control:
		return fmt.Errorf("%w: topic %q partition %d: invalid sequence number %d in record batch with producer id %d; an idempotent batch's base sequence is 0 or more",
			errInvalidRecord, topic, partition, seq, id)
	}
	return nil
}

// checkBatchRecords walks every record of every batch in raw, as Kafka's
// broker does on produce (LogValidator.validateMessagesAndAssignOffsets):
// decompressed with the codec its attributes name, each record's framing
// must parse, the i-th record's offset delta must be i, the header's record
// count must equal the records found and the last offset delta + 1, and no
// byte may follow the last record (objectlog.Batch.CheckRecords). A batch
// that fails is ErrCorruptBatch (Kafka's CORRUPT_MESSAGE), naming the topic,
// partition, batch and byte: once stored, such a batch would stop every
// consumer of the partition and its compaction at that offset. For a topic
// whose cleanup.policy has compact, a record without a key is
// ErrInvalidRecord (Kafka's INVALID_RECORD), from the same walk. Bytes that
// are not batches at all (framing, magic, CRC-32C) are left to the segment
// writer's check (objectlog.ErrCorrupt), as before.
func checkBatchRecords(raw []byte, topic string, partition int32, compacted bool) error {
	i := 0
	for b, err := range objectlog.ChunkBatches(raw, -1) { // -1: the bytes stay as they came
		if err != nil {
			return nil
		}
		check, err := b.CheckRecords(0)
		if err != nil {
			return fmt.Errorf("%w: topic %q partition %d: record batch %d (at byte %d, %d records, codec %s): %v",
				errCorruptBatch, topic, partition, i, b.ChunkOffset, b.NumRecords, b.Attrs.Codec(), err)
		}
		if compacted && check.NullKeyDelta >= 0 {
			return nullKeyError(topic, partition, fmt.Sprintf("the record at offset delta %d", check.NullKeyDelta))
		}
		i++
	}
	return nil
}

// batchTopicDeleted answers a batch whose commit met its topic deleted, as
// topicDeleted does for the Connect API's requests.
func (a *Agent) batchTopicDeleted(ctx context.Context, deleted coordinator.Topic, err error) error {
	a.topics.invalidate(deleted.Name)
	t, gerr := a.topics.get(ctx, deleted.Name)
	switch {
	case gerr == nil && t.ID != deleted.ID:
		return fmt.Errorf("%w: topic %q: %w; send the batch again", errTopicRecreated, deleted.Name, err)
	case errors.Is(gerr, coordinator.ErrNotFound):
		return unknownTopic(deleted.Name, errors.Join(err, gerr))
	}
	return err
}

// BatchRead is one partition of a ReadBatches call.
type BatchRead struct {
	Topic     string
	Partition int32
	Offset    int64 // the first offset wanted
	// MaxBytes bounds this partition's batches (Kafka's
	// max.partition.fetch.bytes); 0 or less: only the whole-read bound.
	MaxBytes int64
	// TopicID, when not uuid.Nil, is the topic the offset belongs to
	// (KIP-516): the read fails (ErrUnknownTopicOrPartition or
	// coordinator.ErrNotFound, worded for a deleted topic) unless the topic
	// of the name still has it, and never moves to a topic created again
	// under the name.
	TopicID uuid.UUID
	// ReadCommitted says the caller cuts this partition's answer at the
	// last stable offset with StableBatches (KIP-98 read_committed). Then
	// StableBatches, not ReadBatches, counts the records in
	// strata_fetched_records_total, so that records held back past the
	// LSO are not counted on every poll of a consumer waiting there.
	ReadCommitted bool
}

// BatchReadResult is one partition's answer.
type BatchReadResult struct {
	// Batches are whole stored RecordBatches, concatenated, each with its
	// base offset set, starting with the batch that holds Offset (which
	// may begin before it). Never a partial batch; empty when nothing is
	// there to read.
	Batches        []byte
	HighWatermark  int64
	LogStartOffset int64
	// Err: ErrUnknownTopicOrPartition (also coordinator.ErrNotFound, for a
	// topic deleted, or deleted and created again), coordinator.ErrOffsetOutOfRange
	// (Offset below the log start or above the high watermark; HighWatermark
	// and LogStartOffset are set), objectlog.ErrCorrupt, ErrUnavailable.
	Err error
	// TopicID is the id of the topic read, when Err is nil.
	TopicID uuid.UUID
}

// ReadBatches reads whole stored batches of many partitions at once (Kafka's
// Fetch). It waits up to maxWait (capped by --max-fetch-wait) until minBytes
// of batches are there over all partitions, or a partition has an error,
// then answers every partition in the order asked. The whole answer holds at
// most maxBytes of batches (capped by --max-fetch-bytes), except that the
// first partition with data always gets one whole batch, however large, so
// consumers make progress (KIP-74). While it waits it wakes on any of the
// partitions' commits (the hub, as Fetch does) and re-reads the index at
// least once per second. The error return is for the whole call (ctx ended,
// or the agent shutting down: ErrClosed).
//
// The records of the answer, at or past each partition's Offset and not in
// control batches, count in strata_fetched_records_total, as the Connect
// API's Fetch counts the records it returns (except partitions read with
// ReadCommitted: see BatchRead). They are counted from the batch headers,
// without decoding; see batchRecords.
func (a *Agent) ReadBatches(ctx context.Context, reads []BatchRead, maxWait time.Duration, minBytes, maxBytes int64) ([]BatchReadResult, error) {
	maxBytes = min(max(maxBytes, 0), int64(a.cfg.MaxFetchBytes))
	deadline := time.Now().Add(min(max(maxWait, 0), a.cfg.MaxFetchWait))
	out := make([]BatchReadResult, len(reads))
	topics := make([]coordinator.Topic, len(reads))
	failed := false
	for i, r := range reads {
		t, err := a.readTopic(ctx, r.Topic, r.Partition, r.TopicID)
		if err != nil {
			out[i].Err = err
			failed = true
			continue
		}
		topics[i] = t
	}
	for {
		// The hub's channels before the reads, so that a commit landing
		// after a read wakes the wait below.
		wake := map[uuid.UUID]<-chan struct{}{}
		for i, r := range reads {
			if out[i].Err == nil {
				if _, ok := wake[topics[i].ID]; !ok {
					wake[topics[i].ID] = a.hub.topicChanged(topics[i].ID)
				}
				a.hub.changed(partitionKey{topics[i].ID, r.Partition})
			}
		}
		var total int64
		for i, r := range reads {
			if out[i].Err != nil {
				continue
			}
			if total > 0 && total >= maxBytes {
				// No room left: the partitions after this one answer
				// their bounds only (and have their next entries fetched
				// ahead). Their index round trips are read together, not
				// one after the other: a catch-up Fetch whose first
				// partition filled it waited for each in turn (issue 12).
				a.readBoundsOnly(ctx, reads[i:], topics[i:], out[i:])
				if ctx.Err() != nil {
					return nil, a.cutShort(ctx)
				}
				for j := i; j < len(out); j++ {
					failed = failed || out[j].Err != nil
				}
				break
			}
			budget := maxBytes - total
			if r.MaxBytes > 0 {
				budget = min(budget, r.MaxBytes)
			}
			res, t, err := a.readPartitionBatches(ctx, topics[i], r.Partition, r.Offset, budget, total == 0, r.TopicID)
			topics[i] = t
			if err != nil {
				if ctx.Err() != nil {
					return nil, a.cutShort(ctx)
				}
				res.Err = err
				failed = true
			}
			out[i] = res
			total += int64(len(res.Batches))
		}
		if failed || total >= minBytes || !time.Now().Before(deadline) {
			var n int
			for i, r := range reads {
				if out[i].Err == nil && !r.ReadCommitted {
					n += batchRecords(out[i].Batches, r.Offset, nil)
				}
			}
			metricFetchedRecords.Add(float64(n))
			return out, nil
		}
		if err := a.waitForAny(ctx, wake, deadline); err != nil {
			return nil, err
		}
		// Read again: results of this round are replaced.
		for i := range out {
			if out[i].Err == nil {
				out[i] = BatchReadResult{}
			}
		}
	}
}

// readBoundsOnly reads, all at once, the partitions of reads whose out
// has no error yet as readPartitionBatches does with no bytes to answer:
// their high watermark and log start offset, or their error, into out (and
// their topics, moved as partitionGone moves them, into topics).
func (a *Agent) readBoundsOnly(ctx context.Context, reads []BatchRead, topics []coordinator.Topic, out []BatchReadResult) {
	var wg sync.WaitGroup
	for i, r := range reads {
		if out[i].Err != nil {
			continue
		}
		wg.Go(func() {
			res, t, err := a.readPartitionBatches(ctx, topics[i], r.Partition, r.Offset, 0, false, r.TopicID)
			topics[i] = t
			res.Err = err
			out[i] = res
		})
	}
	wg.Wait()
}

// cutShort is the error of a read whose ctx ended.
func (a *Agent) cutShort(ctx context.Context) error {
	if a.shuttingDown() {
		return errClosed
	}
	return ctx.Err()
}

// waitForAny waits until one of the channels is closed, then as
// waitForRecords does.
func (a *Agent) waitForAny(ctx context.Context, wake map[uuid.UUID]<-chan struct{}, deadline time.Time) error {
	if len(wake) == 1 {
		for _, ch := range wake {
			return a.waitForRecords(ctx, ch, deadline)
		}
	}
	merged := make(chan struct{})
	stop := make(chan struct{})
	defer close(stop)
	once := make(chan struct{}, 1)
	for _, ch := range wake {
		go func() {
			select {
			case <-ch:
				select {
				case once <- struct{}{}:
					close(merged)
				default:
				}
			case <-stop:
			}
		}()
	}
	return a.waitForRecords(ctx, merged, deadline)
}

// readPartitionBatches reads one partition's whole batches from offset, up
// to maxBytes (at least one batch when atLeastOne), moving to the new topic
// of the name when the index says the partition is gone (partitionGone). It
// returns the topic read.
func (a *Agent) readPartitionBatches(ctx context.Context, topic coordinator.Topic, p int32, offset, maxBytes int64, atLeastOne bool, wantID uuid.UUID) (BatchReadResult, coordinator.Topic, error) {
	for {
		data, st, err := a.readBatches(ctx, topic, p, offset, maxBytes, atLeastOne)
		if errors.Is(err, coordinator.ErrNotFound) {
			fresh, ferr := a.partitionGone(ctx, topic, p, wantID)
			if ferr == nil {
				topic = fresh
				continue
			}
			err = ferr
		}
		res := BatchReadResult{Batches: data, HighWatermark: st.HighWatermark, LogStartOffset: st.LogStartOffset, Err: err}
		if err == nil {
			res.TopicID = topic.ID
		}
		return res, topic, err
	}
}

// readBatches is readRecords for whole batches: the index entries from the
// one holding offset on, each chunk through the block cache (hot entries
// with readChunkBatches, copied once; archive entries with loadEntry), and
// of its batches those that end past offset, appended whole with their base
// offsets set, while they fit in maxBytes. Control batches go too: a
// Kafka client needs them to see where transactions end.
func (a *Agent) readBatches(ctx context.Context, topic coordinator.Topic, partition int32, offset, maxBytes int64, atLeastOne bool) ([]byte, coordinator.PartitionState, error) {
	var out []byte
	var st coordinator.PartitionState
	next := offset
	for {
		entries, lst, err := a.index.Lookup(ctx, topic.ID, partition, next, max(maxBytes-int64(len(out)), 1)+readAheadBytes)
		if err != nil {
			if len(out) > 0 {
				return out, st, nil
			}
			if errors.Is(err, coordinator.ErrOffsetOutOfRange) {
				err = &OffsetRangeError{Topic: topic.Name, Partition: partition, Requested: next,
					LogStart: lst.LogStartOffset, HighWatermark: lst.HighWatermark}
			}
			return nil, lst, err
		}
		st = lst
		if len(entries) == 0 {
			return out, st, nil
		}
		loads := a.fetchEntriesAhead(ctx, entries, next, max(maxBytes-int64(len(out)), 0))
		// Room for the chunks the budget covers, once: appending batch by
		// batch to a growing slice copied a catch-up read's bytes twice.
		out = slices.Grow(out, int(min(loads.withinBytes, max(maxBytes-int64(len(out)), 0))))
		for i, e := range entries {
			if e.LastOffset() < next {
				continue
			}
			if int64(len(out)) >= maxBytes && (len(out) > 0 || !atLeastOne) {
				// No batch fits: the entry is not loaded just to be left
				// out (the block cache fetches it ahead).
				return out, st, nil
			}
			if !e.Archived() {
				loads.fill(i)
				var full bool
				out, next, full, err = a.readChunkBatches(ctx, out, e, next, maxBytes, atLeastOne)
				switch {
				case err != nil && len(out) > 0:
					return out, st, nil // the next read meets the error
				case err != nil:
					return nil, st, err
				case full:
					return out, st, nil
				}
				next = max(next, e.BaseOffset+e.Records)
				continue
			}
			batches, err := loads.get(i)
			if err != nil {
				if len(out) > 0 {
					return out, st, nil
				}
				return nil, st, err
			}
			for i := range batches {
				b := &batches[i]
				if b.NextOffset() <= next {
					continue
				}
				if int64(len(out)+len(b.Raw)) > maxBytes && (len(out) > 0 || !atLeastOne) {
					return out, st, nil
				}
				out = append(out, b.Raw...)
				next = b.NextOffset()
			}
			next = max(next, e.BaseOffset+e.Records)
		}
		if next >= st.HighWatermark || int64(len(out)) >= maxBytes {
			return out, st, nil
		}
	}
}

// StableBatches is what a read_committed read of whole batches (KIP-98)
// makes of a ReadBatches answer for r: batches holds r's partition's
// batches, and kept is its prefix of the batches that start below the
// partition's last stable offset, with the LSO and the aborted
// transactions among them (StableRead). The consumer drops the batches of
// those transactions itself, as Kafka's consumers do. Errors: StableRead's.
// The records kept, at or past r.Offset and not in control batches or
// aborted transactions, count in strata_fetched_records_total (see
// BatchRead.ReadCommitted).
func (a *Agent) StableBatches(ctx context.Context, r BatchRead, batches []byte) (kept []byte, lso int64, aborted []coordinator.AbortedTxn, err error) {
	lso, aborted, err = a.StableRead(ctx, r.Topic, r.Partition, r.Offset)
	if err != nil {
		return nil, 0, nil, err
	}
	// Batches are whole; each header starts with its base offset (8
	// bytes) and its length (4 bytes, not counting those 12).
	end := 0
	for len(batches)-end >= 12 {
		if int64(binary.BigEndian.Uint64(batches[end:])) >= lso {
			break
		}
		end += 12 + int(binary.BigEndian.Uint32(batches[end+8:]))
	}
	kept = batches[:min(end, len(batches))]
	if r.ReadCommitted {
		metricFetchedRecords.Add(float64(batchRecords(kept, r.Offset, func(pid, base int64) bool {
			for _, t := range aborted {
				if t.ProducerID == pid && t.FirstOffset <= base && base <= t.LastOffset {
					return true
				}
			}
			return false
		})))
	}
	return kept, lso, aborted, nil
}

// batchRecords counts the records of whole, concatenated RecordBatch v2
// batches from their headers, without decoding them: each batch's record
// count, less in a batch that starts before from the offsets below from
// (exact unless compaction left gaps in the batch's offsets, then at most
// the batch's count), and none of control batches (transaction markers,
// which consumers do not return) or of the transactional batches aborted
// reports aborted (nil: none). Bytes that do not hold a whole header end
// the count.
func batchRecords(batches []byte, from int64, aborted func(producerID, baseOffset int64) bool) int {
	n := 0
	for len(batches) >= batchHeaderBytes {
		base := int64(binary.BigEndian.Uint64(batches))
		attrs := objectlog.BatchAttrs(binary.BigEndian.Uint16(batches[batchAttributesAt:]))
		last := base + int64(int32(binary.BigEndian.Uint32(batches[batchLastOffsetDeltaAt:])))
		count := int64(int32(binary.BigEndian.Uint32(batches[batchRecordCountAt:])))
		switch {
		case attrs.Control():
		case attrs.Transactional() && aborted != nil && aborted(int64(binary.BigEndian.Uint64(batches[batchProducerIDAt:])), base):
		case base >= from:
			n += int(max(count, 0))
		default:
			n += int(max(min(count, last-from+1), 0))
		}
		next := 12 + int64(binary.BigEndian.Uint32(batches[8:]))
		if next > int64(len(batches)) {
			break
		}
		batches = batches[next:]
	}
	return n
}
