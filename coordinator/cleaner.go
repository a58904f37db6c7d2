package coordinator

// The log cleaner's index side (cleanup.policy compact; agent/cleaner.go).
// A cleaning pass rewrites a partition's archive files keeping the latest
// record per key, under the partition's compaction lease, and swaps the
// rewritten files in with archive_swap.lua, which also writes the cleaner's
// state in the partition's meta hash, atomically with the swap:
//
//	{t:<id>:<p>}:meta  cleaned   the cleaner checkpoint: every archived
//	                             offset below it has been through a pass
//	                             (Kafka's cleaner-offset-checkpoint)
//	                   horizons  "end:ms,end:ms,...": ranges of offsets that
//	                             still hold tombstones, each with the time of
//	                             the pass that first found them cleanable
//
// A tombstone's delete.retention.ms counts from that time, the pass's
// clock, never from the record's timestamp, which producers set. The
// fields go with the meta hash when the partition is dropped.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// MaxTombstoneHorizons bounds the ranges a partition's cleaner state keeps
// (about 40 bytes each): beyond it the oldest range's tombstones take the
// next range's later time, so they are kept longer, never shorter.
const MaxTombstoneHorizons = 1000

// TombstoneHorizon says that the tombstones at offsets below End (and at
// or above the previous horizon's End) were first found cleanable by the
// pass that ran at FirstCleanedMs (ms since the Unix epoch, the cleaning
// agent's clock).
type TombstoneHorizon struct {
	End            int64
	FirstCleanedMs int64
}

// CleanerState is a partition's log cleaner state.
type CleanerState struct {
	// Checkpoint is the first offset no cleaning pass has covered (0 for a
	// partition never cleaned): the archive from it on is dirty.
	Checkpoint int64
	// Horizons are in ascending End order, at most MaxTombstoneHorizons.
	Horizons []TombstoneHorizon
}

// FirstCleaned returns when the tombstone at offset was first found
// cleanable: the time of the first horizon ending above it. ok is false
// when no horizon covers it (a tombstone the pass at hand finds first).
func (cs CleanerState) FirstCleaned(offset int64) (ms int64, ok bool) {
	i, _ := slices.BinarySearchFunc(cs.Horizons, offset, func(h TombstoneHorizon, o int64) int {
		if h.End <= o {
			return -1
		}
		return 1
	})
	if i == len(cs.Horizons) {
		return 0, false
	}
	return cs.Horizons[i].FirstCleanedMs, true
}

func (cs CleanerState) encodeHorizons() string {
	var b strings.Builder
	for i, h := range cs.Horizons {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(h.End, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(h.FirstCleanedMs, 10))
	}
	return b.String()
}

func parseHorizons(s string) ([]TombstoneHorizon, error) {
	if s == "" {
		return nil, nil
	}
	var out []TombstoneHorizon
	for item := range strings.SplitSeq(s, ",") {
		e, t, ok := strings.Cut(item, ":")
		end, err1 := strconv.ParseInt(e, 10, 64)
		ms, err2 := strconv.ParseInt(t, 10, 64)
		if !ok || err1 != nil || err2 != nil || (len(out) > 0 && end <= out[len(out)-1].End) {
			return nil, fmt.Errorf("horizon %q", item)
		}
		out = append(out, TombstoneHorizon{End: end, FirstCleanedMs: ms})
	}
	return out, nil
}

// Cleaning is what the log cleaner needs of the index beyond Compaction.
type Cleaning interface {
	// CleanerState returns a partition's cleaner state; ErrNotFound for a
	// deleted partition.
	CleanerState(ctx context.Context, topicID uuid.UUID, partition int32) (CleanerState, error)
	// SwapCleaned is SwapArchive for the log cleaner: old are archive
	// entries, repl their rewritten files' entries (which may leave gaps),
	// and cs is written with the swap, atomically. cs nil leaves the state
	// (a pass's earlier swaps). Errors as SwapArchive's; ErrInvalid when an
	// old entry is not an archive entry or cs has more than
	// MaxTombstoneHorizons horizons.
	SwapCleaned(ctx context.Context, l CompactionLease, old, repl []IndexEntry, cs *CleanerState) (SwapResult, error)
}

var _ Cleaning = (*Redis)(nil)

// CleanerState implements Cleaning.
func (r *Redis) CleanerState(ctx context.Context, topicID uuid.UUID, partition int32) (CleanerState, error) {
	op := fmt.Sprintf("cleaner state of topic %s partition %d", topicID, partition)
	v, err := r.client.HMGet(ctx, r.partitionMeta(topicID, partition), "s", "cleaned", "horizons").Result()
	if err != nil {
		return CleanerState{}, wrapErr(op, err)
	}
	if v[0] != "live" {
		return CleanerState{}, fmt.Errorf("%s: %w: no such partition", op, ErrNotFound)
	}
	var cs CleanerState
	if s, ok := v[1].(string); ok {
		if cs.Checkpoint, err = strconv.ParseInt(s, 10, 64); err != nil {
			return CleanerState{}, fmt.Errorf("%s: %w: checkpoint %q", op, ErrUnavailable, s)
		}
	}
	if s, ok := v[2].(string); ok {
		if cs.Horizons, err = parseHorizons(s); err != nil {
			return CleanerState{}, fmt.Errorf("%s: %w: %v", op, ErrUnavailable, err)
		}
	}
	return cs, nil
}

// SwapCleaned implements Cleaning with archive_swap.lua.
func (r *Redis) SwapCleaned(ctx context.Context, l CompactionLease, old, repl []IndexEntry, cs *CleanerState) (SwapResult, error) {
	op := fmt.Sprintf("cleaned archive swap of topic %s partition %d", l.TopicID, l.Partition)
	for i, e := range old {
		if !e.Archived() {
			return SwapResult{}, fmt.Errorf("%s: %w: replaced entry %d (%+v) is not an archive entry", op, ErrInvalid, i, e)
		}
	}
	if cs != nil && len(cs.Horizons) > MaxTombstoneHorizons {
		return SwapResult{}, fmt.Errorf("%s: %w: %d tombstone horizons, at most %d", op, ErrInvalid, len(cs.Horizons), MaxTombstoneHorizons)
	}
	return r.swapArchive(ctx, op, l, old, repl, cs)
}
