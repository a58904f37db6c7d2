package coordinator

// Retention, DeleteRecords and the index side of garbage collection.
//
// Every removal of index entries (DeleteRecords, retention, the drop of a
// deleted topic's partition) is trim.lua, one partition's slot, atomic: it
// advances the log start offset, removes the entries wholly below it,
// lowers the byte total, trims the time index, and records in the
// partition's released set each segment that no entry of the partition
// points at any more:
//
//	{t:<id>:<p>}:released  zset  member a segment key, score the time (ms)
//	                             of the removal
//
// A segment may be deleted from the store only when every partition named
// in its footer answers SegmentState with "gone", "never appended" or
// "released" (and the release is older than the grace period for readers in
// flight). The answer comes from each partition's own keys (segs, released),
// so it does not depend on the {s:<id>}:refs sets, which on Redis Cluster
// are not written atomically with the commit. After the object is deleted,
// ForgetSegment removes the segment's segs field and released member from
// each partition, and DeleteSegmentRefs its refs set: the index keys of a
// partition then stay bounded by its live entries.
//
// A segment's entries in one partition are contiguous in offset order (one
// commit appends them all), and entries are only ever removed from the
// front, so a released segment is never pointed at again: a retried commit
// finds its result in segs and appends nothing. That is why segs fields live
// until the object is deleted: the janitor deletes only objects older than
// its orphan grace period, far longer than any commit's retries.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// TrimResult is the outcome of a trim of one partition.
type TrimResult struct {
	LogStartOffset int64
	HighWatermark  int64
	Bytes          int64 // bytes still referenced by the partition's entries
	EntriesRemoved int64
	BytesRemoved   int64
}

// SegmentUse is what one partition's index says of a segment.
type SegmentUse int

const (
	// SegmentNeverAppended: no commit appended the segment to the partition
	// (an orphan, or every batch was a duplicate or rejected).
	SegmentNeverAppended SegmentUse = iota
	// SegmentInUse: index entries of the partition still point at it.
	SegmentInUse
	// SegmentReleased: the partition's last entry pointing at it was
	// removed, at the time SegmentState returns.
	SegmentReleased
	// SegmentPartitionGone: the partition was dropped with its deleted topic.
	SegmentPartitionGone
)

// ReleasedSegment is a segment a partition no longer points at.
type ReleasedSegment struct {
	Key string
	At  time.Time
}

// DeletedTopic is a deleted topic whose data is not yet collected.
type DeletedTopic struct {
	ID         uuid.UUID
	Partitions int32
	DeletedAt  time.Time
}

// Lifecycle moves log start offsets (DeleteRecords, retention) and tells
// garbage collection which segments and deleted topics it may remove.
type Lifecycle interface {
	// DeleteRecords advances the partition's log start offset to
	// beforeOffset (Kafka's DeleteRecords, KIP-107): -1 means the high
	// watermark; an offset below the log start leaves it (it never moves
	// back); one above the high watermark is ErrOffsetOutOfRange. Entries
	// wholly below the new log start are removed; a read below it is
	// ErrOffsetOutOfRange. ErrNotFound for a deleted or unknown partition.
	DeleteRecords(ctx context.Context, topicID uuid.UUID, partition int32, beforeOffset int64) (TrimResult, error)
	// EnforceRetention removes whole entries from the front while the
	// entry's newest record is older than now minus retentionMs, or while
	// the partition would still hold at least retentionBytes without it
	// (Kafka's retention.ms and retention.bytes; -1 disables either). The
	// log start moves to the end of the last entry removed.
	EnforceRetention(ctx context.Context, topicID uuid.UUID, partition int32, now time.Time, retentionMs, retentionBytes int64) (TrimResult, error)
	// DropPartition removes every entry and index key of a deleted topic's
	// partition except its released set, which ForgetSegment empties.
	DropPartition(ctx context.Context, topicID uuid.UUID, partition int32) error
	// ReleasedSegments returns up to limit segments the partition released
	// at or before before, oldest first.
	ReleasedSegments(ctx context.Context, topicID uuid.UUID, partition int32, before time.Time, limit int) ([]ReleasedSegment, error)
	// SegmentState says whether the partition's index points at the segment.
	SegmentState(ctx context.Context, topicID uuid.UUID, partition int32, segmentID, segmentKey string) (SegmentUse, time.Time, error)
	// ForgetSegment removes what the partition keeps of a deleted segment:
	// its commit result (segs) and its released member.
	ForgetSegment(ctx context.Context, topicID uuid.UUID, partition int32, segmentID, segmentKey string) error
	// DeleteSegmentRefs removes the segment's refs set.
	DeleteSegmentRefs(ctx context.Context, segmentID string) error
	// DeletedTopics lists the deleted topics not yet purged.
	DeletedTopics(ctx context.Context) ([]DeletedTopic, error)
	// PartitionCollected reports whether a dropped partition has no keys left.
	PartitionCollected(ctx context.Context, topicID uuid.UUID, partition int32) (bool, error)
	// PurgeDeletedTopic removes a deleted topic's record once its partitions
	// are collected.
	PurgeDeletedTopic(ctx context.Context, id uuid.UUID) error
	// CatchUpHighWatermarks makes visible what partitions [0, partitions)
	// of the topic committed but never showed: a commit whose WAIT failed
	// and whose agent died before finishing it (Log.FinishSegment) leaves
	// the high watermark below the log end offset until the next commit to
	// the partition. It reads both for every partition in one round trip;
	// only if some lag does it wait for the replicas (or the snapshot) and
	// raise their high watermarks to the log end offsets it read. It returns
	// the watermarks it raised. ErrUnavailable: not durable yet.
	CatchUpHighWatermarks(ctx context.Context, topicID uuid.UUID, partitions int32) ([]Watermark, error)
}

var _ Lifecycle = (*Redis)(nil)

// maxTrimEntries bounds the entries one trim script removes: it blocks the
// server while it runs. The Go side calls again until nothing is left.
const maxTrimEntries = 1000

func (r *Redis) trimKeys(topicID uuid.UUID, p int32) []string {
	return []string{r.partitionMeta(topicID, p), r.partitionKey(topicID, p, "log"), r.partitionKey(topicID, p, "time"),
		r.partitionKey(topicID, p, "released"), r.partitionKey(topicID, p, "segs"),
		r.partitionKey(topicID, p, "txn-open"), r.partitionKey(topicID, p, "txn-aborted")} // issue 11
}

// trim runs trim.lua until it has nothing more to remove.
func (r *Redis) trim(ctx context.Context, op string, topicID uuid.UUID, p int32, args ...any) (TrimResult, error) {
	if p < 0 {
		return TrimResult{}, fmt.Errorf("%s: %w: partition %d", op, ErrInvalid, p)
	}
	var total TrimResult
	for {
		now := time.Now().UnixMilli()
		v, err := r.run(ctx, trimScript, r.trimKeys(topicID, p), append([]any{args[0], now, maxTrimEntries}, args[1:]...)...).Slice()
		if err != nil {
			return total, wrapErr(op, err)
		}
		if len(v) == 0 {
			return total, fmt.Errorf("%s: %w: empty reply", op, ErrUnavailable)
		}
		n := make([]int64, len(v)-1)
		for i := range n {
			if n[i], err = replyInt(v[i+1]); err != nil {
				return total, fmt.Errorf("%s: %w", op, err)
			}
		}
		switch {
		case v[0] == "N":
			return total, fmt.Errorf("%s: %w: no such partition", op, ErrNotFound)
		case v[0] == "R" && len(n) == 2:
			return TrimResult{LogStartOffset: n[0], HighWatermark: n[1]}, fmt.Errorf("%s: %w: log start %d, high watermark %d",
				op, ErrOffsetOutOfRange, n[0], n[1])
		case v[0] == "K" && len(n) == 6:
		default:
			return total, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
		}
		total.LogStartOffset, total.HighWatermark, total.Bytes = n[0], n[1], n[2]
		total.EntriesRemoved += n[3]
		total.BytesRemoved += n[4]
		if n[5] == 0 {
			if args[0] == "D" || total.EntriesRemoved > 0 {
				// An acknowledged DeleteRecords, or a trim that released
				// segments for deletion, must survive a failover: Kafka
				// answers DeleteRecords once the replicas moved their log
				// start, and a lost trim would bring back entries whose
				// segments the garbage collector may delete. A retention
				// pass that removed nothing does not wait.
				return total, wrapErr(op, r.durable(ctx))
			}
			return total, r.written(ctx)
		}
	}
}

// DeleteRecords implements Lifecycle.DeleteRecords with trim.lua.
func (r *Redis) DeleteRecords(ctx context.Context, topicID uuid.UUID, partition int32, beforeOffset int64) (TrimResult, error) {
	op := fmt.Sprintf("delete records of topic %s partition %d before offset %d", topicID, partition, beforeOffset)
	if beforeOffset < -1 {
		return TrimResult{}, fmt.Errorf("%s: %w: offset must be -1 (the high watermark) or at least 0", op, ErrInvalid)
	}
	return r.trim(ctx, op, topicID, partition, "D", beforeOffset)
}

// EnforceRetention implements Lifecycle.EnforceRetention with trim.lua.
func (r *Redis) EnforceRetention(ctx context.Context, topicID uuid.UUID, partition int32, now time.Time, retentionMs, retentionBytes int64) (TrimResult, error) {
	op := fmt.Sprintf("retention of topic %s partition %d", topicID, partition)
	if retentionMs < 0 && retentionBytes < 0 {
		return r.partitionStateTrim(ctx, topicID, partition)
	}
	// now comes from the caller (the janitor's clock), so tests and callers
	// decide what has expired; releases are stamped with this process's now.
	return r.trim(ctx, op, topicID, partition, "R", retentionMs, retentionBytes, now.UnixMilli())
}

// partitionStateTrim is the partition's state as a TrimResult that removed nothing.
func (r *Redis) partitionStateTrim(ctx context.Context, topicID uuid.UUID, partition int32) (TrimResult, error) {
	st, err := r.PartitionState(ctx, topicID, partition)
	return TrimResult{LogStartOffset: st.LogStartOffset, HighWatermark: st.HighWatermark, Bytes: st.Bytes}, err
}

// DropPartition implements Lifecycle.DropPartition with trim.lua.
func (r *Redis) DropPartition(ctx context.Context, topicID uuid.UUID, partition int32) error {
	op := fmt.Sprintf("drop topic %s partition %d", topicID, partition)
	if _, err := r.trim(ctx, op, topicID, partition, "X"); err != nil {
		return err
	}
	// The compaction lease (archive.go) goes too; a compactor still at
	// work on the partition finds it gone and its swap fenced.
	if err := r.client.Del(ctx, r.compactLeaseKey(topicID, partition)).Err(); err != nil {
		return wrapErr(op, err)
	}
	return r.written(ctx)
}

// ReleasedSegments implements Lifecycle.ReleasedSegments.
func (r *Redis) ReleasedSegments(ctx context.Context, topicID uuid.UUID, partition int32, before time.Time, limit int) ([]ReleasedSegment, error) {
	zs, err := r.client.ZRangeByScoreWithScores(ctx, r.partitionKey(topicID, partition, "released"), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(before.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil {
		return nil, wrapErr(fmt.Sprintf("released segments of topic %s partition %d", topicID, partition), err)
	}
	out := make([]ReleasedSegment, len(zs))
	for i, z := range zs {
		s, _ := z.Member.(string)
		out[i] = ReleasedSegment{Key: s, At: time.UnixMilli(int64(z.Score))}
	}
	return out, nil
}

// SegmentState implements Lifecycle.SegmentState with segment_state.lua.
func (r *Redis) SegmentState(ctx context.Context, topicID uuid.UUID, partition int32, segmentID, segmentKey string) (SegmentUse, time.Time, error) {
	op := fmt.Sprintf("state of segment %s in topic %s partition %d", segmentID, topicID, partition)
	v, err := r.run(ctx, segmentStateScript, []string{r.partitionMeta(topicID, partition), r.partitionKey(topicID, partition, "segs"),
		r.partitionKey(topicID, partition, "released")}, segmentID, segmentKey).StringSlice()
	if err != nil {
		return 0, time.Time{}, wrapErr(op, err)
	}
	switch {
	case len(v) == 1 && v[0] == "G":
		return SegmentPartitionGone, time.Time{}, nil
	case len(v) == 1 && v[0] == "U":
		return SegmentInUse, time.Time{}, nil
	case len(v) == 1 && v[0] == "0":
		return SegmentNeverAppended, time.Time{}, nil
	case len(v) == 2 && v[0] == "F":
		ms, err := strconv.ParseFloat(v[1], 64)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
		}
		return SegmentReleased, time.UnixMilli(int64(ms)), nil
	}
	return 0, time.Time{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
}

// ForgetSegment implements Lifecycle.ForgetSegment.
func (r *Redis) ForgetSegment(ctx context.Context, topicID uuid.UUID, partition int32, segmentID, segmentKey string) error {
	pipe := r.client.TxPipeline()
	pipe.HDel(ctx, r.partitionKey(topicID, partition, "segs"), segmentID)
	pipe.ZRem(ctx, r.partitionKey(topicID, partition, "released"), segmentKey)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr(fmt.Sprintf("forget segment %s in topic %s partition %d", segmentID, topicID, partition), err)
	}
	return r.softWritten(ctx)
}

// DeleteSegmentRefs implements Lifecycle.DeleteSegmentRefs.
func (r *Redis) DeleteSegmentRefs(ctx context.Context, segmentID string) error {
	if segmentID == "" || hasBraces(segmentID) {
		return fmt.Errorf("delete segment refs: %w: segment id %q", ErrInvalid, segmentID)
	}
	if err := r.client.Del(ctx, r.segmentKey(segmentID, "refs")).Err(); err != nil {
		return wrapErr("delete segment refs of "+segmentID, err)
	}
	return r.softWritten(ctx)
}

// DeletedTopics implements Lifecycle.DeletedTopics. A deletion whose caller
// died before marking the partitions is finished first, so a listed topic's
// partitions take no more commits.
func (r *Redis) DeletedTopics(ctx context.Context) ([]DeletedTopic, error) {
	if err := r.sealPendingDeletes(ctx); err != nil {
		return nil, wrapErr("deleted topics", err)
	}
	ids, err := r.client.SMembers(ctx, r.deletedTopicsKey()).Result()
	if err != nil {
		return nil, wrapErr("deleted topics", err)
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, s := range ids {
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("deleted topics: %w: id %q", ErrUnavailable, s)
		}
		cmds[i] = pipe.HMGet(ctx, r.topicKey(id), "partitions", "deleted", "sealed")
	}
	if len(ids) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, wrapErr("deleted topics", err)
		}
	}
	out := make([]DeletedTopic, 0, len(ids))
	for i, c := range cmds {
		v := c.Val()
		dt := DeletedTopic{ID: uuid.MustParse(ids[i])}
		if v[0] == nil {
			out = append(out, dt) // record gone: only the set member is left
			continue
		}
		if v[2] == nil {
			continue // not sealed yet: commits may still land
		}
		n, err1 := strconv.ParseInt(fmt.Sprint(v[0]), 10, 32)
		ms, err2 := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("deleted topics: %w: topic %s record %v", ErrUnavailable, ids[i], v)
		}
		dt.Partitions, dt.DeletedAt = int32(n), time.UnixMilli(ms)
		out = append(out, dt)
	}
	return out, nil
}

// PartitionCollected implements Lifecycle.PartitionCollected.
func (r *Redis) PartitionCollected(ctx context.Context, topicID uuid.UUID, partition int32) (bool, error) {
	n, err := r.client.Exists(ctx, r.partitionMeta(topicID, partition), r.partitionKey(topicID, partition, "released")).Result()
	if err != nil {
		return false, wrapErr(fmt.Sprintf("collected topic %s partition %d", topicID, partition), err)
	}
	return n == 0, nil
}

// PurgeDeletedTopic implements Lifecycle.PurgeDeletedTopic: the record and
// the deleted-set member go together.
func (r *Redis) PurgeDeletedTopic(ctx context.Context, id uuid.UUID) error {
	pipe := r.client.TxPipeline()
	pipe.Del(ctx, r.topicKey(id))
	pipe.SRem(ctx, r.deletedTopicsKey(), id.String())
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapErr("purge deleted topic "+id.String(), err)
	}
	return r.written(ctx)
}
