package agent

// The write path (DESIGN.md, "Write path"): produces append record batches
// of many partitions to one open segment; the segment is sealed when
// FlushInterval has passed since its first batch or it reached
// SegmentMaxBytes; a sealed segment is uploaded create-only under a new ULID
// key, then committed to the index, which assigns the offsets; only then are
// the producers answered. Uploads of successive segments overlap; commits
// happen strictly in seal order (each flush waits for its predecessor's
// commit), so the records of one producer keep their order.
//
// The index's CommitSegment returns only once the commit is durable (WAIT,
// or the embedded index's snapshot) and its offsets visible; only then are
// producers answered and the local hub told (DESIGN.md write path step 6).
// A failure names the part that failed: the object store
// (objectlog.ErrUnavailable) or the index (coordinator.ErrUnavailable);
// both are Unavailable, retryable.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sync/semaphore"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// partitionBatch is the records of one produce request for one partition.
type partitionBatch struct {
	key     partitionKey
	spec    objectlog.BatchSpec
	records []objectlog.Record
	// controlType is the control record's type (coordinator.ControlAbort
	// or ControlCommit) when spec.Control: the index needs it (txn.go).
	controlType int16
}

// pendingBatch is a batch waiting for its segment's commit.
type pendingBatch struct {
	key     partitionKey
	ordinal int // its position among its chunk's batches
	done    chan struct{}
	base    int64 // first offset, once done without err
	// logStart is the partition's log start offset at the commit, once
	// done without err.
	logStart int64
	err      error
}

// openSegment is the segment being filled.
type openSegment struct {
	w       *objectlog.SegmentWriter
	pending []*pendingBatch
	batches map[partitionKey]int // batches so far per chunk
	bytes   int64                // buffer accounting to release after the commit
	// controls are the control record types of the segment's control
	// batches (transaction markers), by chunk and ordinal.
	controls map[batchRef]int16
}

// batchRef names a batch of a segment: its chunk and position in it.
type batchRef struct {
	key     partitionKey
	ordinal int
}

type batcher struct {
	a      *Agent
	buffer *semaphore.Weighted // record bytes buffered or in flight
	upload *semaphore.Weighted // uploads in flight

	// writers keeps the segment writers of finished flushes for reuse: a
	// writer's buffers grow to a segment's size once, instead of doubling
	// their way up (copying and zeroing) in every flush.
	writers chan *objectlog.SegmentWriter

	mu         sync.Mutex
	open       *openSegment
	timer      *time.Timer
	closed     bool
	lastCommit chan struct{} // closed when the last sealed segment's commit is over
	flushes    sync.WaitGroup
}

func newBatcher(a *Agent) *batcher {
	last := make(chan struct{})
	close(last)
	return &batcher{
		a:          a,
		buffer:     semaphore.NewWeighted(a.cfg.MaxBufferedBytes),
		upload:     semaphore.NewWeighted(int64(a.cfg.MaxConcurrentUploads)),
		lastCommit: last,
		writers:    make(chan *objectlog.SegmentWriter, a.cfg.MaxConcurrentUploads+2),
	}
}

// newWriter returns a spare segment writer, or a new one.
func (b *batcher) newWriter() *objectlog.SegmentWriter {
	select {
	case w := <-b.writers:
		return w
	default:
		return objectlog.NewSegmentWriter()
	}
}

// recycle keeps a writer whose bytes nothing references any more.
func (b *batcher) recycle(w *objectlog.SegmentWriter) {
	w.Reset()
	select {
	case b.writers <- w:
	default:
	}
}

// recordBytes is what a record costs in the buffer: its payload plus a
// little for the batch encoding around it.
func recordBytes(r objectlog.Record) int64 {
	n := int64(len(r.Key)+len(r.Value)) + 24
	for _, h := range r.Headers {
		n += int64(len(h.Key)+len(h.Value)) + 8
	}
	return n
}

// append adds the batches to the open segment, all in the same segment, and
// returns their pending results. It waits for buffer space up to
// ProduceQueueTimeout.
func (b *batcher) append(ctx context.Context, batches []partitionBatch) ([]*pendingBatch, error) {
	var size int64
	for _, pb := range batches {
		for _, r := range pb.records {
			size += recordBytes(r)
		}
	}
	if err := b.reserve(ctx, size); err != nil {
		return nil, err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.buffer.Release(size)
		return nil, errClosed
	}
	seg := b.openLocked()
	out := make([]*pendingBatch, 0, len(batches))
	for _, pb := range batches {
		if _, err := seg.w.AppendRecords(pb.key.topic, pb.key.partition, pb.spec, pb.records); err != nil {
			// Produce validated the records, so this is unexpected. The
			// batches appended so far stay and are committed normally; the
			// buffer is released with the segment.
			seg.bytes += size
			return nil, fmt.Errorf("encode batch for partition %d: %w", pb.key.partition, err)
		}
		p := &pendingBatch{key: pb.key, ordinal: seg.batches[pb.key], done: make(chan struct{})}
		seg.batches[pb.key]++
		if pb.spec.Control {
			if seg.controls == nil {
				seg.controls = map[batchRef]int16{}
			}
			seg.controls[batchRef{pb.key, p.ordinal}] = pb.controlType
		}
		seg.pending = append(seg.pending, p)
		out = append(out, p)
	}
	seg.bytes += size
	if seg.w.Len() >= b.a.cfg.SegmentMaxBytes {
		b.sealLocked()
	}
	return out, nil
}

// reserve takes size bytes of the produce buffer, waiting up to
// ProduceQueueTimeout for them.
func (b *batcher) reserve(ctx context.Context, size int64) error {
	if size > b.a.cfg.MaxBufferedBytes {
		return overLimit(errTooLarge, "max-buffered-bytes", b.a.cfg.MaxBufferedBytes, size,
			"request holds %d record bytes, over the agent's max-buffered-bytes %d", size, b.a.cfg.MaxBufferedBytes)
	}
	if !b.buffer.TryAcquire(size) {
		wctx, cancel := context.WithTimeout(ctx, b.a.cfg.ProduceQueueTimeout)
		err := b.buffer.Acquire(wctx, size)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			metricProduceRejected.Inc()
			// The bytes buffered are not known here (the semaphore keeps them), so
			// actual is 0, as errors.proto allows.
			return overLimit(errOverloaded, "max-buffered-bytes", b.a.cfg.MaxBufferedBytes, 0,
				"produce buffer full (max-buffered-bytes %d) for %s", b.a.cfg.MaxBufferedBytes, b.a.cfg.ProduceQueueTimeout)
		}
	}
	return nil
}

// openLocked returns the open segment, opening one (and starting its flush
// timer) if none is. The caller holds mu.
func (b *batcher) openLocked() *openSegment {
	seg := b.open
	if seg == nil {
		seg = &openSegment{w: b.newWriter(), batches: map[partitionKey]int{}}
		b.open = seg
		b.timer = time.AfterFunc(b.a.cfg.FlushInterval, func() { b.sealIfOpen(seg) })
	}
	return seg
}

// appendEncoded adds one already-encoded RecordBatch v2 (a Kafka client's)
// to the open segment byte for byte and returns its pending result. The
// segment writer checks its framing, magic, codec and CRC-32C first: a bad
// batch is objectlog.ErrCorrupt and nothing is appended. Its producer id,
// epoch and base sequence go to the commit's idempotence check.
func (b *batcher) appendEncoded(ctx context.Context, key partitionKey, raw []byte) (*pendingBatch, error) {
	size := int64(len(raw))
	if err := b.reserve(ctx, size); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.buffer.Release(size)
		return nil, errClosed
	}
	seg := b.openLocked()
	if _, err := seg.w.AppendEncodedBatch(key.topic, key.partition, raw); err != nil {
		b.buffer.Release(size)
		if len(seg.pending) == 0 && b.open == seg {
			// Nothing else in it: let the timer's seal find nothing open
			// rather than upload an empty segment.
			b.open = nil
			b.timer.Stop()
			b.timer = nil
			b.recycle(seg.w)
		}
		return nil, err
	}
	p := &pendingBatch{key: key, ordinal: seg.batches[key], done: make(chan struct{})}
	seg.batches[key]++
	seg.pending = append(seg.pending, p)
	seg.bytes += size
	if seg.w.Len() >= b.a.cfg.SegmentMaxBytes {
		b.sealLocked()
	}
	return p, nil
}

// sealIfOpen seals seg if it is still the open segment (the flush timer).
func (b *batcher) sealIfOpen(seg *openSegment) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == seg {
		b.sealLocked()
	}
}

// sealLocked hands the open segment to a flush and chains its commit after
// the previous one.
func (b *batcher) sealLocked() {
	seg := b.open
	if seg == nil {
		return
	}
	b.open = nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	prev, mine := b.lastCommit, make(chan struct{})
	b.lastCommit = mine
	b.flushes.Add(1)
	go func() {
		defer b.flushes.Done()
		b.flush(seg, prev, mine)
	}()
}

// flush uploads and commits one segment and answers its producers.
func (b *batcher) flush(seg *openSegment, prev <-chan struct{}, mine chan<- struct{}) {
	defer b.buffer.Release(seg.bytes)
	start := time.Now()
	results, err := b.flushSegment(seg, prev)
	close(mine)
	metricFlushSeconds.Observe(time.Since(start).Seconds())
	for _, p := range seg.pending {
		if p.err == nil {
			p.err = err
		}
		if p.err == nil {
			cr := results[p.key]
			p.base, p.logStart = cr.Batches[p.ordinal].BaseOffset, cr.LogStartOffset
			p.err = cr.Batches[p.ordinal].Err
		}
		close(p.done)
	}
}

// flushSegment does the work of flush; it waits for prev before committing
// and returns the batch results by chunk.
func (b *batcher) flushSegment(seg *openSegment, prev <-chan struct{}) (map[partitionKey]coordinator.ChunkResult, error) {
	a := b.a
	data, footer, err := seg.w.Finish()
	if err != nil {
		<-prev
		return nil, fmt.Errorf("seal segment: %w", err)
	}
	id := ulid.Make().String()
	key := "segments/" + id + ".seg"

	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommitTimeout+time.Minute)
	defer cancel()
	if err := b.upload.Acquire(ctx, 1); err != nil {
		<-prev
		// The slots are held by uploads the store has not finished.
		return nil, fmt.Errorf("upload segment %s: %w: no upload slot of %d freed: %w", key, objectlog.ErrUnavailable, a.cfg.MaxConcurrentUploads, err)
	}
	upStart := time.Now()
	err = a.bucket.PutIfAbsent(ctx, key, bytes.NewReader(data), int64(len(data)))
	b.upload.Release(1)
	metricPuts.Inc()
	metricPutSeconds.Observe(time.Since(upStart).Seconds())
	if err != nil {
		<-prev
		a.log.Warn("segment upload failed", "key", key, "bytes", len(data), "err", err)
		return nil, uploadError(key, err)
	}
	metricPutBytes.Add(float64(len(data)))
	// The cache takes a copy, and the store has all of the bytes: the
	// writer can serve another segment once this one is committed. (After a
	// failed PUT it is dropped instead: the HTTP transport may still be
	// reading the body.)
	defer b.recycle(seg.w)

	commit := coordinator.SegmentCommit{SegmentID: id, SegmentKey: key, Chunks: make([]coordinator.ChunkCommit, len(footer.Chunks))}
	for i, c := range footer.Chunks {
		cc := coordinator.ChunkCommit{TopicID: c.TopicID, Partition: c.Partition, Batches: make([]coordinator.BatchCommit, len(c.Batches))}
		for j, bi := range c.Batches {
			cc.Batches[j] = coordinator.BatchCommit{
				ByteOffset:    bi.ByteOffset,
				ByteLength:    int64(bi.ByteLength),
				Records:       bi.Records,
				MaxTimestamp:  bi.MaxTimestamp,
				ProducerID:    bi.ProducerID,
				ProducerEpoch: bi.ProducerEpoch,
				BaseSequence:  bi.BaseSequence,
				Transactional: bi.Attrs.Transactional(),
				Control:       bi.Attrs.Control(),
			}
			if bi.Attrs.Control() {
				cc.Batches[j].ControlType = seg.controls[batchRef{partitionKey{c.TopicID, c.Partition}, j}]
			}
		}
		commit.Chunks[i] = cc
	}

	// The writing agent caches its own segment before anyone can learn of
	// it, so tailing readers here never GET it back from the store.
	a.cache.putObject(key, data)

	<-prev
	chunkResults, err := b.commitWithRetry(commit)
	if err != nil {
		// The object stays. If no commit script ran, it is an orphan for
		// the janitor. If one ran but the commit did not become durable in
		// time, index entries past the high watermark point at it, and
		// finishLater (or, if this agent dies, the next durable commit to
		// the partition) makes them visible: the producers were told to
		// retry, so that is at least once, as a Kafka produce that timed
		// out may still have been written.
		a.log.Error("segment commit failed", "key", key, "err", err)
		if errors.Is(err, coordinator.ErrUnavailable) {
			b.finishLater(commit)
		}
		return nil, err
	}
	metricCommits.Inc()
	metricCommitChunks.Add(float64(len(commit.Chunks)))
	out := make(map[partitionKey]coordinator.ChunkResult, len(chunkResults))
	for i, cr := range chunkResults {
		c := commit.Chunks[i]
		k := partitionKey{c.TopicID, c.Partition}
		out[k] = cr
		a.hub.publish(coordinator.Watermark{TopicID: c.TopicID, Partition: c.Partition, HighWatermark: cr.HighWatermark})
	}
	return out, nil
}

// uploadError names the object store as what failed, and keeps every upload
// failure retryable (objectlog.ErrUnavailable): the producer's retry goes
// into a new segment under a new key. A new ULID key is taken only when the
// store kept an earlier try of this very put, so ErrAlreadyExists is
// reported as text, not as a code that would tell the producer to give up.
func uploadError(key string, err error) error {
	switch {
	case errors.Is(err, objectlog.ErrAlreadyExists):
		return fmt.Errorf("upload segment %s: %w: %v", key, objectlog.ErrUnavailable, err)
	case errors.Is(err, objectlog.ErrUnavailable):
		return fmt.Errorf("upload segment %s: %w", key, err)
	default:
		return fmt.Errorf("upload segment %s: %w: %w", key, objectlog.ErrUnavailable, err)
	}
}

// commitWithRetry commits, retrying transient index failures for up to
// CommitTimeout. Retries are safe: the commit is idempotent by segment id.
func (b *batcher) commitWithRetry(c coordinator.SegmentCommit) ([]coordinator.ChunkResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.a.cfg.CommitTimeout)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		start := time.Now()
		res, err := b.a.index.CommitSegment(ctx, c)
		metricCommitSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, coordinator.ErrUnavailable) || ctx.Err() != nil {
			return nil, fmt.Errorf("commit segment %s: %w", c.SegmentKey, err)
		}
		b.a.log.Warn("segment commit failed, retrying", "key", c.SegmentKey, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("commit segment %s: %w", c.SegmentKey, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// finishLater keeps trying, in the background, to make a commit whose
// producers were answered UNAVAILABLE durable and visible: if its commit
// scripts ran but WAIT (or the snapshot) failed, its offsets sit between
// the high watermark and the log end offset, and on a quiet partition
// nothing else would ever show them (Kafka's high watermark advances as
// soon as the followers catch up, without another produce). It retries
// FinishSegment with backoff (up to finishMaxBackoff) until the commit is
// visible, a later commit covered it, the agent closes, or finishGiveUp
// passed (a long outage must not pile up retrying goroutines; the janitor's
// catch-up and the next commit to the partition remain). It never commits
// what did not run: the producers were told to retry. If this agent dies
// first, the next commit to the partition, or the janitor, shows it.
func (b *batcher) finishLater(c coordinator.SegmentCommit) {
	ctx, cancel := context.WithTimeout(b.a.runCtx, finishGiveUp)
	go func() {
		defer cancel()
		backoff := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			select {
			case <-ctx.Done():
				if b.a.runCtx.Err() == nil {
					b.a.log.Warn("gave up making a failed segment commit visible; the janitor or the next commit will", "key", c.SegmentKey, "attempts", attempt-1)
				}
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, finishMaxBackoff)
			wctx, cancel := context.WithTimeout(ctx, b.a.cfg.CommitTimeout)
			marks, err := b.a.index.FinishSegment(wctx, c)
			cancel()
			if err == nil {
				for _, w := range marks {
					b.a.hub.publish(w)
				}
				if len(marks) > 0 {
					b.a.log.Info("failed segment commit became durable and visible", "key", c.SegmentKey, "attempts", attempt)
				}
				return
			}
			if !errors.Is(err, coordinator.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
				b.a.log.Error("giving up making a failed segment commit visible", "key", c.SegmentKey, "err", err)
				return
			}
			if attempt == 1 || attempt%20 == 0 {
				b.a.log.Warn("failed segment commit still not durable, retrying", "key", c.SegmentKey, "attempts", attempt, "err", err)
			}
		}
	}()
}

// finishMaxBackoff caps the pause between finishLater's tries, and
// finishGiveUp bounds how long it tries.
const (
	finishMaxBackoff = 5 * time.Second
	finishGiveUp     = 10 * time.Minute
)

// close seals what is open, refuses new batches and waits for every flush.
func (b *batcher) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.sealLocked()
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.flushes.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush on close: %w", ctx.Err())
	}
}

// wait waits for a pending batch's commit, or ctx.
func (p *pendingBatch) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
