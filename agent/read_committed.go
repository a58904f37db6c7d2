package agent

// read_committed reads (Kafka's isolation.level=read_committed, KIP-98),
// for Fetch and Subscribe: records only below the partition's last stable
// offset (LSO: the first offset of its oldest open transaction, or the high
// watermark), and none of an aborted transaction. Kafka's brokers send the
// aborted transactions with the batches and the consumer drops their
// batches; here the agent drops them, with the same rule: a transactional
// batch of producer P is aborted when an aborted transaction of P on the
// partition spans it (first offset <= batch offset <= its abort marker's
// offset). Control batches (markers) are never returned, at any isolation.
//
// The LSO is read before the records and the aborted transactions after
// it: every transaction that starts below that LSO was closed when it was
// read, and an abort is recorded by the same index script that commits its
// marker, so the list is complete for every record returned.
//
// For read_committed, a read's high watermark is the LSO: a reader is
// caught up when it reaches it, and waits there for the transaction to end
// (Kafka's read_committed consumers measure their lag to the LSO too).

import (
	"context"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// abortedFilterKey carries an *abortedFilter in a read's context to
// readEntry.
type abortedFilterKey struct{}

// abortedFilter is the aborted transactions of the partition being read.
type abortedFilter struct {
	aborted []coordinator.AbortedTxn
}

// abortedBatch reports whether b belongs to an aborted transaction of the
// read's abortedFilter (none: a read_uncommitted read).
func abortedBatch(ctx context.Context, b *objectlog.Batch) bool {
	f, _ := ctx.Value(abortedFilterKey{}).(*abortedFilter)
	if f == nil || !b.Attrs.Transactional() || b.Attrs.Control() {
		return false
	}
	for _, t := range f.aborted {
		if t.ProducerID == b.ProducerID && t.FirstOffset <= b.BaseOffset && b.BaseOffset <= t.LastOffset {
			return true
		}
	}
	return false
}

// readIsolated reads like readRecords at the given isolation level.
func (a *Agent) readIsolated(ctx context.Context, level stratav1.IsolationLevel, topic coordinator.Topic, partition int32,
	offset, maxBytes int64, atLeastOne bool) ([]*stratav1.ConsumedRecord, int64, coordinator.PartitionState, error) {
	if level != stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED {
		return a.readRecords(ctx, topic, partition, offset, maxBytes, atLeastOne)
	}
	return a.readCommitted(ctx, topic, partition, offset, maxBytes, atLeastOne)
}

// readCommitted is readRecords for read_committed: records below the LSO,
// those of aborted transactions left out; the state's HighWatermark is the
// LSO.
func (a *Agent) readCommitted(ctx context.Context, topic coordinator.Topic, partition int32,
	offset, maxBytes int64, atLeastOne bool) ([]*stratav1.ConsumedRecord, int64, coordinator.PartitionState, error) {
	st, err := a.index.PartitionState(ctx, topic.ID, partition)
	if err != nil {
		return nil, offset, st, err
	}
	lso := st.LastStableOffset
	if offset >= lso && offset <= st.HighWatermark && offset >= st.LogStartOffset {
		// Nothing stable to read yet: wait for the LSO, as a reader at the
		// high watermark waits for it.
		st.HighWatermark = lso
		return nil, offset, st, nil
	}
	f := &abortedFilter{}
	if offset < lso {
		f.aborted, err = a.index.AbortedTransactions(ctx, topic.ID, partition, max(offset, 0), lso-1)
		if err != nil {
			return nil, offset, st, err
		}
		if n := len(f.aborted); n == maxAbortedPerRead {
			// The list is capped: it holds every transaction starting
			// below its last one's start, so read no further than that.
			lso = max(f.aborted[n-1].FirstOffset, offset+1)
		}
	}
	recs, next, rst, err := a.readRecords(context.WithValue(ctx, abortedFilterKey{}, f), topic, partition, offset, maxBytes, atLeastOne)
	if err != nil {
		return recs, next, rst, err
	}
	for i, r := range recs {
		if r.Offset >= lso {
			recs = recs[:i]
			break
		}
	}
	next = min(next, lso)
	rst.HighWatermark = min(rst.HighWatermark, lso)
	rst.LastStableOffset = lso
	return recs, next, rst, nil
}

// lastStableOffset is the partition's LSO: ListOffsets' "latest" under
// read_committed, as in Kafka.
func (a *Agent) lastStableOffset(ctx context.Context, name string, partition int32) (int64, error) {
	topic, err := a.partitionTopic(ctx, name, partition)
	if err != nil {
		return 0, err
	}
	st, err := a.index.PartitionState(ctx, topic.ID, partition)
	if err != nil {
		return 0, err
	}
	return st.LastStableOffset, nil
}

// maxAbortedPerRead is the most aborted transactions the index returns
// for one range (coordinator.Transactions.AbortedTransactions).
const maxAbortedPerRead = 1000

// StableRead is what a read_committed fetch of whole batches (the Kafka
// listener's, KIP-98) needs beside them: the partition's last stable
// offset, and the aborted transactions that start below it at or after
// offset. Batches from the LSO on are not to be returned; the consumer
// drops the batches of the aborted transactions itself, as Kafka's do. Read
// it after the batches: the LSO only rises, and an abort is recorded with
// its marker, so the list covers every batch read before it. Errors: those
// of a read (unknown topic or partition, index unavailable).
func (a *Agent) StableRead(ctx context.Context, name string, partition int32, offset int64) (int64, []coordinator.AbortedTxn, error) {
	topic, err := a.partitionTopic(ctx, name, partition)
	if err != nil {
		return 0, nil, err
	}
	st, err := a.index.PartitionState(ctx, topic.ID, partition)
	if err != nil {
		return 0, nil, err
	}
	lso := st.LastStableOffset
	if offset >= lso {
		return lso, nil, nil
	}
	aborted, err := a.index.AbortedTransactions(ctx, topic.ID, partition, max(offset, 0), lso-1)
	if err != nil {
		return 0, nil, err
	}
	if n := len(aborted); n == maxAbortedPerRead {
		// Capped: complete only below its last transaction's start.
		lso = max(aborted[n-1].FirstOffset, offset+1)
	}
	return lso, aborted, nil
}
