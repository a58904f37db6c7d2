package agent

// The log cleaner: cleanup.policy compact, as Kafka's log cleaner does it
// (Kafka docs "Log Compaction", KIP-58 min.compaction.lag.ms, KIP-354). A
// compacted topic keeps at least the latest record of every key; a
// tombstone (a key with a null value) says the key is gone and is itself
// removed delete.retention.ms later.
//
// The cleaner works on the archive only (compactor.go): the hot segments
// are Kafka's active segment, never cleaned. Every --compaction-interval,
// after the compaction pass, each agent walks the compacted topics'
// partitions (--compaction-concurrency at a time), and cleans one
//   - whose cleanable archive is dirty enough: the cleanable archive is the
//     run of whole archive files from the log start whose row groups' newest
//     records are all older than min.compaction.lag.ms; its dirty part is
//     what lies at or past the cleaner checkpoint (the end of the last
//     pass); it is cleaned once the dirty part's bytes reach
//     min.cleanable.dirty.ratio of the whole (Kafka's cleanable ratio), or
//   - that holds a tombstone whose delete.retention.ms has passed.
//
// One pass, under the partition's compaction lease (the compactor's: one
// job per partition at a time, and every swap checks its token):
//  1. build the map key -> latest offset over the dirty part: a Go map of
//     the key's SHA-256 truncated to 16 bytes (Kafka's dedupe buffer, which
//     keeps an MD5) to the offset, at most --cleaner-dedupe-buffer-bytes /
//     cleanerKeyBytes keys; when it fills, the pass ends at the last whole
//     file whose keys it holds (at least one file must fit);
//  2. rewrite the cleanable files, a group of files at a time, with the
//     archive writer (files keyed with the pass's lease token as their
//     generation), keeping a record unless
//     - a later record of its key is in the map (superseded), or
//     - it has no key (Kafka's cleaner drops those too), or
//     - it is a tombstone first found cleanable more than
//     delete.retention.ms ago;
//     offsets stay as they were: the files have gaps, as Kafka's cleaned
//     segments do, and so do the index entries (one per row group);
//  3. swap each group's files in (archive_swap.lua, fenced by the lease
//     token; the replaced files go to the released set and the janitor
//     deletes them after --unreferenced-grace); the last swap also writes
//     the new checkpoint and tombstone horizons.
//
// Tombstone time: the pass that first finds a tombstone cleanable (it lies
// in the dirty part) records, with its swap, a horizon (the checkpoint it
// reached, its own clock): coordinator.CleanerState. A tombstone is kept
// while that time plus delete.retention.ms is ahead of the pass's clock.
// The producer's timestamp is never used: clients set it. A horizon is
// merged into a later one when there are too many, which only keeps
// tombstones longer.
//
// The record at the end of the cleaned range is kept unless a later record
// of its key exists: when nothing follows it below the high watermark, a
// consumer at that offset would otherwise find nothing to move past.
//
// Aborted transactions and control batches never reach the archive (the
// compactor leaves them out), so the cleaner never sees them.
//
// A kill at any step leaves the log readable: before a swap, the index is
// unchanged and the new files are orphans (deleted after --orphan-grace);
// a pass killed between the swaps of its groups has cleaned those groups
// correctly (a record only goes when a later record of its key is in the
// log), and the next pass does the rest from the old checkpoint.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// cleanerKeyBytes is about what one key takes in the cleaner's map (its
// 16-byte hash, the 8-byte offset, and the Go map's overhead).
const cleanerKeyBytes = 48

// cleanGroupEntries bounds the archive entries one swap of a pass replaces.
const cleanGroupEntries = 1000

// CleaningReport says what one cleaning pass did.
type CleaningReport struct {
	Partitions     int   // partitions cleaned
	Skipped        int   // partitions another agent held the lease of
	Files          int   // archive files written and swapped in
	RecordsRead    int64 // archived records read for the rewrite
	RecordsRemoved int64 // of which left out
	// BytesRemoved is the archive bytes replaced less the bytes written (a
	// rewrite that removed little may come out larger: negative).
	BytesRemoved int64
}

func (r *CleaningReport) add(o CleaningReport) {
	r.Partitions += o.Partitions
	r.Skipped += o.Skipped
	r.Files += o.Files
	r.RecordsRead += o.RecordsRead
	r.RecordsRemoved += o.RecordsRemoved
	r.BytesRemoved += o.BytesRemoved
}

// cleaningIndex is what the cleaner needs of the index.
type cleaningIndex interface {
	compactionIndex
	coordinator.Cleaning
}

// RunCleaning runs one cleaning pass as if the time were now: every live
// topic with compact in its cleanup.policy, --compaction-concurrency
// partitions at a time. Errors of single partitions are joined; the others
// go on.
func (a *Agent) RunCleaning(ctx context.Context, now time.Time) (CleaningReport, error) {
	idx, ok := a.index.(cleaningIndex)
	if !ok {
		return CleaningReport{}, fmt.Errorf("cleaning: the index %T does not support it", a.index)
	}
	topics, err := idx.ListTopics(ctx)
	if err != nil {
		return CleaningReport{}, fmt.Errorf("cleaning: %w", err)
	}
	var (
		mu  sync.Mutex
		rep CleaningReport
	)
	err = a.forEachPartition(ctx, topics, func(t coordinator.Topic) bool { return t.Config.Compacted() }, "cleaning",
		func(t coordinator.Topic, p int32) error {
			r, err := a.cleanPartition(ctx, idx, t, p, now)
			mu.Lock()
			rep.add(r)
			mu.Unlock()
			return err
		})
	return rep, err
}

// cleanPlan is what a pass over one partition would clean.
type cleanPlan struct {
	entries []coordinator.IndexEntry // the cleanable archive entries, whole files, in offset order
	files   []int                    // the index in entries where each file starts
	state   coordinator.CleanerState
	dirty   int // the index of the first entry at or past the checkpoint
}

// end is the offset after the plan's last entry.
func (p *cleanPlan) end() int64 {
	e := p.entries[len(p.entries)-1]
	return e.BaseOffset + e.Records
}

// fileEnd is the index in entries after file i's last entry.
func (p *cleanPlan) fileEnd(i int) int {
	if i+1 < len(p.files) {
		return p.files[i+1]
	}
	return len(p.entries)
}

// planCleaning reads the partition's archive entries and cleaner state and
// returns what a pass should clean, or nil when it should not run.
func (a *Agent) planCleaning(ctx context.Context, idx cleaningIndex, t coordinator.Topic, p int32, now time.Time) (*cleanPlan, error) {
	cs, err := idx.CleanerState(ctx, t.ID, p)
	if err != nil {
		return nil, err
	}
	st, err := idx.PartitionState(ctx, t.ID, p)
	if err != nil {
		return nil, err
	}
	// The archived entries: the run of archive entries from the log start.
	var archived []coordinator.IndexEntry
	next := st.LogStartOffset
scan:
	for next < st.HighWatermark {
		entries, lst, err := idx.Lookup(ctx, t.ID, p, next, 1<<50)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && next < lst.LogStartOffset {
			archived, next = nil, lst.LogStartOffset // retention moved the log start
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if !e.Archived() {
				break scan
			}
			if len(archived) == 0 || e.BaseOffset > archived[len(archived)-1].BaseOffset {
				archived = append(archived, e)
			}
			next = e.BaseOffset + e.Records
		}
	}
	// Whole files whose row groups are all past min.compaction.lag.ms.
	lagCutoff := now.UnixMilli() - t.Config.MinCompactionLagMs
	plan := &cleanPlan{state: cs}
	for i := 0; i < len(archived); {
		j := i + 1
		for j < len(archived) && archived[j].SegmentKey == archived[i].SegmentKey {
			j++
		}
		if slices.ContainsFunc(archived[i:j], func(e coordinator.IndexEntry) bool { return e.MaxTimestamp > lagCutoff }) {
			break
		}
		plan.files = append(plan.files, len(plan.entries))
		plan.entries = append(plan.entries, archived[i:j]...)
		i = j
	}
	if len(plan.entries) == 0 {
		return nil, nil
	}
	// The dirty ratio, over the row groups' bytes.
	var total, dirty int64
	plan.dirty = len(plan.entries)
	for i, e := range plan.entries {
		total += e.ByteLength
		if e.BaseOffset+e.Records > cs.Checkpoint {
			dirty += e.ByteLength
			plan.dirty = min(plan.dirty, i)
		}
	}
	if dirty > 0 && float64(dirty) >= t.Config.MinCleanableDirtyRatio*float64(total) {
		return plan, nil
	}
	// Or a tombstone's delete.retention.ms has passed.
	for _, h := range cs.Horizons {
		if h.End > plan.entries[0].BaseOffset && tombstoneDue(h.FirstCleanedMs, t.Config.DeleteRetentionMs, now.UnixMilli()) {
			return plan, nil
		}
	}
	return nil, nil
}

// keyHash is the cleaner map's key: a key's SHA-256, truncated to 16 bytes.
type keyHash [16]byte

func hashKey(k []byte) keyHash {
	s := sha256.Sum256(k)
	return keyHash(s[:16])
}

// cleanPartition runs one pass on one partition (see the file's comment).
func (a *Agent) cleanPartition(ctx context.Context, idx cleaningIndex, t coordinator.Topic, p int32, now time.Time) (CleaningReport, error) {
	var rep CleaningReport
	// A cheap look first, without the lease: most passes find nothing.
	plan, err := a.planCleaning(ctx, idx, t, p, now)
	if err != nil || plan == nil {
		return rep, ignoreGone(err)
	}
	lease, err := idx.AcquireCompactionLease(ctx, t.ID, p, a.cfg.AgentID, compactionLeaseTTL)
	if errors.Is(err, coordinator.ErrConflict) {
		rep.Skipped++
		return rep, nil
	}
	if err != nil {
		return rep, ignoreGone(err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = idx.ReleaseCompactionLease(rctx, lease)
	}()
	// Again under the lease: another agent may have cleaned meanwhile.
	if plan, err = a.planCleaning(ctx, idx, t, p, now); err != nil || plan == nil {
		return rep, ignoreGone(err)
	}

	// 1. The map over the dirty part, ending at the last whole file it holds.
	maxKeys := int(a.cfg.CleanerDedupeBufferBytes / cleanerKeyBytes)
	latest := make(map[keyHash]int64)
	files := len(plan.files)
	for f := range plan.files {
		if plan.fileEnd(f) <= plan.dirty {
			continue
		}
		full := false
		for _, e := range plan.entries[max(plan.files[f], plan.dirty):plan.fileEnd(f)] {
			recs, err := a.archiveRecords(ctx, e)
			if err != nil {
				return rep, err
			}
			for i := range recs {
				r := &recs[i]
				if r.Offset < plan.state.Checkpoint || r.Key == nil {
					continue
				}
				h := hashKey(r.Key)
				if _, ok := latest[h]; !ok && len(latest) >= maxKeys {
					full = true
					break
				}
				latest[h] = r.Offset
			}
			if full {
				break
			}
		}
		if full {
			if plan.files[f] <= plan.dirty {
				return rep, fmt.Errorf("the keys of one archive file (%s) do not fit in --cleaner-dedupe-buffer-bytes %d (%d keys); raise it",
					plan.entries[plan.files[f]].SegmentKey, a.cfg.CleanerDedupeBufferBytes, maxKeys)
			}
			// The later offsets of this file's keys stay in the map: those
			// records exist, so what they supersede may go.
			files = f
			break
		}
	}
	plan.entries = plan.entries[:plan.fileEnd(files-1)]
	plan.files = plan.files[:files]
	end := plan.end()
	lastOffset := plan.entries[len(plan.entries)-1].LastOffset()

	// 2 and 3. Rewrite and swap, a group of files at a time.
	nowMs := now.UnixMilli()
	usedHorizon := make([]bool, len(plan.state.Horizons))
	usedNow := false
	keep := func(r *objectlog.ArchiveRecord) bool {
		if r.Key == nil {
			return r.Offset == lastOffset
		}
		if off, ok := latest[hashKey(r.Key)]; ok && off > r.Offset {
			return false
		}
		if r.Value != nil {
			return true
		}
		// A tombstone: kept delete.retention.ms from its first cleaning.
		first, i := nowMs, -1
		if ms, ok := plan.state.FirstCleaned(r.Offset); ok {
			first = ms
			i, _ = slices.BinarySearchFunc(plan.state.Horizons, r.Offset, func(h coordinator.TombstoneHorizon, o int64) int {
				if h.End <= o {
					return -1
				}
				return 1
			})
		}
		if tombstoneDue(first, t.Config.DeleteRetentionMs, nowMs) {
			// Due. The range's last record stays (see the file's comment),
			// without a horizon: a later pass finds it anew, so it does
			// not call for a pass every interval.
			return r.Offset == lastOffset
		}
		if i >= 0 {
			usedHorizon[i] = true
		} else {
			usedNow = true
		}
		return true
	}
	var pending []coordinator.IndexEntry // replaced entries not swapped yet
	for g := 0; g < len(plan.files); {
		// A group: whole files, up to cleanGroupEntries entries (at least one file).
		h := g + 1
		for h < len(plan.files) && plan.fileEnd(h)-plan.files[g] <= cleanGroupEntries {
			h++
		}
		group := plan.entries[plan.files[g]:plan.fileEnd(h-1)]
		last := h == len(plan.files)
		g = h
		pending = append(pending, group...)
		repl, written, err := a.rewriteClean(ctx, idx, &lease, t, p, group, keep, &rep)
		if err != nil {
			return rep, err
		}
		if len(repl) == 0 {
			if last {
				return rep, fmt.Errorf("the cleaned range up to offset %d came out empty; its last record should stay", lastOffset)
			}
			continue // swapped with the next group
		}
		var cs *coordinator.CleanerState
		if last {
			cs = &coordinator.CleanerState{Checkpoint: max(end, plan.state.Checkpoint)}
			for i, h := range plan.state.Horizons {
				if usedHorizon[i] {
					cs.Horizons = append(cs.Horizons, h)
				}
			}
			if usedNow {
				cs.Horizons = append(cs.Horizons, coordinator.TombstoneHorizon{End: end, FirstCleanedMs: nowMs})
			}
			// Too many: the oldest go, their tombstones take the next one's time.
			if n := len(cs.Horizons) - coordinator.MaxTombstoneHorizons; n > 0 {
				cs.Horizons = cs.Horizons[n:]
			}
		}
		if err := a.swapClean(ctx, idx, &lease, pending, repl, cs, written, &rep); err != nil {
			return rep, err
		}
		pending = nil
	}
	rep.Partitions = 1
	metricCleanerPasses.Inc()
	metricCleanerRecordsRemoved.Add(float64(rep.RecordsRemoved))
	// A rewrite that removed little can come out a little larger.
	metricCleanerBytesRemoved.Add(float64(max(rep.BytesRemoved, 0)))
	a.log.Debug("cleaning: partition cleaned", "topic", t.Name, "partition", p, "checkpoint", end,
		"records_read", rep.RecordsRead, "records_removed", rep.RecordsRemoved, "files", rep.Files)
	return rep, nil
}

// rewriteClean writes the records of entries that keep keeps into new
// archive files (uploaded, their keys in *uploaded for cleanup) and returns
// the new files' entries.
func (a *Agent) rewriteClean(ctx context.Context, idx cleaningIndex, lease *coordinator.CompactionLease, t coordinator.Topic, p int32,
	entries []coordinator.IndexEntry, keep func(*objectlog.ArchiveRecord) bool, rep *CleaningReport) ([]coordinator.IndexEntry, []string, error) {
	var (
		files    []objectlog.ArchiveFileInfo
		uploaded []string
		firstPut time.Time
	)
	w, err := objectlog.NewArchiveWriter(objectlog.ArchivePartition{Topic: t.Name, TopicID: t.ID, Partition: p},
		objectlog.ArchiveOptions{FileBytes: a.cfg.ArchiveFileBytes, RowGroupBytes: archiveRowGroupBytes(a.cfg.ArchiveFileBytes), Generation: lease.Token},
		func(f objectlog.ArchiveFile) error {
			l, err := idx.RenewCompactionLease(ctx, *lease, compactionLeaseTTL)
			if err != nil {
				return err
			}
			*lease = l
			if firstPut.IsZero() {
				firstPut = time.Now()
			}
			if err := a.bucket.PutIfAbsent(ctx, f.Info.Key, bytes.NewReader(f.Data), int64(len(f.Data))); err != nil {
				return fmt.Errorf("upload %s: %w", f.Info.Key, err)
			}
			uploaded = append(uploaded, f.Info.Key)
			files = append(files, f.Info)
			metricArchiveFiles.Inc()
			metricArchiveBytes.Add(float64(len(f.Data)))
			return nil
		})
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) ([]coordinator.IndexEntry, []string, error) {
		a.deleteUploaded(ctx, uploaded)
		return nil, nil, err
	}
	read, kept, err := a.appendArchived(ctx, w, entries, keep)
	rep.RecordsRead += read
	rep.RecordsRemoved += read - kept
	if err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	if len(files) > 0 && time.Since(firstPut) > a.cfg.OrphanGrace/2 {
		return fail(fmt.Errorf("cleaning took %v, past half of --orphan-grace; files deleted, retried next pass", time.Since(firstPut)))
	}
	var repl []coordinator.IndexEntry
	for _, f := range files {
		rep.Files++
		for _, g := range f.RowGroups {
			repl = append(repl, coordinator.IndexEntry{BaseOffset: g.FirstOffset, Records: g.LastOffset - g.FirstOffset + 1,
				SegmentKey: f.Key, ByteOffset: g.ByteOffset, ByteLength: g.ByteLength, MaxTimestamp: g.MaxTimestamp})
		}
	}
	return repl, uploaded, nil
}

// swapClean swaps a group's rewritten files in; a definite refusal deletes
// them.
func (a *Agent) swapClean(ctx context.Context, idx cleaningIndex, lease *coordinator.CompactionLease, old, repl []coordinator.IndexEntry,
	cs *coordinator.CleanerState, uploaded []string, rep *CleaningReport) error {
	l, err := idx.RenewCompactionLease(ctx, *lease, compactionLeaseTTL)
	if err != nil {
		a.deleteUploaded(ctx, uploaded)
		return err
	}
	*lease = l
	res, err := idx.SwapCleaned(ctx, *lease, old, repl, cs)
	switch {
	case errors.Is(err, coordinator.ErrFenced), errors.Is(err, coordinator.ErrConflict), errors.Is(err, coordinator.ErrInvalid):
		a.deleteUploaded(ctx, uploaded)
		return err
	case err != nil:
		// Maybe swapped: the janitor decides once the files are orphans.
		return err
	}
	if !res.AlreadyDone {
		rep.BytesRemoved += res.BytesRemoved - res.BytesAdded
	}
	return nil
}

// deleteUploaded deletes archive files no index entry can point at.
func (a *Agent) deleteUploaded(ctx context.Context, keys []string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := a.bucket.Delete(dctx, k); err != nil {
			a.log.Warn("cleaning: could not delete an unindexed archive file; the janitor will", "key", k, "err", err)
		}
	}
}

// tombstoneDue reports whether a tombstone first found cleanable at
// firstMs is past delete.retention.ms at nowMs (both milliseconds since the
// epoch). It subtracts rather than adds, so a retention near Long.MAX
// (Kafka's "keep tombstones for ever") never overflows into the past.
func tombstoneDue(firstMs, retentionMs, nowMs int64) bool {
	return nowMs-firstMs >= retentionMs
}
