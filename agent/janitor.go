package agent

// The janitor: retention, the drop of deleted topics, and garbage collection
// of segment objects. Every agent runs it every --janitor-interval; a lease
// in the index lets one at a time do a pass (two at once would be safe, only
// wasteful: every decision is re-read from the index just before it acts).
//
// A segment object is deleted only when
//   - it is older than --orphan-grace, so no commit of it can still be in
//     flight (a flush gives up after --commit-timeout plus its upload), and
//   - every partition named in its footer says, from its own index keys, that
//     it never appended the segment, that the partition was dropped with its
//     deleted topic, or that it released the segment (its last entry
//     pointing there was removed) more than --unreferenced-grace ago, so
//     that fetches that looked the entry up before it went have finished.
//
// Candidates come from the partitions' released sets (no listing needed)
// and, for orphans (uploads whose commit never happened), from a listing of
// the segments/ prefix. An object the janitor cannot parse is kept.
//
// Archive files (compactor.go) hold one partition each, named in their key;
// collectArchive asks that partition alone.
//
// A deleted topic's record is purged once its partitions are dropped and
// every segment they released is deleted; a segment it shares with a live
// topic waits for that topic's retention, and so does the purge.
//
// Cost per pass: one read of every partition's log end offset and high
// watermark per topic (a WAIT and advance only where they differ), one
// retention call and one released-set read per partition, one ranged GET of the footer per candidate segment not known
// to be in use, and a listing of segments/.

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/failpoint"
	"github.com/stratabroker/strata/objectlog"
)

// janitorLease is the index lease that lets one janitor run at a time.
const janitorLease = "janitor"

// segmentPrefix is where the batcher uploads segments ("segments/<ULID>.seg").
const segmentPrefix = "segments/"

// maxReleasedPerPartition bounds the released segments one pass takes from
// one partition; the next pass takes the rest.
const maxReleasedPerPartition = 1000

// JanitorReport says what one janitor pass did.
type JanitorReport struct {
	// Skipped: another agent held the janitor lease; nothing was done.
	Skipped bool
	// EntriesRemoved and EntryBytesRemoved count index entries retention removed.
	EntriesRemoved    int64
	EntryBytesRemoved int64
	// SegmentsDeleted counts segment objects deleted, orphans included;
	// TempFilesDeleted counts the filesystem store's temporary files of
	// puts that died midway (objectlog.StaleTempRemover), removed past
	// --orphan-grace; BytesReclaimed is the size of both.
	SegmentsDeleted  int64
	OrphansDeleted   int64
	TempFilesDeleted int64
	BytesReclaimed   int64
	// TopicsPurged counts deleted topics whose last index key went.
	TopicsPurged int64
}

type topicPartition struct {
	id uuid.UUID
	p  int32
}

// janitor is one pass's state.
type janitor struct {
	a     *Agent
	idx   janitorIndex
	now   time.Time
	lease coordinator.Lease
	rep   JanitorReport
	// candidates are released segments and the partitions that released them.
	candidates map[string][]topicPartition
}

// janitorIndex is what the janitor needs of the index.
type janitorIndex interface {
	coordinator.Topics
	coordinator.Lifecycle
	coordinator.Leases
}

// errLeaseLost stops a pass whose lease another janitor took.
var errLeaseLost = errors.New("janitor lease lost")

// runJanitor runs a pass every interval until ctx ends.
func (a *Agent) runJanitor(ctx context.Context) {
	defer close(a.janitorDone)
	runEvery(ctx, a.cfg.JanitorInterval, func() {
		rep, err := a.RunJanitor(ctx, time.Now())
		switch {
		case ctx.Err() != nil:
		case err != nil:
			metricJanitorErrors.Inc()
			a.log.Warn("janitor pass failed", "err", err)
		case !rep.Skipped && (rep.EntriesRemoved > 0 || rep.SegmentsDeleted > 0 || rep.TempFilesDeleted > 0 || rep.TopicsPurged > 0):
			a.log.Info("janitor pass", "entries_removed", rep.EntriesRemoved, "segments_deleted", rep.SegmentsDeleted,
				"orphans_deleted", rep.OrphansDeleted, "temp_files_deleted", rep.TempFilesDeleted, "bytes_reclaimed", rep.BytesReclaimed, "topics_purged", rep.TopicsPurged)
		}
	})
}

// runEvery calls pass every interval until ctx ends: the loop of the
// agent's background work (janitor, compactor, transaction reaper).
func runEvery(ctx context.Context, interval time.Duration, pass func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pass()
	}
}

// RunJanitor runs one janitor pass as if the time were now: retention of
// every topic, the drop of deleted topics, and the deletion of segment
// objects no index entry points at (see the file's comment for the rules).
// It returns Skipped when another agent holds the janitor lease.
func (a *Agent) RunJanitor(ctx context.Context, now time.Time) (JanitorReport, error) {
	idx, ok := a.index.(janitorIndex)
	if !ok {
		return JanitorReport{}, fmt.Errorf("janitor: the index %T does not support retention", a.index)
	}
	a.janitorMu.Lock()
	defer a.janitorMu.Unlock()
	ttl := max(2*a.cfg.JanitorInterval, time.Minute)
	lease, err := idx.AcquireLease(ctx, janitorLease, a.cfg.AgentID, ttl)
	if errors.Is(err, coordinator.ErrConflict) {
		return JanitorReport{Skipped: true}, nil
	}
	if err != nil {
		return JanitorReport{}, fmt.Errorf("janitor: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = idx.ReleaseLease(rctx, lease)
	}()
	j := &janitor{a: a, idx: idx, now: now, lease: lease, candidates: map[string][]topicPartition{}}
	err = j.run(ctx, ttl)
	metricJanitorPasses.Inc()
	return j.rep, err
}

func (j *janitor) run(ctx context.Context, ttl time.Duration) error {
	if err := j.retention(ctx, ttl); err != nil {
		return err
	}
	purge, err := j.dropDeletedTopics(ctx)
	if err != nil {
		return err
	}
	for key, tps := range j.candidates {
		if err := j.renew(ctx, ttl); err != nil {
			return err
		}
		if err := j.collect(ctx, key, tps); err != nil {
			return err
		}
	}
	if err := j.purgeTopics(ctx, purge); err != nil {
		return err
	}
	return j.orphans(ctx, ttl)
}

// renew keeps the lease while the pass works; a lost lease stops the pass.
func (j *janitor) renew(ctx context.Context, ttl time.Duration) error {
	l, err := j.idx.RenewLease(ctx, j.lease, ttl)
	if errors.Is(err, coordinator.ErrFenced) {
		return errLeaseLost
	}
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	j.lease = l
	return nil
}

// released adds the partition's released segments past the grace period
// to the candidates.
func (j *janitor) released(ctx context.Context, tp topicPartition) error {
	rs, err := j.idx.ReleasedSegments(ctx, tp.id, tp.p, j.now.Add(-j.a.cfg.UnreferencedGrace), maxReleasedPerPartition)
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	for _, r := range rs {
		j.candidates[r.Key] = append(j.candidates[r.Key], tp)
	}
	return nil
}

// retention applies retention.ms and retention.bytes to every live topic
// whose cleanup.policy has delete.
func (j *janitor) retention(ctx context.Context, ttl time.Duration) error {
	topics, err := j.idx.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	for _, t := range topics {
		if err := j.renew(ctx, ttl); err != nil {
			return err
		}
		// Commits whose agent died between commit and durability (see
		// batcher.finishLater): shown once durable. A failure only delays
		// that to the next pass.
		marks, err := j.idx.CatchUpHighWatermarks(ctx, t.ID, t.Config.Partitions)
		if err != nil {
			j.a.log.Warn("janitor: high watermarks behind, not durable yet", "topic", t.Name, "err", err)
		}
		for _, w := range marks {
			j.a.hub.publish(w)
		}
		for p := range t.Config.Partitions {
			tp := topicPartition{t.ID, p}
			// cleanup.policy compact alone never deletes by age or size
			// (Kafka's): only the log cleaner removes its records.
			if t.Config.DeletesByRetention() && (t.Config.RetentionMs >= 0 || t.Config.RetentionBytes >= 0) {
				res, err := j.idx.EnforceRetention(ctx, t.ID, p, j.now, t.Config.RetentionMs, t.Config.RetentionBytes)
				if errors.Is(err, coordinator.ErrNotFound) {
					break // deleted meanwhile: the next pass drops it
				}
				if err != nil {
					return fmt.Errorf("janitor: topic %s: %w", t.Name, err)
				}
				j.rep.EntriesRemoved += res.EntriesRemoved
				j.rep.EntryBytesRemoved += res.BytesRemoved
				metricRetentionEntries.Add(float64(res.EntriesRemoved))
			}
			if err := j.released(ctx, tp); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropDeletedTopics drops the partitions of topics deleted longer than the
// grace period ago and returns those topics, to purge once their segments
// are collected.
func (j *janitor) dropDeletedTopics(ctx context.Context) ([]coordinator.DeletedTopic, error) {
	dts, err := j.idx.DeletedTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("janitor: %w", err)
	}
	var out []coordinator.DeletedTopic
	for _, dt := range dts {
		if j.now.Sub(dt.DeletedAt) < j.a.cfg.UnreferencedGrace {
			continue
		}
		for p := range dt.Partitions {
			if err := j.idx.DropPartition(ctx, dt.ID, p); err != nil {
				return nil, fmt.Errorf("janitor: %w", err)
			}
			if err := j.released(ctx, topicPartition{dt.ID, p}); err != nil {
				return nil, err
			}
		}
		out = append(out, dt)
	}
	return out, nil
}

// purgeTopics removes the records of dropped topics with no keys left.
func (j *janitor) purgeTopics(ctx context.Context, dts []coordinator.DeletedTopic) error {
next:
	for _, dt := range dts {
		for p := range dt.Partitions {
			done, err := j.idx.PartitionCollected(ctx, dt.ID, p)
			if err != nil {
				return fmt.Errorf("janitor: %w", err)
			}
			if !done {
				continue next
			}
		}
		if err := j.idx.PurgeDeletedTopic(ctx, dt.ID); err != nil {
			return fmt.Errorf("janitor: %w", err)
		}
		j.rep.TopicsPurged++
	}
	return nil
}

// orphans lists the segment prefix and collects objects older than the
// orphan grace period that were not candidates already. Objects some
// partition was seen to use are remembered, so later passes do not read
// their footers again (the released sets report them once they go).
func (j *janitor) orphans(ctx context.Context, ttl time.Duration) error {
	live := j.a.janitorLive
	seen := make(map[string]bool, len(live))
	for _, prefix := range []string{segmentPrefix, coordinator.ArchiveKeyPrefix} {
		for info, err := range j.a.bucket.List(ctx, prefix) {
			if err != nil {
				return fmt.Errorf("janitor: list %s: %w", prefix, err)
			}
			seen[info.Key] = true
			if _, inUse := live[info.Key]; inUse || j.candidates[info.Key] != nil || j.now.Sub(info.LastModified) < j.a.cfg.OrphanGrace {
				continue
			}
			if err := j.renew(ctx, ttl); err != nil {
				return err
			}
			if err := j.collect(ctx, info.Key, nil); err != nil {
				return err
			}
		}
	}
	for k := range live {
		if !seen[k] {
			delete(live, k)
		}
	}
	// A put killed midway (the filesystem store) leaves a temporary file
	// that no listing shows: past the orphan grace, no put still owns it.
	if sweeper, ok := objectlog.AsStaleTempRemover(j.a.bucket); ok {
		for _, prefix := range []string{segmentPrefix, coordinator.ArchiveKeyPrefix} {
			n, size, err := sweeper.RemoveStaleTemps(ctx, prefix, j.now.Add(-j.a.cfg.OrphanGrace))
			if err != nil {
				return fmt.Errorf("janitor: %w", err)
			}
			j.rep.TempFilesDeleted += int64(n)
			j.rep.BytesReclaimed += size
		}
	}
	return nil
}

// segmentID is the id in a batcher's segment key, "" for another key.
func segmentID(key string) string {
	if !strings.HasPrefix(key, segmentPrefix) || !strings.HasSuffix(key, ".seg") {
		return ""
	}
	id := strings.TrimSuffix(path.Base(key), ".seg")
	if id == "" || strings.ContainsAny(id, "{}/") {
		return ""
	}
	return id
}

// collect deletes the segment if the rules allow it. tps are the partitions
// that listed it as released (nil for an orphan candidate): if the object is
// gone already (a pass died after deleting it), they forget it.
func (j *janitor) collect(ctx context.Context, key string, tps []topicPartition) error {
	if strings.HasPrefix(key, coordinator.ArchiveKeyPrefix) {
		return j.collectArchive(ctx, key, tps)
	}
	id := segmentID(key)
	if id == "" {
		j.a.log.Warn("janitor: not a segment key; left alone", "key", key)
		return nil
	}
	if tp, ok := j.a.janitorLive[key]; ok {
		// A partition used it last time: while it still does, the footer
		// need not be read again.
		use, _, err := j.idx.SegmentState(ctx, tp.id, tp.p, id, key)
		if err != nil {
			return fmt.Errorf("janitor: %w", err)
		}
		if use == coordinator.SegmentInUse {
			return nil
		}
		delete(j.a.janitorLive, key)
	}
	attrs, err := j.a.bucket.Attributes(ctx, key)
	if errors.Is(err, objectlog.ErrNotFound) {
		return j.forget(ctx, id, key, tps)
	}
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	if j.now.Sub(attrs.LastModified) < j.a.cfg.OrphanGrace {
		return nil // a commit of it may still be in flight
	}
	footer, err := objectlog.ReadFooter(ctx, j.a.bucket, key)
	if errors.Is(err, objectlog.ErrCorrupt) {
		j.a.log.Warn("janitor: segment footer unreadable; left alone", "key", key, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	chunks := make([]topicPartition, 0, len(footer.Chunks))
	orphan := true
	for _, c := range footer.Chunks {
		tp := topicPartition{c.TopicID, c.Partition}
		chunks = append(chunks, tp)
		use, at, err := j.idx.SegmentState(ctx, tp.id, tp.p, id, key)
		if err != nil {
			return fmt.Errorf("janitor: %w", err)
		}
		switch use {
		case coordinator.SegmentInUse:
			j.a.janitorLive[key] = tp
			return nil
		case coordinator.SegmentReleased:
			if j.now.Sub(at) < j.a.cfg.UnreferencedGrace {
				return nil // fetches may still read it
			}
			orphan = false
		case coordinator.SegmentPartitionGone:
			orphan = false
		}
	}
	if err := j.deleteObject(ctx, key, attrs.Size, orphan); err != nil {
		return err
	}
	failpoint.Hit(failpoint.JanitorAfterDelete)
	return j.forget(ctx, id, key, append(chunks, tps...))
}

// forget removes what the index keeps of a deleted segment.
func (j *janitor) forget(ctx context.Context, id, key string, tps []topicPartition) error {
	for _, tp := range tps {
		if err := j.idx.ForgetSegment(ctx, tp.id, tp.p, id, key); err != nil {
			return fmt.Errorf("janitor: %w", err)
		}
	}
	if err := j.idx.DeleteSegmentRefs(ctx, id); err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	return nil
}

// collectArchive deletes an archive file (compactor.go) if the rules allow
// it. A file holds one partition, named in its key, so only that
// partition's index is asked: the file goes once the partition released
// it (retention or DeleteRecords removed its entries) more than
// --unreferenced-grace ago, or the partition was dropped, or, older than
// --orphan-grace, no entry points at it (a compactor died or was fenced
// before its swap; its lease is far shorter than the grace).
func (j *janitor) collectArchive(ctx context.Context, key string, tps []topicPartition) error {
	parts, err := objectlog.ParseArchiveKey(key)
	if err != nil {
		j.a.log.Warn("janitor: not an archive key; left alone", "key", key, "err", err)
		return nil
	}
	tp := topicPartition{parts.TopicID, parts.Partition}
	attrs, err := j.a.bucket.Attributes(ctx, key)
	if errors.Is(err, objectlog.ErrNotFound) {
		return j.forgetArchive(ctx, key, append(tps, tp))
	}
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	if j.now.Sub(attrs.LastModified) < j.a.cfg.OrphanGrace {
		return nil // its compactor may still be about to swap it in
	}
	use, at, err := j.idx.SegmentState(ctx, tp.id, tp.p, "", key)
	if err != nil {
		return fmt.Errorf("janitor: %w", err)
	}
	orphan := false
	switch use {
	case coordinator.SegmentReleased:
		if j.now.Sub(at) < j.a.cfg.UnreferencedGrace {
			return nil // fetches may still read it
		}
	case coordinator.SegmentPartitionGone:
	default:
		// Never released: in use if the entry at its first offset is its.
		entries, st, err := j.a.index.Lookup(ctx, tp.id, tp.p, parts.FirstOffset, 1)
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) && parts.FirstOffset < st.LogStartOffset {
			// DeleteRecords may have cut into the file: its later row
			// groups' entries then start the log.
			entries, _, err = j.a.index.Lookup(ctx, tp.id, tp.p, st.LogStartOffset, 1)
		}
		switch {
		case errors.Is(err, coordinator.ErrNotFound):
			return nil // a deleted topic: dropping it releases the file
		case errors.Is(err, coordinator.ErrOffsetOutOfRange):
		case err != nil:
			return fmt.Errorf("janitor: %w", err)
		case len(entries) > 0 && entries[0].SegmentKey == key:
			return nil
		}
		orphan = true
	}
	if err := j.deleteObject(ctx, key, attrs.Size, orphan); err != nil {
		return err
	}
	failpoint.Hit(failpoint.JanitorAfterDelete)
	return j.forgetArchive(ctx, key, append(tps, tp))
}

// forgetArchive removes a deleted archive file from its partition's
// released set.
func (j *janitor) forgetArchive(ctx context.Context, key string, tps []topicPartition) error {
	for _, tp := range tps {
		if err := j.idx.ForgetSegment(ctx, tp.id, tp.p, "", key); err != nil {
			return fmt.Errorf("janitor: %w", err)
		}
	}
	return nil
}

// deleteObject deletes a segment or archive object and counts it (size
// bytes; orphan: an upload no index entry ever pointed at).
func (j *janitor) deleteObject(ctx context.Context, key string, size int64, orphan bool) error {
	if err := j.a.bucket.Delete(ctx, key); err != nil {
		return fmt.Errorf("janitor: delete %s: %w", key, err)
	}
	j.rep.SegmentsDeleted++
	j.rep.BytesReclaimed += size
	metricSegmentsDeleted.Inc()
	metricBytesReclaimed.Add(float64(size))
	if orphan {
		j.rep.OrphansDeleted++
		metricOrphansDeleted.Inc()
	}
	return nil
}
