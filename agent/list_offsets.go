package agent

// ConsumerService.ListOffsets: Kafka's ListOffsets over the native API
// (earliest, latest, by time from KIP-79, max timestamp from KIP-734), for
// any number of partitions per call, up to maxListOffsets.
//
// By time, the index's time index names the first entry whose running
// maximum timestamp reaches the time; that entry, and the ones after it if
// retention cut the record that reached it, are scanned for the exact
// record (recordAtOrAfter, shared with Subscribe and ResetOffsets). Times
// are compared in milliseconds, the stored precision, rounding the asked
// time up (millisCeil): a record is never answered for a time after its
// own.
//
// Max timestamp has no index of its own: the partition's index entries
// (metadata only) give each entry's max timestamp, and the entries are read
// from the largest down until no unread entry can beat the best record
// found. Entries' maxima may come from transaction markers, which are not
// records, hence the reading rather than trusting the entry.
//
// Any error fails the call (documented in the proto): the caller names
// partitions it learned from DescribeTopic, so an unknown one is a mistake,
// and the topic cache is refreshed before saying so. The lookups of one
// call run listOffsetsParallel at a time; the first error cancels the rest.

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// maxListOffsets bounds the lookups of one ListOffsets call, so one call
// cannot hold an agent for long.
const maxListOffsets = 1000

// ListOffsets is ConsumerService.ListOffsets (strata/v1; Kafka's
// ListOffsets: earliest, latest, by time, max timestamp) in the core; the
// Connect front-end, agent/connectapi, wraps it. Errors: ErrInvalid (a
// *LimitError over 1000 partitions), ErrUnknownTopicOrPartition.
func (a *Agent) ListOffsets(ctx context.Context, m *stratav1.ListOffsetsRequest) (*stratav1.ListOffsetsResponse, error) {
	if err := checkIsolation(m.GetIsolationLevel()); err != nil {
		return nil, err
	}
	n := len(m.GetPartitions())
	switch {
	case n == 0:
		return nil, invalidf("name at least one partition to look up")
	case n > maxListOffsets:
		return nil, overLimit(errInvalid, "partitions", maxListOffsets, int64(n),
			"%d lookups in one request, over the limit of %d; split the request", n, maxListOffsets)
	}
	for i, q := range m.GetPartitions() {
		if q.GetTopic() == "" {
			return nil, invalidf("partitions[%d]: topic name is empty", i)
		}
		switch s := q.GetSpec().(type) {
		case nil:
			return nil, invalidf("partitions[%d]: say what to look up: earliest, latest, timestamp or max_timestamp", i)
		case *stratav1.ListOffsetsPartition_Timestamp:
			if err := s.Timestamp.CheckValid(); err != nil {
				return nil, invalidf("partitions[%d]: timestamp: %v", i, err)
			}
		}
	}
	out := &stratav1.ListOffsetsResponse{Partitions: make([]*stratav1.ListOffsetsPartitionResult, n)}
	// Lookups run listOffsetsParallel at a time: a lookup by time may read
	// from the store, and a topic's partitions are many.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	sem := make(chan struct{}, listOffsetsParallel)
	for i, q := range m.GetPartitions() {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := a.listOffsetsPartition(ctx, q, m.GetIsolationLevel() == stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED)
			if err != nil {
				once.Do(func() { firstErr = err; cancel() })
				return
			}
			out.Partitions[i] = res
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err() // the client went away
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// listOffsetsParallel bounds the lookups of one ListOffsets call in flight.
const listOffsetsParallel = 16

// listOffsetsPartition answers one lookup of the RPC, bounded by the last
// stable offset when readCommitted (stableOffset).
func (a *Agent) listOffsetsPartition(ctx context.Context, q *stratav1.ListOffsetsPartition, readCommitted bool) (*stratav1.ListOffsetsPartitionResult, error) {
	var spec offsetSpec
	var ts int64
	switch s := q.GetSpec().(type) {
	case *stratav1.ListOffsetsPartition_Earliest:
		spec = offsetEarliest
	case *stratav1.ListOffsetsPartition_Latest:
		spec = offsetLatest
	case *stratav1.ListOffsetsPartition_MaxTimestamp:
		spec = offsetMaxTimestamp
	case *stratav1.ListOffsetsPartition_Timestamp:
		spec, ts = offsetByTime, millisCeil(s.Timestamp)
	}
	r, found, err := a.listOffset(ctx, q.GetTopic(), q.GetPartition(), spec, ts)
	if err == nil && found && readCommitted {
		r, found, err = a.stableOffset(ctx, q.GetTopic(), q.GetPartition(), spec, r)
	}
	if err != nil {
		return nil, err
	}
	res := &stratav1.ListOffsetsPartitionResult{Topic: q.GetTopic(), Partition: q.GetPartition(), Offset: -1}
	if found {
		res.Offset = r.offset
		if spec == offsetByTime || spec == offsetMaxTimestamp {
			res.Timestamp = timestamppb.New(time.UnixMilli(r.timestamp))
		}
	}
	return res, nil
}

// Kafka's special ListOffsets timestamps, for ListOffset.
const (
	ListLatest       int64 = -1 // the high watermark
	ListEarliest     int64 = -2 // the log start offset
	ListMaxTimestamp int64 = -3 // the record with the largest timestamp (KIP-734)
)

// ListOffset is Kafka's ListOffsets for one partition, for any front-end:
// timestamp is a time in ms (the first record stamped at or after it,
// KIP-79) or one of ListLatest, ListEarliest, ListMaxTimestamp. It answers
// the offset and, for a time or ListMaxTimestamp, the record's timestamp
// (ms); offset and timestamp are -1 when no record matches (Kafka's
// answer), and timestamp is -1 for ListLatest and ListEarliest. Other
// negative timestamps are invalid. With readCommitted (Kafka's
// read_committed isolation level) the last stable offset bounds the
// answer, as in Kafka's Partition.fetchOffsetForTimestamp: ListLatest is
// the LSO, and a record found by time or max timestamp at or past the LSO
// is no match (-1, -1). Errors: an unknown topic or partition is a
// coordinator.ErrNotFound, said only after the topic's metadata was read
// afresh; the index or store unavailable is retryable.
func (a *Agent) ListOffset(ctx context.Context, topic string, partition int32, timestamp int64, readCommitted bool) (offset, recordTimestamp int64, err error) {
	spec := offsetByTime
	switch {
	case timestamp == ListLatest:
		spec = offsetLatest
	case timestamp == ListEarliest:
		spec = offsetEarliest
	case timestamp == ListMaxTimestamp:
		spec = offsetMaxTimestamp
	case timestamp < 0:
		return 0, 0, invalidf("timestamp %d: want a time in ms, or -1 (latest), -2 (earliest), -3 (max timestamp)", timestamp)
	}
	r, found, err := a.listOffset(ctx, topic, partition, spec, timestamp)
	switch {
	case err != nil:
		return 0, 0, err
	case !found:
		return -1, -1, nil
	case readCommitted:
		if r, found, err = a.stableOffset(ctx, topic, partition, spec, r); err != nil {
			return 0, 0, err
		} else if !found {
			return -1, -1, nil
		}
	}
	return r.offset, r.timestamp, nil
}

// stableOffset bounds r, what listOffset found for spec, by the partition's
// last stable offset, for read_committed lookups (Kafka's
// Partition.fetchOffsetForTimestamp): latest is the LSO, earliest stays,
// and a record found by time or max timestamp at or past the LSO is no
// match (found false).
func (a *Agent) stableOffset(ctx context.Context, topic string, partition int32, spec offsetSpec, r timedOffset) (timedOffset, bool, error) {
	if spec == offsetEarliest {
		return r, true, nil
	}
	lso, err := a.lastStableOffset(ctx, topic, partition)
	switch {
	case err != nil:
		return timedOffset{}, false, err
	case spec == offsetLatest:
		return timedOffset{offset: lso, timestamp: -1}, true, nil
	}
	return r, r.offset < lso, nil
}

// offsetSpec is what a lookup finds.
type offsetSpec int

const (
	offsetByTime offsetSpec = iota
	offsetEarliest
	offsetLatest
	offsetMaxTimestamp
)

// listOffset answers one lookup (ts in ms, for offsetByTime); found is
// false when no record matches. For earliest and latest, the timestamp is
// -1. A partition the index says does not exist is looked up once more
// after re-reading the topic, in case the cached topic was deleted and its
// name given to a new one (as Fetch does).
func (a *Agent) listOffset(ctx context.Context, name string, p int32, spec offsetSpec, ts int64) (timedOffset, bool, error) {
	topic, err := a.partitionTopic(ctx, name, p)
	if err != nil {
		return timedOffset{}, false, err
	}
	r, found, err := a.lookupOffset(ctx, topic, p, spec, ts)
	if errors.Is(err, coordinator.ErrNotFound) {
		fresh, ferr := a.refreshTopic(ctx, topic)
		switch {
		case ferr == nil:
			r, found, err = a.lookupOffset(ctx, fresh, p, spec, ts)
		case errors.Is(ferr, coordinator.ErrNotFound):
			err = unknownTopic(name, ferr) // deleted for good
		}
	}
	return r, found, err
}

func (a *Agent) lookupOffset(ctx context.Context, topic coordinator.Topic, p int32, spec offsetSpec, ts int64) (timedOffset, bool, error) {
	st, err := a.index.PartitionState(ctx, topic.ID, p)
	if err != nil {
		return timedOffset{}, false, err
	}
	switch spec {
	case offsetEarliest:
		return timedOffset{st.LogStartOffset, -1}, true, nil
	case offsetLatest:
		return timedOffset{st.HighWatermark, -1}, true, nil
	case offsetMaxTimestamp:
		return a.maxTimestampRecord(ctx, topic, p, st)
	}
	return a.recordAtOrAfter(ctx, topic, p, ts, st)
}

// millisCeil is ts in milliseconds since the epoch, rounded up: a time
// between two milliseconds compares after every record stamped in the
// first of them. (Nanos are always in [0, 1e9) in a valid Timestamp, so
// this holds before 1970 too.)
func millisCeil(ts *timestamppb.Timestamp) int64 {
	return ts.GetSeconds()*1000 + (int64(ts.GetNanos())+999_999)/1_000_000
}

// timedOffset is a record's offset and timestamp (ms).
type timedOffset struct {
	offset, timestamp int64
}

// recordAtOrAfter finds the partition's first record, in offset order from
// the log start, with a timestamp (ms) at or after ts; found is false when
// none has one, and then the answer's offset is where the search ended:
// every record below it is older than ts (a reader from ts starts there).
// st is the partition's state, read by the caller.
func (a *Agent) recordAtOrAfter(ctx context.Context, topic coordinator.Topic, p int32, ts int64, st coordinator.PartitionState) (timedOffset, bool, error) {
	e, found, err := a.index.OffsetForTimestamp(ctx, topic.ID, p, ts)
	if err != nil {
		return timedOffset{}, false, err
	}
	if !found {
		return timedOffset{st.HighWatermark, -1}, false, nil
	}
	from := max(e.BaseOffset, st.LogStartOffset)
	for {
		recs, next, rst, err := a.readPartition(ctx, topic, p, from, defaultReadBytes)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && from < rst.LogStartOffset {
			from = rst.LogStartOffset // retention passed the entry meanwhile
			continue
		}
		if err != nil {
			return timedOffset{}, false, err
		}
		for _, r := range recs {
			if t := r.GetTimestamp().AsTime().UnixMilli(); t >= ts {
				return timedOffset{r.GetOffset(), t}, true, nil
			}
		}
		// The entry's running maximum reached ts but, when retention cut
		// it, the record that did is gone: keep scanning to the end.
		if next <= from || next >= rst.HighWatermark {
			return timedOffset{next, -1}, false, nil
		}
		from = next
	}
}

// maxTimestampRecord finds the record with the largest timestamp, the first
// in offset order among equals (KIP-734); found is false for a partition
// without records.
func (a *Agent) maxTimestampRecord(ctx context.Context, topic coordinator.Topic, p int32, st coordinator.PartitionState) (timedOffset, bool, error) {
	entries, err := a.partitionEntries(ctx, topic, p, st)
	if err != nil {
		return timedOffset{}, false, err
	}
	// Largest maximum first; among equal maxima, lower offsets first.
	slices.SortStableFunc(entries, func(x, y coordinator.IndexEntry) int {
		switch {
		case x.MaxTimestamp > y.MaxTimestamp:
			return -1
		case x.MaxTimestamp < y.MaxTimestamp:
			return 1
		}
		return 0
	})
	var best timedOffset
	found := false
	for _, e := range entries {
		// Every record of e is stamped at most e.MaxTimestamp; at equal
		// stamps, e's offsets come after best's (see the order above).
		if found && e.MaxTimestamp <= best.timestamp {
			break
		}
		from, end := max(e.BaseOffset, st.LogStartOffset), e.BaseOffset+e.Records
		for from < end {
			recs, next, _, err := a.readPartition(ctx, topic, p, from, defaultReadBytes)
			if errors.Is(err, coordinator.ErrOffsetOutOfRange) {
				break // retention took the rest of the entry meanwhile
			}
			if err != nil {
				return timedOffset{}, false, err
			}
			for _, r := range recs {
				if r.GetOffset() >= end {
					break
				}
				if t := r.GetTimestamp().AsTime().UnixMilli(); !found || t > best.timestamp || (t == best.timestamp && r.GetOffset() < best.offset) {
					best, found = timedOffset{r.GetOffset(), t}, true
				}
			}
			if next <= from {
				break
			}
			from = next
		}
	}
	return best, found, nil
}

// partitionEntries lists the partition's index entries from the log start
// to the high watermark in st, in offset order: metadata only, a page of
// the index at a time.
func (a *Agent) partitionEntries(ctx context.Context, topic coordinator.Topic, p int32, st coordinator.PartitionState) ([]coordinator.IndexEntry, error) {
	var all []coordinator.IndexEntry
	from := st.LogStartOffset
	for from < st.HighWatermark {
		entries, lst, err := a.index.Lookup(ctx, topic.ID, p, from, math.MaxInt64/2)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && from < lst.LogStartOffset {
			from = lst.LogStartOffset // retention moved the start meanwhile
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if e.BaseOffset < st.HighWatermark {
				all = append(all, e)
			}
		}
		next := entries[len(entries)-1].BaseOffset + entries[len(entries)-1].Records
		if next <= from {
			break
		}
		from = next
	}
	return all, nil
}
