package coordinator

// Compaction to the archive (DESIGN.md "Compaction, retention, archive"):
// the index side. A compactor holds the partition's compaction lease,
//
//	{t:<id>:<p>}:compact  hash  holder, token, expires (server ms)
//
// kept under the partition's own hash tag, unlike the named leases of
// leases.go, so that archive_swap.lua checks the token in the same script
// that swaps the entries: a compactor that lost its lease changes nothing.
//
// An archive entry is an ordinary log member whose key is an archive file's
// ("archive/topic=.../partition=.../<first>-<last>-<id>.parquet") and whose
// byte range is one row group's column chunks: the member format, lookup,
// offset_for_time and trim scripts are unchanged. trim.lua records an
// archive file in the released set when its last entry goes (retention,
// DeleteRecords), as it does for segments, and the janitor deletes it after
// its grace.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ArchiveKeyPrefix starts every archive file's key (objectlog.ArchiveKey).
const ArchiveKeyPrefix = "archive/"

// Archived reports whether the entry points at an archive row group rather
// than a segment chunk.
func (e IndexEntry) Archived() bool { return strings.HasPrefix(e.SegmentKey, ArchiveKeyPrefix) }

// CompactionLease is a partition's compaction lease.
type CompactionLease struct {
	TopicID   uuid.UUID
	Partition int32
	Holder    string
	Token     int64
	Expires   time.Time
}

// SwapResult is what SwapArchive did.
type SwapResult struct {
	// AlreadyDone: a retry found the swap made by an earlier call.
	AlreadyDone  bool
	BytesRemoved int64
	BytesAdded   int64
}

// Compaction is what a compactor needs of the index beyond Log.
type Compaction interface {
	// AcquireCompactionLease takes the partition's compaction lease for ttl;
	// ErrConflict while another holder's is live.
	AcquireCompactionLease(ctx context.Context, topicID uuid.UUID, partition int32, holder string, ttl time.Duration) (CompactionLease, error)
	// RenewCompactionLease extends a lease still held with l's token;
	// ErrFenced once it is lost or expired.
	RenewCompactionLease(ctx context.Context, l CompactionLease, ttl time.Duration) (CompactionLease, error)
	// ReleaseCompactionLease gives the lease up if l's token still holds it.
	ReleaseCompactionLease(ctx context.Context, l CompactionLease) error
	// SwapArchive replaces the entries old (contiguous, in offset order, as
	// Lookup returned them, all below the high watermark) by the archive
	// entries repl, atomically: the time index and byte total follow, and
	// each segment no remaining entry points at goes to the released set
	// (as trim.lua does), for the janitor. ErrFenced when l no longer holds
	// the lease; ErrConflict when the entries changed since they were read
	// (nothing is written then); ErrNotFound for a deleted partition. A
	// retry of a swap that happened returns AlreadyDone.
	SwapArchive(ctx context.Context, l CompactionLease, old, repl []IndexEntry) (SwapResult, error)
}

var _ Compaction = (*Redis)(nil)

func (r *Redis) compactLeaseKey(id uuid.UUID, p int32) string {
	return r.partitionKey(id, p, "compact")
}

// entryMember is an entry's log member (commit.lua's format).
func entryMember(e IndexEntry) string {
	return strconv.FormatInt(e.BaseOffset, 10) + "|" + strconv.FormatInt(e.Records, 10) + "|" +
		strconv.FormatInt(e.ByteOffset, 10) + "|" + strconv.FormatInt(e.ByteLength, 10) + "|" +
		strconv.FormatInt(e.MaxTimestamp, 10) + "|" + e.SegmentKey
}

func (r *Redis) compactLease(ctx context.Context, op, mode string, id uuid.UUID, p int32, holder string, token int64, ttl time.Duration) ([]any, error) {
	if p < 0 {
		return nil, fmt.Errorf("%s: %w: partition %d", op, ErrInvalid, p)
	}
	v, err := r.run(ctx, compactLeaseScript, []string{r.compactLeaseKey(id, p)}, mode, holder, token, ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%s: %w: empty reply", op, ErrUnavailable)
	}
	return v, nil
}

// AcquireCompactionLease implements Compaction with compact_lease.lua.
func (r *Redis) AcquireCompactionLease(ctx context.Context, topicID uuid.UUID, partition int32, holder string, ttl time.Duration) (CompactionLease, error) {
	op := fmt.Sprintf("compaction lease of topic %s partition %d", topicID, partition)
	if holder == "" || ttl <= 0 {
		return CompactionLease{}, fmt.Errorf("%s: %w: holder %q, ttl %v", op, ErrInvalid, holder, ttl)
	}
	start := time.Now()
	v, err := r.compactLease(ctx, op, "A", topicID, partition, holder, 0, ttl)
	if err != nil {
		return CompactionLease{}, err
	}
	if v[0] == int64(0) && len(v) == 4 {
		return CompactionLease{}, fmt.Errorf("%s: %w: held by %v (token %v) for another %v ms", op, ErrConflict, v[1], v[2], v[3])
	}
	if v[0] != int64(1) || len(v) != 3 {
		return CompactionLease{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
	}
	token, err := replyInt(v[1])
	if err != nil {
		return CompactionLease{}, fmt.Errorf("%s: %w", op, err)
	}
	return CompactionLease{TopicID: topicID, Partition: partition, Holder: holder, Token: token, Expires: start.Add(ttl)}, r.written(ctx)
}

// RenewCompactionLease implements Compaction with compact_lease.lua.
func (r *Redis) RenewCompactionLease(ctx context.Context, l CompactionLease, ttl time.Duration) (CompactionLease, error) {
	op := fmt.Sprintf("renew compaction lease of topic %s partition %d", l.TopicID, l.Partition)
	start := time.Now()
	v, err := r.compactLease(ctx, op, "R", l.TopicID, l.Partition, l.Holder, l.Token, ttl)
	if err != nil {
		return l, err
	}
	if v[0] != int64(1) {
		return l, fmt.Errorf("%s: %w: token %d no longer holds it", op, ErrFenced, l.Token)
	}
	l.Expires = start.Add(ttl)
	return l, r.written(ctx)
}

// ReleaseCompactionLease implements Compaction with compact_lease.lua.
func (r *Redis) ReleaseCompactionLease(ctx context.Context, l CompactionLease) error {
	op := fmt.Sprintf("release compaction lease of topic %s partition %d", l.TopicID, l.Partition)
	if _, err := r.compactLease(ctx, op, "X", l.TopicID, l.Partition, l.Holder, l.Token, 0); err != nil {
		return err
	}
	return r.written(ctx)
}

// maxSwapEntries bounds the entries one swap replaces or adds: the script
// blocks the server while it runs.
const maxSwapEntries = 10000

// SwapArchive implements Compaction with archive_swap.lua.
func (r *Redis) SwapArchive(ctx context.Context, l CompactionLease, old, repl []IndexEntry) (SwapResult, error) {
	return r.swapArchive(ctx, fmt.Sprintf("archive swap of topic %s partition %d", l.TopicID, l.Partition), l, old, repl, nil)
}

// swapArchive runs archive_swap.lua; cs, when not nil, is written with the
// swap (the log cleaner's).
func (r *Redis) swapArchive(ctx context.Context, op string, l CompactionLease, old, repl []IndexEntry, cs *CleanerState) (SwapResult, error) {
	if len(old) == 0 || len(repl) == 0 || len(old)+len(repl) > maxSwapEntries {
		return SwapResult{}, fmt.Errorf("%s: %w: %d entries replaced by %d (both at least 1, together at most %d)",
			op, ErrInvalid, len(old), len(repl), maxSwapEntries)
	}
	first, end := old[0].BaseOffset, old[len(old)-1].BaseOffset+old[len(old)-1].Records
	for i, e := range repl {
		if !e.Archived() || e.Records <= 0 || e.BaseOffset < first || e.BaseOffset+e.Records > end ||
			(i > 0 && e.BaseOffset < repl[i-1].BaseOffset+repl[i-1].Records) || strings.Contains(e.SegmentKey, "|") {
			return SwapResult{}, fmt.Errorf("%s: %w: entry %d (%+v) is not an archive entry inside offsets [%d, %d) after the one before",
				op, ErrInvalid, i, e, first, end)
		}
	}
	args := make([]any, 0, 5+len(old)+len(repl))
	args = append(args, strconv.FormatInt(l.Token, 10), time.Now().UnixMilli(), len(old))
	if cs != nil {
		args = append(args, strconv.FormatInt(cs.Checkpoint, 10), cs.encodeHorizons())
	} else {
		args = append(args, "", "")
	}
	for _, e := range old {
		args = append(args, entryMember(e))
	}
	for _, e := range repl {
		args = append(args, entryMember(e))
	}
	keys := []string{r.partitionMeta(l.TopicID, l.Partition), r.partitionKey(l.TopicID, l.Partition, "log"),
		r.partitionKey(l.TopicID, l.Partition, "time"), r.partitionKey(l.TopicID, l.Partition, "released"),
		r.compactLeaseKey(l.TopicID, l.Partition)}
	v, err := r.run(ctx, archiveSwapScript, keys, args...).Slice()
	if err != nil {
		return SwapResult{}, wrapErr(op, err)
	}
	if len(v) == 0 {
		return SwapResult{}, fmt.Errorf("%s: %w: empty reply", op, ErrUnavailable)
	}
	switch {
	case v[0] == "N":
		return SwapResult{}, fmt.Errorf("%s: %w: no such partition", op, ErrNotFound)
	case v[0] == "F":
		return SwapResult{}, fmt.Errorf("%s: %w: token %d lost the compaction lease (now %v)", op, ErrFenced, l.Token, v[1:])
	case v[0] == "C":
		return SwapResult{}, fmt.Errorf("%s: %w: the entries in offsets [%d, %d) changed since they were read", op, ErrConflict, first, end)
	case v[0] == "D":
		return SwapResult{AlreadyDone: true}, r.written(ctx)
	case v[0] == "K" && len(v) == 3:
		removed, err1 := replyInt(v[1])
		added, err2 := replyInt(v[2])
		if err1 != nil || err2 != nil {
			return SwapResult{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
		}
		return SwapResult{BytesRemoved: removed, BytesAdded: added}, r.written(ctx)
	}
	return SwapResult{}, fmt.Errorf("%s: %w: reply %v", op, ErrUnavailable, v)
}
