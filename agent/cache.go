package agent

// The block cache (DESIGN.md, "Read path" 3): reads of segment objects go
// through aligned blocks of CacheBlockBytes kept in a byte-bounded LRU.
// Objects are immutable, so a cached block is never invalidated, only
// evicted. A read that misses fetches each contiguous run of missing blocks
// with ONE ranged GET; a block already being fetched for another reader is
// waited for, not fetched again, so a burst of consumers on one cold block
// costs the store one request. Failed fetches leave nothing behind: the
// next reader tries again.
//
// The fetch of a run belongs to nobody in particular: it runs on its own
// goroutine, every reader that needs it waits for it, and it is canceled
// only when the last of them has gone. One impatient reader therefore never
// fails the others.
//
// The same LRU and byte budget also hold archive row groups rebuilt into
// record batches (putBatches, archive_read.go), under names no object has:
// decoded data an agent keeps is bounded by the one --cache-bytes.

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/stratabroker/strata/objectlog"
)

type blockCache struct {
	bucket    objectlog.BucketReader
	capacity  int64
	blockSize int64

	mu       sync.Mutex
	lru      list.List // of *cachedBlock, most recently used at the front
	blocks   map[blockID]*list.Element
	inflight map[blockID]*blockFetch
	used     int64 // bytes of cached block data
}

// blockID names the index-th block of an object: bytes
// [index*blockSize, (index+1)*blockSize).
type blockID struct {
	key   string
	index int64
}

type cachedBlock struct {
	id   blockID
	data []byte
	// last marks the object's final block, so reads past the object's end
	// are cut without asking the store. It may be a full block.
	last bool
	// batches, when set, is an archive row group rebuilt into record
	// batches (archive_read.go) rather than bytes of an object; charged
	// is what it counts against the capacity.
	batches []objectlog.Batch
	charged int64
}

// size is what the block counts against the cache's capacity.
func (b *cachedBlock) size() int64 {
	if b.batches != nil {
		return b.charged
	}
	return int64(len(b.data))
}

// blockFetch is one ranged GET of the blocks [first, first+n) of an object.
type blockFetch struct {
	key      string
	first, n int64

	done chan struct{} // closed when the fields below are set
	// blocks holds what the GET returned, at most n blocks; fewer when the
	// object ended in the run.
	blocks [][]byte
	// endSeen: the object ends in the run (or before it), so no block past
	// the last of blocks exists.
	endSeen bool
	err     error

	// waiters is how many readers still want the result (guarded by the
	// cache's mu); the last to give up cancels the GET.
	waiters int
	cancel  context.CancelFunc
}

func newBlockCache(bucket objectlog.BucketReader, capacityBytes, blockBytes int64) *blockCache {
	return &blockCache{
		bucket:    bucket,
		capacity:  capacityBytes,
		blockSize: blockBytes,
		blocks:    map[blockID]*list.Element{},
		inflight:  map[blockID]*blockFetch{},
	}
}

// putObject caches a whole object the agent has just written. It copies
// data: the caller may reuse it afterwards.
//
// The object is copied block by block rather than sliced: blocks are
// evicted one at a time, and a sub-slice would keep the whole object's
// array alive while the cache counts one block, breaking the byte bound.
func (c *blockCache) putObject(key string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size := int64(len(data))
	for i, off := int64(0), int64(0); off < size; i, off = i+1, off+c.blockSize {
		end := min(off+c.blockSize, size)
		c.insertLocked(&cachedBlock{
			id:   blockID{key, i},
			data: bytes.Clone(data[off:end]),
			last: end == size,
		})
	}
}

// insertLocked adds or refreshes a block and evicts from the cold end
// until the cache fits its capacity again.
func (c *blockCache) insertLocked(b *cachedBlock) {
	if e, ok := c.blocks[b.id]; ok {
		// Same immutable bytes; a later fetch may only have learnt that
		// this block is the object's last.
		old := e.Value.(*cachedBlock)
		old.last = old.last || b.last
		c.lru.MoveToFront(e)
		return
	}
	if b.size() > c.capacity {
		return
	}
	c.blocks[b.id] = c.lru.PushFront(b)
	c.used += b.size()
	for c.used > c.capacity {
		e := c.lru.Back()
		old := e.Value.(*cachedBlock)
		c.lru.Remove(e)
		delete(c.blocks, old.id)
		c.used -= old.size()
	}
}

// cachedBatches returns the record batches cached under id by putBatches,
// or nil. They are shared with every other reader: read them, never
// modify them.
func (c *blockCache) cachedBatches(id blockID) []objectlog.Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.blocks[id]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cachedBlock).batches
}

// putBatches caches batches under id, counted as size bytes against the
// capacity, in the same LRU as the blocks: decoded data is bounded by the
// one budget. id's key must be one no object has (blocks and batches never
// share a name). Batches larger than the whole cache are not kept.
func (c *blockCache) putBatches(id blockID, batches []objectlog.Batch, size int64) {
	if len(batches) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insertLocked(&cachedBlock{id: id, batches: batches, charged: size})
}

// blockSource is where one block of a read comes from: a fetch in flight,
// or (fetch nil) the cache, whose data and last flag are copied under the
// lock because last may be set later.
type blockSource struct {
	fetch *blockFetch
	data  []byte
	last  bool
}

// readRange returns length bytes of the object from off, cut at the
// object's end, like BucketReader.GetRange; an off at or past the end is
// ErrInvalidRange. The bytes are the caller's own: cached blocks are never
// handed out, so a caller may modify what it gets (DecodeChunk does).
func (c *blockCache) readRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	pieces, err := c.view(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	var n int
	for _, p := range pieces {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range pieces {
		out = append(out, p...)
	}
	return out, nil
}

// view is readRange without the copy: the bytes, in order, as slices of
// the cached blocks themselves (one per block the range touches). They
// are shared with the cache and every other reader: read them, never
// modify them. Blocks are immutable and never reused, so a view stays
// valid after its blocks are evicted (the garbage collector frees them
// once the reader lets go): what readers hold past --cache-bytes is the
// bytes of the reads in progress, as it was with readRange's copies. The
// whole-batch reads copy each stored batch from a view straight into their
// answer (readChunkBatches), rather than into a chunk of their own first.
func (c *blockCache) view(ctx context.Context, key string, off, length int64) ([][]byte, error) {
	if off < 0 || length < 0 {
		return nil, fmt.Errorf("block cache: read %s: bad range %d+%d", key, off, length)
	}
	if length == 0 {
		return [][]byte{}, nil
	}
	first, last := off/c.blockSize, (off+length-1)/c.blockSize

	sources, joined := c.plan(ctx, key, first, last)
	defer c.leave(joined)

	pieces := make([][]byte, 0, len(sources))
	pos := off // the next byte of the object wanted
	for i, src := range sources {
		index := first + int64(i)
		var data []byte
		var isLast bool
		if src.fetch == nil {
			data, isLast = src.data, src.last
		} else {
			f := src.fetch
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("block cache: read %s: %w", key, ctx.Err())
			}
			if f.err != nil {
				return nil, f.err
			}
			if j := index - f.first; j < int64(len(f.blocks)) {
				data = f.blocks[j]
				isLast = f.endSeen && j == int64(len(f.blocks))-1
			} else {
				isLast = true // the object ended before this block
			}
		}
		blockStart := index * c.blockSize
		if from := pos - blockStart; from < int64(len(data)) {
			to := min(int64(len(data)), off+length-blockStart)
			// Capped at its length: an append to a piece must never
			// write into the block after it.
			pieces = append(pieces, data[from:to:to])
			pos = blockStart + to
		}
		if isLast || int64(len(data)) < c.blockSize {
			break
		}
	}
	if len(pieces) == 0 {
		return nil, fmt.Errorf("block cache: read %s from byte %d: %w", key, off, objectlog.ErrInvalidRange)
	}
	return pieces, nil
}

// plan finds each wanted block in the cache or in flight and starts one
// fetch per contiguous run of the rest. It returns a source per block from
// first (shorter than the range when a cached block is known to be the
// object's last) and the fetches the reader now waits for.
func (c *blockCache) plan(ctx context.Context, key string, first, last int64) ([]blockSource, []*blockFetch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sources := make([]blockSource, 0, last-first+1)
	var joined []*blockFetch
	var run *blockFetch // the run being gathered for a new fetch
	type start struct {
		f   *blockFetch
		ctx context.Context
	}
	var starts []start
	// The runs are complete (n final) only after the loop.
	defer func() {
		for _, s := range starts {
			go c.fetch(s.ctx, s.f)
		}
	}()
	if e, ok := c.blocks[blockID{key, first - 1}]; ok && e.Value.(*cachedBlock).last {
		metricCacheHits.Inc()
		return nil, nil // the read starts past the object's known end
	}
	for i := first; i <= last; i++ {
		id := blockID{key, i}
		if e, ok := c.blocks[id]; ok {
			b := e.Value.(*cachedBlock)
			c.lru.MoveToFront(e)
			metricCacheHits.Inc()
			sources = append(sources, blockSource{data: b.data, last: b.last})
			run = nil
			if b.last {
				break
			}
			continue
		}
		metricCacheMisses.Inc()
		if f, ok := c.inflight[id]; ok {
			if len(joined) == 0 || joined[len(joined)-1] != f {
				f.waiters++
				joined = append(joined, f)
			}
			sources = append(sources, blockSource{fetch: f})
			run = nil
			continue
		}
		if run == nil {
			run = &blockFetch{key: key, first: i, done: make(chan struct{}), waiters: 1}
			joined = append(joined, run)
			// The GET outlives this reader if others join it; it keeps
			// the reader's values (trace ids) but not its cancellation.
			fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			run.cancel = cancel
			starts = append(starts, start{run, fctx})
		}
		run.n++
		c.inflight[id] = run
		sources = append(sources, blockSource{fetch: run})
	}
	c.readAheadLocked(key, first, last, run)
	return sources, joined
}

// prefetch starts the GETs of the blocks of [off, off+length) of an object
// that are neither cached nor being fetched, and returns at once: a later
// read of them finds them cached or joins their fetch. The fetches belong
// to no reader, so they end with their GET, never with ctx (only its
// values are kept); what they bring is cached as a read's would be.
func (c *blockCache) prefetch(ctx context.Context, key string, off, length int64) {
	if off < 0 || length <= 0 {
		return
	}
	_, joined := c.plan(ctx, key, off/c.blockSize, (off+length-1)/c.blockSize)
	if len(joined) == 0 {
		return
	}
	go func() {
		// Waiting keeps the fetches from being canceled when their
		// other readers, if any, give up.
		for _, f := range joined {
			<-f.done
		}
		c.leave(joined)
	}()
}

// readAheadBlocks is how many blocks past a read a sequential reader's GET
// fetches too: with the defaults, up to 8 MiB in one GET, the size of a
// segment. Catch-up consumers of a whole topic read every chunk of a
// segment, one after the other; one GET per segment instead of one per
// block costs fewer requests and is faster (the store serves large GETs
// at twice the rate of 1 MiB ones, see docs/benchmarks.md).
const readAheadBlocks = 7

// readAheadLocked extends run, a new fetch ending at block last, to the
// blocks after it that are neither cached nor being fetched, when the read
// looks sequential: the block before it is cached or on its way. A reader
// of one partition, whose chunks are scattered over many segments, does
// not trigger it and reads only the blocks it needs.
func (c *blockCache) readAheadLocked(key string, first, last int64, run *blockFetch) {
	if run == nil || run.first+run.n-1 != last || first == 0 {
		return
	}
	before := blockID{key, first - 1}
	if _, cached := c.blocks[before]; !cached {
		if _, fetching := c.inflight[before]; !fetching {
			return
		}
	}
	for i := last + 1; i <= last+readAheadBlocks; i++ {
		id := blockID{key, i}
		if _, cached := c.blocks[id]; cached {
			return
		}
		if _, fetching := c.inflight[id]; fetching {
			return
		}
		run.n++
		c.inflight[id] = run
	}
}

// leave drops the reader's interest in its fetches; a fetch nobody waits
// for any more is canceled and forgotten, so a later reader starts afresh.
func (c *blockCache) leave(fetches []*blockFetch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range fetches {
		f.waiters--
		if f.waiters > 0 {
			continue
		}
		select {
		case <-f.done:
		default:
			f.cancel()
			c.forgetLocked(f)
		}
	}
}

// forgetLocked removes f's blocks from the in-flight map, unless a newer
// fetch has taken their place.
func (c *blockCache) forgetLocked(f *blockFetch) {
	for i := range f.n {
		id := blockID{f.key, f.first + i}
		if c.inflight[id] == f {
			delete(c.inflight, id)
		}
	}
}

// fetch runs one ranged GET for f's blocks, caches what it got, and wakes
// the readers waiting for it.
func (c *blockCache) fetch(ctx context.Context, f *blockFetch) {
	defer f.cancel()
	blocks, endSeen, err := c.get(ctx, f.key, f.first, f.n)

	c.mu.Lock()
	defer c.mu.Unlock()
	f.blocks, f.endSeen, f.err = blocks, endSeen, err
	c.forgetLocked(f)
	if err == nil && endSeen && len(blocks) == 0 && f.first > 0 {
		// The object ends exactly where the run starts: remember it on
		// the block before, so the next read past the end asks no one.
		if e, ok := c.blocks[blockID{f.key, f.first - 1}]; ok {
			e.Value.(*cachedBlock).last = true
		}
	}
	if err == nil {
		for i, data := range blocks {
			c.insertLocked(&cachedBlock{
				id:   blockID{f.key, f.first + int64(i)},
				data: data,
				last: endSeen && i == len(blocks)-1,
			})
		}
	}
	close(f.done)
}

// get reads n blocks from block first with one ranged GET, each block into
// its own array (see putObject for why). endSeen reports that the object
// ends within the range or before it.
func (c *blockCache) get(ctx context.Context, key string, first, n int64) (blocks [][]byte, endSeen bool, err error) {
	off, want := first*c.blockSize, n*c.blockSize
	metricGets.Inc()
	rc, err := c.bucket.GetRange(ctx, key, off, want)
	if errors.Is(err, objectlog.ErrInvalidRange) {
		// The object ends at or before off: a known end, not a failure.
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	var got int64
	defer func() { metricGetBytes.Add(float64(got)) }()
	for i := range n {
		buf := make([]byte, c.blockSize)
		m, eof, err := readBlock(rc, buf)
		got += int64(m)
		if err != nil {
			return nil, false, fmt.Errorf("block cache: read %s bytes %d..%d: %w", key, off, off+want, err)
		}
		if m > 0 {
			if m < len(buf) {
				buf = bytes.Clone(buf[:m]) // do not hold the unused tail
			}
			blocks = append(blocks, buf)
		}
		if eof {
			// The end of the response is the object's end only if it came
			// before the end of the range asked for: a reader may return
			// io.EOF with the range's last bytes, and the object may go on.
			return blocks, int64(m) < c.blockSize || i < n-1, nil
		}
	}
	return blocks, false, nil
}

// readBlock fills buf from r. It tells a clean end of the stream (the
// store cut the range at the object's end: eof) from a stream that broke
// off: io.ReadFull would report both as io.ErrUnexpectedEOF, and caching a
// broken-off read as the object's end would serve short data for good.
func readBlock(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF { // unwrapped, by io.Reader's contract
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}
