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

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
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

// archiveBatches returns an archive entry's records as RecordBatch v2
// batches with their original base offsets (see the file's comment).
func (a *Agent) archiveBatches(ctx context.Context, e coordinator.IndexEntry) ([]objectlog.Batch, error) {
	recs, err := a.archiveRecords(ctx, e)
	if err != nil {
		return nil, err
	}
	raw, err := objectlog.EncodeArchiveBatches(nil, recs, objectlog.CodecNone)
	if err != nil {
		return nil, fmt.Errorf("%s row group at offset %d: %w", e.SegmentKey, e.BaseOffset, err)
	}
	batches, err := objectlog.DecodeChunk(raw, -1)
	if err != nil {
		return nil, fmt.Errorf("%s row group at offset %d: %w", e.SegmentKey, e.BaseOffset, err)
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("%w: %s row group at offset %d holds no records", objectlog.ErrCorrupt, e.SegmentKey, e.BaseOffset)
	}
	return batches, nil
}
