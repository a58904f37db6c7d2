package agent

// Merging small archive files (the small-files problem of DuckDB, Spark and
// Trino, and of the index: one entry per row group). A partition with a
// trickle of records gets one small archive file per compaction pass, some
// 1,440 a day at the default --compaction-interval. So a compaction job
// (compactor.go) also takes the partition's trailing small archive files,
// the ones right before the hot entries it archives, and rewrites them
// together with the hot records into new files of up to
// --archive-file-bytes; its one swap (archive_swap.lua, fenced by the
// compaction lease) replaces the small files' entries and the hot entries
// by the new files' entries. The replaced files go to the partition's
// released set, and the janitor deletes them after --unreferenced-grace.
//
// Which files: walking back from the newest archive file, a file is taken
// while
//   - it is small: its row groups' bytes are below a quarter of
//     --archive-file-bytes (smallArchiveFileBytes), and
//   - its offsets span no more than everything newer already taken (the
//     hot entries' offsets plus the taken files'), and
//   - for a topic that deletes by retention.ms, its records are no more
//     than a tenth of retention.ms older than the newest hot record
//     (mergeAgeLimit): retention deletes whole files once their newest
//     record is past retention.ms, so a merged file holding records far
//     apart in time would keep its old records long past it. This bounds
//     retention's lateness by a tenth of retention.ms, as Kafka's
//     segment.ms bounds it for a log segment,
//
// at most maxMergeEntries entries in all. The second rule is a binary
// counter (Lucene's log merge policy has the same shape), measured in
// offsets rather than bytes because hot chunks and Parquet row groups
// compress differently: a record is rewritten only into a file whose
// offsets span at least twice those of the file it was in. So it is
// rewritten at most log2(S) times, S the offsets of the largest file below
// the threshold (20 times for a million offsets), the bytes the merges
// write are at most log2(S) times the archive's, and a partition keeps at
// most about log2(S) small files at its tail (docs/archive.md). Runs of
// small older files merge as the tail reaches them; a file at or above the
// threshold is never rewritten by the compactor.
//
// What a merge writes is what was there: the records keep their offsets,
// timestamps, keys (null or empty), values, headers and batch fields, so
// reads do not change; a cleaned compacted topic's gaps stay gaps. The new
// files' keys carry the job's lease token as their generation
// (-c<token>), as the log cleaner's do: a merged file may start at the
// offset the file it replaces starts at, and keys are create-only.

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// maxMergeEntries bounds the archive entries one compaction job merges, so
// that with the hot entries (maxCompactEntries) its swap stays short.
const maxMergeEntries = 1000

var metricArchiveFilesMerged = promauto.NewCounter(prometheus.CounterOpts{
	Name: "strata_compaction_files_merged_total",
	Help: "Small archive files the compactor rewrote into larger ones together with newly archived records (replaced; the janitor deletes them)."})

// smallArchiveFileBytes is the row group bytes below which an archive file
// of a partition's tail is merged: a quarter of --archive-file-bytes (32 MiB
// at the default 128 MiB).
func smallArchiveFileBytes(fileBytes int64) int64 { return fileBytes / 4 }

// smallArchiveTail returns the partition's trailing small archive files to
// merge into a job that archives hot (whole files, their entries in offset
// order, ending right before hot[0]), how many files, and their row group
// bytes. See the file's comment for the rule.
func (a *Agent) smallArchiveTail(ctx context.Context, idx compactionIndex, t coordinator.Topic, p int32, hot []coordinator.IndexEntry) ([]coordinator.IndexEntry, int, int64, error) {
	if len(hot) == 0 {
		return nil, 0, 0, nil
	}
	st, err := idx.PartitionState(ctx, t.ID, p)
	if err != nil {
		return nil, 0, 0, err
	}
	// The archived entries before the hot ones.
	var archived []coordinator.IndexEntry
	next := st.LogStartOffset
scan:
	for next < hot[0].BaseOffset {
		entries, lst, err := idx.Lookup(ctx, t.ID, p, next, 1<<50)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && next < lst.LogStartOffset {
			archived, next = nil, lst.LogStartOffset // retention moved the log start
			continue
		}
		if err != nil {
			return nil, 0, 0, err
		}
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if e.BaseOffset >= hot[0].BaseOffset {
				break scan
			}
			if !e.Archived() {
				return nil, 0, 0, nil // not a run of archive entries up to the hot ones
			}
			if len(archived) == 0 || e.BaseOffset > archived[len(archived)-1].BaseOffset {
				archived = append(archived, e)
			}
			next = e.BaseOffset + e.Records
		}
	}
	if len(archived) == 0 || archived[len(archived)-1].BaseOffset+archived[len(archived)-1].Records > hot[0].BaseOffset {
		return nil, 0, 0, nil
	}
	var newer int64 // offsets
	for _, e := range hot {
		newer += e.Records
	}
	small := smallArchiveFileBytes(a.cfg.ArchiveFileBytes)
	var newest int64 // ms: the newest hot record's timestamp
	for _, e := range hot {
		newest = max(newest, e.MaxTimestamp)
	}
	ageLimit, limited := mergeAgeLimit(t.Config)
	start, files := len(archived), 0
	var taken int64
	for start > 0 {
		// The file ending at start: its entries share its key.
		i := start - 1
		for i > 0 && archived[i-1].SegmentKey == archived[start-1].SegmentKey {
			i--
		}
		var size int64
		for _, e := range archived[i:start] {
			size += e.ByteLength
		}
		// The file's offsets run from the end of the one before (or the log
		// start): a marker or a cleaned gap before its first record counts,
		// as it does in the hot entries.
		from := st.LogStartOffset
		if i > 0 {
			from = archived[i-1].BaseOffset + archived[i-1].Records
		}
		span := archived[start-1].BaseOffset + archived[start-1].Records - from
		if size >= small || span > newer || len(archived)-i > maxMergeEntries {
			break
		}
		if limited && newest-archived[i].MaxTimestamp > ageLimit {
			break // its records would outlive retention.ms in a merged file
		}
		if archived[i].BaseOffset < st.LogStartOffset {
			break // a file DeleteRecords cut into: retention deletes it whole
		}
		newer += span
		taken += size
		start = i
		files++
	}
	if files == 0 {
		return nil, 0, 0, nil
	}
	return archived[start:], files, taken, nil
}

// mergeAgeLimit is how much older, in ms, than the newest hot record a
// file's records may be for the file to be merged: a tenth of retention.ms
// for a topic that deletes by retention.ms; unlimited (false) otherwise.
func mergeAgeLimit(c coordinator.TopicConfig) (int64, bool) {
	if !c.DeletesByRetention() || c.RetentionMs <= 0 {
		return 0, false
	}
	return c.RetentionMs / 10, true
}

// appendArchived appends the records of archive entries that keep keeps
// (nil: all of them) to w, keeping each batch's fields (the Kafka fetch
// path rebuilds batches from them), and returns how many records it read
// and how many it appended. The merge keeps all; the log cleaner drops the
// superseded ones.
func (a *Agent) appendArchived(ctx context.Context, w *objectlog.ArchiveWriter, entries []coordinator.IndexEntry,
	keep func(*objectlog.ArchiveRecord) bool) (read, kept int64, err error) {
	var (
		run   []objectlog.DecodedRecord
		batch objectlog.ArchiveBatch
	)
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		err := w.Append(batch, run)
		run = run[:0]
		return err
	}
	for _, e := range entries {
		recs, err := a.archiveRecords(ctx, e)
		if err != nil {
			return read, kept, err
		}
		for i := range recs {
			r := &recs[i]
			read++
			if keep != nil && !keep(r) {
				continue
			}
			if len(run) > 0 && r.Batch.BaseOffset != batch.BaseOffset {
				if err := flush(); err != nil {
					return read, kept, err
				}
			}
			batch = r.Batch
			run = append(run, r.DecodedRecord)
			kept++
		}
		// The writer copies what it is given: the run may not outlive recs.
		if err := flush(); err != nil {
			return read, kept, err
		}
	}
	return read, kept, nil
}
