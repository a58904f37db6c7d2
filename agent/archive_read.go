package agent

// Reads of archived offsets (DESIGN.md "Compaction, retention, archive"):
// an index entry whose key is an archive file's points at one row group.
// The row group is read through the block cache, decoded by objectlog's
// archive reader, and re-encoded with EncodeArchiveBatches into RecordBatch
// v2 batches with the records' original offsets, timestamps, keys, values,
// headers and producer fields: what the segment path yields, so that
// everything above (the per-record decoding of Fetch and Subscribe,
// ListOffsets by time) reads archived offsets exactly as it read them hot.
//
// The batches keep their own base offsets (archive files leave out control
// batches, so an entry's offsets may have holes): unlike a segment chunk's,
// they are not renumbered from the entry's base offset.
//
// A row group holds thousands of records (16,000 of 200 bytes with the
// writer's defaults), far more than one fetch returns, and decoding it is
// most of an archived read's cost. So the rebuilt batches stay in the block
// cache, charged by their size against its one budget: a consumer catching
// up in 1 MiB fetches decodes each row group once, not once per fetch, and
// concurrent readers of one row group wait for one decode (issue 10: before,
// archive catch-up ran 20-50x slower than hot catch-up).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

var (
	metricArchiveRowGroupDecodes = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_archive_row_group_decodes_total", Help: "Archive row groups decoded and rebuilt into record batches by reads."})
	metricArchiveBatchHits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "strata_archive_row_group_cache_hits_total", Help: "Archive reads served by a row group's rebuilt batches in the block cache."})
)

// maxOpenArchives bounds the archive footers an agent keeps parsed; each is
// the file's metadata (a few KiB per row group).
const maxOpenArchives = 256

// archiveReaders keeps the parsed footers of recently read archive files:
// a file is immutable, so its footer is read once, not once per fetch.
type archiveReaders struct {
	mu    sync.Mutex
	open  map[string]*objectlog.ArchiveReader
	order []string // insertion order, for eviction
	// rebuilding holds the row groups being decoded, so that concurrent
	// readers of one wait for its decode instead of each decoding it.
	rebuilding map[blockID]*rowGroupRebuild
	// rebuilds counts the row groups this agent decoded (tests).
	rebuilds atomic.Int64
}

// rowGroupRebuild is one decode of a row group into batches; done is closed
// when batches or err is set.
type rowGroupRebuild struct {
	done    chan struct{}
	batches []objectlog.Batch
	err     error
}

// startRebuild returns the rebuild of id in progress, or registers a new
// one that the caller (leader) must finish.
func (rs *archiveReaders) startRebuild(id blockID) (r *rowGroupRebuild, leader bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r := rs.rebuilding[id]; r != nil {
		return r, false
	}
	if rs.rebuilding == nil {
		rs.rebuilding = map[blockID]*rowGroupRebuild{}
	}
	r = &rowGroupRebuild{done: make(chan struct{})}
	rs.rebuilding[id] = r
	return r, true
}

func (rs *archiveReaders) finishRebuild(id blockID, r *rowGroupRebuild, batches []objectlog.Batch, err error) {
	rs.mu.Lock()
	delete(rs.rebuilding, id)
	rs.mu.Unlock()
	r.batches, r.err = batches, err
	close(r.done)
}

func (rs *archiveReaders) get(ctx context.Context, b objectlog.BucketReader, key string) (*objectlog.ArchiveReader, error) {
	rs.mu.Lock()
	r := rs.open[key]
	rs.mu.Unlock()
	if r != nil {
		return r, nil
	}
	r, err := objectlog.OpenArchive(ctx, b, key)
	if err != nil {
		return nil, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.open == nil {
		rs.open = map[string]*objectlog.ArchiveReader{}
	}
	if _, ok := rs.open[key]; !ok {
		rs.open[key] = r
		rs.order = append(rs.order, key)
		for len(rs.order) > maxOpenArchives {
			delete(rs.open, rs.order[0])
			rs.order = rs.order[1:]
		}
	}
	return r, nil
}

// cachedBucket reads ranges through the block cache and everything else
// from the bucket.
type cachedBucket struct{ a *Agent }

func (c cachedBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return c.a.bucket.Get(ctx, key)
}

func (c cachedBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if length < 0 {
		return c.a.bucket.GetRange(ctx, key, off, length)
	}
	b, err := c.a.cache.readRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (c cachedBucket) Attributes(ctx context.Context, key string) (objectlog.Attributes, error) {
	return c.a.bucket.Attributes(ctx, key)
}

func (c cachedBucket) List(ctx context.Context, prefix string) iter.Seq2[objectlog.ObjectInfo, error] {
	return c.a.bucket.List(ctx, prefix)
}

// archiveRecords reads the records of an archive entry's row group.
func (a *Agent) archiveRecords(ctx context.Context, e coordinator.IndexEntry) ([]objectlog.ArchiveRecord, error) {
	r, err := a.archives.get(ctx, cachedBucket{a}, e.SegmentKey)
	if errors.Is(err, objectlog.ErrNotFound) {
		// The index never names a missing object (DESIGN.md).
		return nil, fmt.Errorf("%w: index entry at offset %d names a missing archive file: %v", objectlog.ErrCorrupt, e.BaseOffset, err)
	}
	if err != nil {
		return nil, err
	}
	i, ok := r.RowGroupFor(e.BaseOffset)
	if !ok || r.Info().RowGroups[i].FirstOffset != e.BaseOffset || r.Info().RowGroups[i].LastOffset != e.LastOffset() {
		return nil, fmt.Errorf("%w: index entry at offsets [%d, %d] matches no row group of %s", objectlog.ErrCorrupt,
			e.BaseOffset, e.LastOffset(), e.SegmentKey)
	}
	return r.ReadRowGroup(ctx, i)
}

// rowGroupCacheID names an archive entry's rebuilt batches in the block
// cache. Object keys never start with a NUL byte, so it is no object's
// block; the entry's last offset is in it so that only an entry that
// matched the row group when it was decoded finds them.
func rowGroupCacheID(e coordinator.IndexEntry) blockID {
	return blockID{key: "\x00archive-batches:" + strconv.FormatInt(e.LastOffset(), 10) + ":" + e.SegmentKey, index: e.BaseOffset}
}

// archiveBatches returns an archive entry's records as RecordBatch v2
// batches with their original base offsets (see the file's comment). The
// batches come from the block cache when this row group was read lately,
// and are then shared with other readers: callers must not modify them.
func (a *Agent) archiveBatches(ctx context.Context, e coordinator.IndexEntry) ([]objectlog.Batch, error) {
	id := rowGroupCacheID(e)
	for {
		if batches := a.cache.cachedBatches(id); batches != nil {
			metricArchiveBatchHits.Inc()
			return batches, nil
		}
		r, leader := a.archives.startRebuild(id)
		if leader {
			batches, size, err := a.rebuildRowGroup(ctx, e)
			if err == nil {
				a.cache.putBatches(id, batches, size)
			}
			a.archives.finishRebuild(id, r, batches, err)
			return batches, err
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s row group at offset %d: %w", e.SegmentKey, e.BaseOffset, ctx.Err())
		}
		if r.err != nil && (errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue // the leader's read was cut short, not this one's
		}
		return r.batches, r.err
	}
}

// rebuildRowGroup decodes an archive entry's row group into batches and
// returns them with the bytes they hold in memory.
func (a *Agent) rebuildRowGroup(ctx context.Context, e coordinator.IndexEntry) ([]objectlog.Batch, int64, error) {
	metricArchiveRowGroupDecodes.Inc()
	a.archives.rebuilds.Add(1)
	recs, err := a.archiveRecords(ctx, e)
	if err != nil {
		return nil, 0, err
	}
	// Sized up front: appending would copy a row group's batches (MiBs)
	// several times over as they grew.
	raw, err := objectlog.EncodeArchiveBatches(make([]byte, 0, encodedArchiveSize(recs)), recs, objectlog.CodecNone)
	if err != nil {
		return nil, 0, fmt.Errorf("%s row group at offset %d: %w", e.SegmentKey, e.BaseOffset, err)
	}
	batches, err := objectlog.DecodeChunk(raw, -1)
	if err != nil {
		return nil, 0, fmt.Errorf("%s row group at offset %d: %w", e.SegmentKey, e.BaseOffset, err)
	}
	if len(batches) == 0 {
		return nil, 0, fmt.Errorf("%w: %s row group at offset %d holds no records", objectlog.ErrCorrupt, e.SegmentKey, e.BaseOffset)
	}
	batches = batches[:len(batches):len(batches)]
	return batches, int64(cap(raw)) + int64(cap(batches))*int64(unsafe.Sizeof(objectlog.Batch{})), nil
}

// encodedArchiveSize bounds what EncodeArchiveBatches makes of recs without
// compression: a record's bytes plus its framing (length, attributes,
// timestamp and offset deltas, key, value and header count lengths: at most
// 36 bytes, and 10 per header), and a batch header (61 bytes) per batch. The
// spare room, if any, is counted against the cache with the batches.
func encodedArchiveSize(recs []objectlog.ArchiveRecord) int {
	n := 0
	for i := range recs {
		r := &recs[i]
		n += len(r.Key) + len(r.Value) + 36
		for _, h := range r.Headers {
			n += len(h.Key) + len(h.Value) + 10
		}
		if i == 0 || r.Batch.BaseOffset != recs[i-1].Batch.BaseOffset {
			n += 61
		}
	}
	return n
}
