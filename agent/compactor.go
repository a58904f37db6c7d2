package agent

// The compactor (DESIGN.md "Compaction, retention, archive"): every agent,
// every --compaction-interval, walks the live topics' partitions and
// compacts those whose oldest hot records are older than the topic's
// archive.after.ms, --compaction-concurrency at a time. Any agent may
// compact any partition; the partition's compaction lease in the index lets
// one at a time do it, and the index swap checks the lease's token, so a
// compactor that lost its lease changes nothing.
//
// One job on one partition:
//  1. take the lease (skip the partition when another agent holds it);
//  2. look up the hot entries after the archived ones, below the high
//     watermark (Lookup never returns more) and the last stable offset
//     (open transactions may still abort), while their newest record is
//     older than the archive age, at most maxCompactEntries entries and
//     4 x --archive-file-bytes of chunks;
//  3. read their chunks through the block cache, leave out control batches
//     and aborted transactions (the index's aborted list),
//     and write the records with objectlog.ArchiveWriter: sorted by offset,
//     zstd, statistics on offset and timestamp, row groups of a few MiB,
//     files up to --archive-file-bytes, each uploaded create-only under
//     archive/topic=<name>/partition=<p>/...;
//  4. renew the lease and swap in the index (archive_swap.lua): the entries
//     read in step 2, if unchanged, give way to one entry per row group,
//     and their segments go to the partition's released set;
//     the partition's trailing small archive files are rewritten with the
//     hot records in step 3 and swapped out in the same swap
//     (archive_merge.go);
//  5. release the lease.
//
// After each pass, the log cleaner (cleaner.go) cleans the archive of
// topics whose cleanup.policy has compact.
//
// A kill at any step leaves the log readable and whole: before step 4 the
// index is unchanged and the uploaded files are orphans, which the janitor
// deletes after --orphan-grace; after it, the segments are released and the
// janitor deletes them after --unreferenced-grace. A swap the index refused
// (lease lost, entries changed) deletes the files this job uploaded: no
// entry can point at them, since only this job's swap would have.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/failpoint"
	"github.com/stratabroker/strata/objectlog"
)

// compactionLeaseTTL is how long a compaction job holds its partition
// between renewals (before each upload and before the swap). It is below
// --orphan-grace's minimum, so the janitor never takes a file of a job
// whose lease is still live for an orphan.
const compactionLeaseTTL = time.Minute

// maxCompactEntries bounds the hot entries one job replaces, so that its
// swap script (which blocks the index while it runs) stays short.
const maxCompactEntries = 2000

// CompactionReport says what one compaction pass did.
type CompactionReport struct {
	Partitions   int   // partitions compacted
	Skipped      int   // partitions another agent held the lease of
	Files        int   // archive files written and swapped in
	FilesMerged  int   // small archive files rewritten into them (archive_merge.go)
	Records      int64 // records archived
	BytesRemoved int64 // hot chunk bytes replaced
	BytesWritten int64 // archive file bytes written
}

// compactionIndex is what the compactor needs of the index.
type compactionIndex interface {
	coordinator.Topics
	coordinator.Log
	coordinator.Compaction
}

// runCompactor runs a pass every interval until ctx ends.
func (a *Agent) runCompactor(ctx context.Context) {
	defer close(a.compactorDone)
	runEvery(ctx, a.cfg.CompactionInterval, func() {
		rep, err := a.RunCompaction(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
		case err != nil:
			metricCompactionErrors.Inc()
			a.log.Warn("compaction pass failed", "err", err)
		case rep.Files > 0:
			a.log.Info("compaction pass", "partitions", rep.Partitions, "files", rep.Files, "files_merged", rep.FilesMerged, "records", rep.Records,
				"hot_bytes", rep.BytesRemoved, "archive_bytes", rep.BytesWritten)
		}
		// The log cleaner (cleaner.go) works on what is archived.
		crep, err := a.RunCleaning(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
		case err != nil:
			metricCleanerErrors.Inc()
			a.log.Warn("cleaning pass failed", "err", err)
		case crep.Partitions > 0:
			a.log.Info("cleaning pass", "partitions", crep.Partitions, "files", crep.Files, "records_read", crep.RecordsRead,
				"records_removed", crep.RecordsRemoved, "bytes_removed", crep.BytesRemoved)
		}
	})
}

// RunCompaction runs one compaction pass as if the time were now: every
// live topic's partitions, --compaction-concurrency at a time. Errors of
// single partitions are joined; the others go on.
func (a *Agent) RunCompaction(ctx context.Context, now time.Time) (CompactionReport, error) {
	idx, ok := a.index.(compactionIndex)
	if !ok {
		return CompactionReport{}, fmt.Errorf("compaction: the index %T does not support it", a.index)
	}
	topics, err := idx.ListTopics(ctx)
	if err != nil {
		return CompactionReport{}, fmt.Errorf("compaction: %w", err)
	}
	var (
		mu  sync.Mutex
		rep CompactionReport
	)
	err = a.forEachPartition(ctx, topics, func(t coordinator.Topic) bool { return t.Config.ArchiveAfterMs >= 0 }, "compaction",
		func(t coordinator.Topic, p int32) error {
			r, err := a.compactPartition(ctx, idx, t, p, now)
			if err == nil {
				mu.Lock()
				rep.add(r)
				mu.Unlock()
			}
			return err
		})
	return rep, err
}

func (r *CompactionReport) add(o CompactionReport) {
	r.Partitions += o.Partitions
	r.Skipped += o.Skipped
	r.Files += o.Files
	r.FilesMerged += o.FilesMerged
	r.Records += o.Records
	r.BytesRemoved += o.BytesRemoved
	r.BytesWritten += o.BytesWritten
}

// forEachPartition runs job on every partition of the topics keep selects,
// --compaction-concurrency partitions at a time (the compactor's and the
// cleaner's passes); jobs run concurrently, so what they share needs a
// lock. Errors of single partitions are joined, each named by what, and
// the others go on. A cancelled ctx ends it with ctx.Err() once the jobs
// started have finished.
func (a *Agent) forEachPartition(ctx context.Context, topics []coordinator.Topic, keep func(coordinator.Topic) bool, what string,
	job func(coordinator.Topic, int32) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, a.cfg.CompactionConcurrency)
	)
	for _, t := range topics {
		if !keep(t) {
			continue
		}
		for p := range t.Config.Partitions {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := job(t, p); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s of topic %q partition %d: %w", what, t.Name, p, err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// compactPartition runs one job on one partition (see the file's comment).
func (a *Agent) compactPartition(ctx context.Context, idx compactionIndex, t coordinator.Topic, p int32, now time.Time) (CompactionReport, error) {
	var rep CompactionReport
	cutoff := now.UnixMilli() - t.Config.ArchiveAfterMs
	// A cheap look first, without the lease: most passes find nothing.
	hot, _, err := a.hotEntries(ctx, idx, t, p, cutoff)
	if err != nil || len(hot) == 0 {
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
	// Again under the lease: another agent may have compacted meanwhile.
	if hot, _, err = a.hotEntries(ctx, idx, t, p, cutoff); err != nil || len(hot) == 0 {
		return rep, ignoreGone(err)
	}
	// The partition's trailing small archive files, rewritten with the hot
	// records (archive_merge.go); their files' keys take the lease token as
	// generation, since a merged file may start where a replaced one does.
	merge, mergeFiles, mergeBytes, err := a.smallArchiveTail(ctx, idx, t, p, hot)
	if err != nil {
		return rep, ignoreGone(err)
	}
	var generation int64
	if len(merge) > 0 {
		generation = lease.Token
	}

	var (
		files    []objectlog.ArchiveFileInfo
		uploaded []string
		firstPut time.Time
	)
	cleanup := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, k := range uploaded {
			if err := a.bucket.Delete(dctx, k); err != nil {
				a.log.Warn("compaction: could not delete an unindexed archive file; the janitor will", "key", k, "err", err)
			}
		}
	}
	w, err := objectlog.NewArchiveWriter(objectlog.ArchivePartition{Topic: t.Name, TopicID: t.ID, Partition: p},
		objectlog.ArchiveOptions{FileBytes: a.cfg.ArchiveFileBytes, RowGroupBytes: archiveRowGroupBytes(a.cfg.ArchiveFileBytes), Generation: generation},
		func(f objectlog.ArchiveFile) error {
			if lease, err = idx.RenewCompactionLease(ctx, lease, compactionLeaseTTL); err != nil {
				return err
			}
			if firstPut.IsZero() {
				firstPut = time.Now()
			}
			if err := a.bucket.PutIfAbsent(ctx, f.Info.Key, bytes.NewReader(f.Data), int64(len(f.Data))); err != nil {
				// ErrAlreadyExists: an orphan of a killed job, or a racing
				// compactor's file; the janitor deletes orphans, the race
				// has one winner. Either way this job stops.
				return fmt.Errorf("upload %s: %w", f.Info.Key, err)
			}
			uploaded = append(uploaded, f.Info.Key)
			files = append(files, f.Info)
			a.log.Debug("compaction: archive file uploaded", "topic", t.Name, "partition", p, "key", f.Info.Key,
				"records", f.Info.Records, "bytes", len(f.Data))
			metricArchiveFiles.Inc()
			metricArchiveBytes.Add(float64(len(f.Data)))
			return nil
		})
	if err != nil {
		return rep, err
	}
	aborted, err := a.abortedIn(ctx, t, p, hot)
	if err != nil {
		cleanup()
		return rep, err
	}
	if _, _, err := a.appendArchived(ctx, w, merge, nil); err != nil {
		cleanup()
		return rep, err
	}
	var records int64
	var held coordinator.IndexEntry // the trailing entry kept hot, if any
	used := hot[:0:0]
	for i, e := range hot {
		batches, err := a.loadEntry(ctx, e)
		if err != nil {
			cleanup()
			return rep, err
		}
		// Only committed data: markers and aborted transactions are left out.
		skip := func(b *objectlog.Batch) bool {
			return b.Attrs.Control() || (b.Attrs.Transactional() && aborted(b.ProducerID, b.BaseOffset))
		}
		// The last entry stays hot unless its last batch is archived: an
		// archived range must end where its last record does, or the
		// offsets after it could be a hole that no entry covers before the
		// high watermark, where a reader would find nothing to move past.
		if i == len(hot)-1 && skip(&batches[len(batches)-1]) {
			held = e
			break
		}
		var recs []objectlog.DecodedRecord
		for j := range batches {
			b := &batches[j]
			if skip(b) {
				continue
			}
			if recs, err = b.AppendRecords(recs[:0], 0); err != nil {
				cleanup()
				return rep, fmt.Errorf("%s batch at offset %d: %w", e.SegmentKey, b.BaseOffset, err)
			}
			if err := w.Append(objectlog.ArchiveBatchOf(b), recs); err != nil {
				cleanup()
				return rep, err
			}
			records += int64(len(recs))
		}
		used = append(used, e)
	}
	if len(used) == 0 && len(merge) > 0 {
		// No hot record to archive after all: the small files stay as they are.
		cleanup()
		return rep, nil
	}
	if err := w.Close(); err != nil {
		cleanup()
		return rep, err
	}
	if len(files) == 0 {
		// Nothing committed to archive (markers, aborted data): the run
		// waits for later data, and its lag is not compaction's.
		a.holdBack(t, p, held, cutoff)
		return rep, nil
	}
	var repl []coordinator.IndexEntry
	var written int64
	for _, f := range files {
		written += f.Size
		for _, g := range f.RowGroups {
			repl = append(repl, coordinator.IndexEntry{BaseOffset: g.FirstOffset, Records: g.LastOffset - g.FirstOffset + 1,
				SegmentKey: f.Key, ByteOffset: g.ByteOffset, ByteLength: g.ByteLength, MaxTimestamp: g.MaxTimestamp})
		}
	}
	failpoint.Hit(failpoint.CompactionAfterUpload)
	// A job slower than half the orphan grace gives up: the janitor could
	// soon take its first file for an orphan.
	if time.Since(firstPut) > a.cfg.OrphanGrace/2 {
		cleanup()
		return rep, fmt.Errorf("compaction took %v, past half of --orphan-grace; files deleted, retried next pass", time.Since(firstPut))
	}
	if lease, err = idx.RenewCompactionLease(ctx, lease, compactionLeaseTTL); err != nil {
		cleanup()
		return rep, err
	}
	res, err := idx.SwapArchive(ctx, lease, append(merge[:len(merge):len(merge)], used...), repl)
	switch {
	case errors.Is(err, coordinator.ErrFenced), errors.Is(err, coordinator.ErrConflict), errors.Is(err, coordinator.ErrInvalid):
		// A definite refusal: nothing points at the files.
		cleanup()
		return rep, err
	case err != nil:
		// Maybe swapped, maybe not: the janitor decides, from the index,
		// once the files are past the orphan grace.
		return rep, err
	}
	failpoint.Hit(failpoint.CompactionAfterSwap)
	rep.Partitions, rep.Files, rep.Records = 1, len(files), records
	rep.FilesMerged = mergeFiles
	rep.BytesRemoved, rep.BytesWritten = res.BytesRemoved-mergeBytes, written
	if res.AlreadyDone {
		rep.BytesRemoved = 0
	}
	metricArchiveFilesMerged.Add(float64(mergeFiles))
	metricCompactedRecords.Add(float64(records))
	metricCompactedBytes.Add(float64(rep.BytesRemoved))
	a.log.Debug("compaction: index swapped", "topic", t.Name, "partition", p, "files", len(files), "records", records,
		"entries_replaced", len(used), "files_merged", mergeFiles, "entries_added", len(repl))
	// What is left hot past the archive age waits for the next pass.
	a.holdBack(t, p, held, cutoff)
	if rest, _, err := a.hotEntries(ctx, idx, t, p, cutoff); err == nil {
		a.setCompactionLag(t, p, rest, cutoff)
	}
	return rep, nil
}

// abortedIn returns whether a transactional batch of a producer at an
// offset belongs to an aborted transaction, from the index's aborted
// transactions overlapping the entries (Kafka: a transaction's batches run
// from its first offset to its abort marker).
func (a *Agent) abortedIn(ctx context.Context, t coordinator.Topic, p int32, hot []coordinator.IndexEntry) (func(pid, offset int64) bool, error) {
	txns, ok := a.index.(interface {
		AbortedTransactions(ctx context.Context, topicID uuid.UUID, partition int32, fromOffset, toOffset int64) ([]coordinator.AbortedTxn, error)
	})
	if !ok {
		return func(int64, int64) bool { return false }, nil
	}
	list, err := txns.AbortedTransactions(ctx, t.ID, p, hot[0].BaseOffset, hot[len(hot)-1].LastOffset())
	if err != nil {
		return nil, err
	}
	return func(pid, offset int64) bool {
		for _, x := range list {
			if x.ProducerID == pid && x.FirstOffset <= offset && offset <= x.LastOffset {
				return true
			}
		}
		return false
	}, nil
}

// archiveRowGroupBytes is the row group size for files of fileBytes: the
// archive's default (4 MiB, what one fetch reads), or a quarter of a small
// file, so that a file holds several groups.
func archiveRowGroupBytes(fileBytes int64) int64 {
	return min(4<<20, fileBytes/4)
}

// ignoreGone drops the error of a partition deleted meanwhile.
func ignoreGone(err error) error {
	if errors.Is(err, coordinator.ErrNotFound) {
		return nil
	}
	return err
}

// hotEntries returns the partition's first run of hot (segment) entries
// whose newest record is older than cutoff (ms), from the first entry after
// the archived ones, and sets the partition's compaction lag gauge.
func (a *Agent) hotEntries(ctx context.Context, idx compactionIndex, t coordinator.Topic, p int32, cutoff int64) ([]coordinator.IndexEntry, coordinator.PartitionState, error) {
	st, err := idx.PartitionState(ctx, t.ID, p)
	if err != nil {
		return nil, st, err
	}
	var out []coordinator.IndexEntry
	var bytes int64
	limit := 4 * a.cfg.ArchiveFileBytes
	// Only decided data: an open transaction's records may still abort.
	lso := st.LastStableOffset
	next := st.LogStartOffset
	for next < st.HighWatermark {
		entries, lst, err := idx.Lookup(ctx, t.ID, p, next, 1<<50)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && next < lst.LogStartOffset {
			next = lst.LogStartOffset // retention moved the log start
			continue
		}
		if err != nil {
			return nil, st, err
		}
		st = lst
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			switch {
			case e.Archived() && len(out) == 0:
				next = e.BaseOffset + e.Records
				continue
			case len(out) >= maxCompactEntries, bytes+e.ByteLength > limit && len(out) > 0:
				a.setCompactionLag(t, p, append(out, e), cutoff)
				return out, st, nil
			case e.Archived(), e.MaxTimestamp >= cutoff, e.BaseOffset+e.Records > lso:
				out = a.withoutHeldBack(t, p, out)
				a.setCompactionLag(t, p, append(out, e), cutoff)
				return out, st, nil
			}
			out = append(out, e)
			bytes += e.ByteLength
			next = e.BaseOffset + e.Records
		}
	}
	out = a.withoutHeldBack(t, p, out)
	a.setCompactionLag(t, p, out, cutoff)
	return out, st, nil
}

// holdBack remembers the entry a job kept hot at the end of its run (a
// transaction marker, or aborted data, ending the log: see compactPartition)
// and resets the lag gauge, which that entry no longer counts in; a zero
// entry forgets the partition's.
func (a *Agent) holdBack(t coordinator.Topic, p int32, e coordinator.IndexEntry, cutoff int64) {
	k := partitionKey{t.ID, p}
	if e.SegmentKey == "" {
		a.compactHeld.Delete(k)
		return
	}
	a.compactHeld.Store(k, e)
	a.setCompactionLag(t, p, nil, cutoff)
}

// withoutHeldBack returns nothing when the run of hot entries ends with the
// entry a job kept hot (holdBack): everything before it in the run was
// archived or had nothing committed to archive, so a job would do nothing
// until later data follows it; hot otherwise.
func (a *Agent) withoutHeldBack(t coordinator.Topic, p int32, hot []coordinator.IndexEntry) []coordinator.IndexEntry {
	if len(hot) == 0 {
		return hot
	}
	if e, ok := a.compactHeld.Load(partitionKey{t.ID, p}); ok && e.(coordinator.IndexEntry) == hot[len(hot)-1] {
		return nil
	}
	return hot
}

// setCompactionLag sets the gauge to how far past the archive age the
// oldest hot entry compaction could archive is (0 when none is; a trailing
// marker held back, withoutHeldBack, is not counted).
func (a *Agent) setCompactionLag(t coordinator.Topic, p int32, hot []coordinator.IndexEntry, cutoff int64) {
	lag := 0.0
	if len(hot) > 0 && !hot[0].Archived() && hot[0].MaxTimestamp < cutoff {
		lag = float64(cutoff-hot[0].MaxTimestamp) / 1000
	}
	metricCompactionLag.WithLabelValues(t.Name, strconv.Itoa(int(p))).Set(lag)
}
