package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stratabroker/strata/objectlog"
)

// countingBucket counts the reads that reach the store, optionally holding
// each ranged GET until gate is closed.
type countingBucket struct {
	objectlog.Bucket
	gets atomic.Int64
	gate chan struct{}
}

func (b *countingBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	b.gets.Add(1)
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.Bucket.GetRange(ctx, key, off, length)
}

func (b *countingBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	b.gets.Add(1)
	return b.Bucket.Get(ctx, key)
}

const testBlock = 4096

// storedObject puts n random bytes under key and returns them.
func storedObject(t *testing.T, b objectlog.Bucket, key string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	if err := b.PutIfAbsent(t.Context(), key, bytes.NewReader(data), int64(n)); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCacheReadsRangesAcrossBlocksAndObjectEnd(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket()}
	data := storedObject(t, bucket, "obj", 10000) // blocks of 4096, 4096, 1808
	c := newBlockCache(bucket, 1<<20, testBlock)

	for _, tc := range []struct {
		name      string
		off, n    int64
		want      []byte
		wantErr   error
		extraGets int64 // GETs this read adds, given the reads before it
	}{
		{"inside the first block", 10, 100, data[10:110], nil, 1},
		{"again, from the cache", 10, 100, data[10:110], nil, 0},
		{"crossing into two cold blocks: one GET", 4000, 5000, data[4000:9000], nil, 1},
		{"whole object from the cache", 0, 10000, data, nil, 0},
		{"past the end is cut", 8190, 5000, data[8190:], nil, 0},
		{"last byte", 9999, 1, data[9999:], nil, 0},
		// The short final block marks the end: no GET needed to know it.
		{"at the end", 10000, 1, nil, objectlog.ErrInvalidRange, 0},
		{"far past the end", 50000, 5, nil, objectlog.ErrInvalidRange, 1},
	} {
		before := bucket.gets.Load()
		got, err := c.readRange(t.Context(), "obj", tc.off, tc.n)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("%s: error %v, want %v", tc.name, err, tc.wantErr)
			}
		} else if err != nil || !bytes.Equal(got, tc.want) {
			t.Fatalf("%s: got %d bytes (err %v), want %d bytes of the object", tc.name, len(got), err, len(tc.want))
		}
		if extra := bucket.gets.Load() - before; extra != tc.extraGets {
			t.Fatalf("%s: %d GETs, want %d", tc.name, extra, tc.extraGets)
		}
	}
}

func TestCacheFetchesEachMissingRunWithOneGet(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket()}
	data := storedObject(t, bucket, "obj", 5*testBlock)
	c := newBlockCache(bucket, 1<<20, testBlock)
	// Warm block 2 only; then a read of blocks 0..4 misses two runs.
	if _, err := c.readRange(t.Context(), "obj", 2*testBlock, 1); err != nil {
		t.Fatal(err)
	}
	got, err := c.readRange(t.Context(), "obj", 0, 5*testBlock)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read of the whole object: %d bytes, err %v", len(got), err)
	}
	if n := bucket.gets.Load(); n != 3 {
		t.Fatalf("%d GETs, want 3 (block 2, then blocks 0-1 and 3-4)", n)
	}
	// An object that ends exactly on a block boundary: the read past it
	// learns the end from the store once and then from the cache.
	for range 2 {
		if _, err := c.readRange(t.Context(), "obj", 5*testBlock, 10); !errors.Is(err, objectlog.ErrInvalidRange) {
			t.Fatalf("read at the end: %v, want ErrInvalidRange", err)
		}
	}
	if n := bucket.gets.Load(); n != 4 {
		t.Fatalf("%d GETs, want 4", n)
	}
}

func TestCachePutObjectServesWithoutGets(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket()}
	c := newBlockCache(bucket, 1<<20, testBlock)
	data := make([]byte, 2*testBlock+7)
	for i := range data {
		data[i] = byte(i)
	}
	want := bytes.Clone(data)
	c.putObject("own", data)

	got, err := c.readRange(t.Context(), "own", testBlock-3, 2*testBlock)
	if err != nil || !bytes.Equal(got, want[testBlock-3:]) {
		t.Fatalf("read: %d bytes, err %v; want the %d bytes to the end", len(got), err, len(want)-(testBlock-3))
	}
	// Readers may modify what they get (DecodeChunk does): the cache's
	// copy must not change.
	for i := range got {
		got[i] = 0xff
	}
	again, err := c.readRange(t.Context(), "own", 0, int64(len(want)))
	if err != nil || !bytes.Equal(again, want) {
		t.Fatalf("cached bytes changed after a reader modified its copy (err %v)", err)
	}
	if _, err := c.readRange(t.Context(), "own", int64(len(want)), 1); !errors.Is(err, objectlog.ErrInvalidRange) {
		t.Fatalf("read at the end: %v, want ErrInvalidRange", err)
	}
	if n := bucket.gets.Load(); n != 0 {
		t.Fatalf("%d GETs for an object put in the cache, want 0", n)
	}
}

func TestCacheEvictsLeastRecentlyUsedBytes(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket()}
	for _, k := range []string{"a", "b", "c"} {
		storedObject(t, bucket, k, testBlock)
	}
	c := newBlockCache(bucket, 2*testBlock, testBlock) // room for two blocks
	read := func(key string) {
		t.Helper()
		if _, err := c.readRange(t.Context(), key, 0, testBlock); err != nil {
			t.Fatal(err)
		}
	}
	read("a")
	read("b")
	read("a") // a is now more recent than b
	read("c") // evicts b
	if n := bucket.gets.Load(); n != 3 {
		t.Fatalf("%d GETs, want 3", n)
	}
	c.mu.Lock()
	used := c.used
	c.mu.Unlock()
	if used > 2*testBlock {
		t.Fatalf("cache holds %d bytes, capacity %d", used, 2*testBlock)
	}
	read("a")
	read("c")
	if n := bucket.gets.Load(); n != 3 {
		t.Fatalf("a and c should be cached: %d GETs, want 3", n)
	}
	read("b")
	if n := bucket.gets.Load(); n != 4 {
		t.Fatalf("b should have been evicted: %d GETs, want 4", n)
	}
}

// waiters returns how many readers wait for the fetch of a block, 0 if
// none is in flight.
func (c *blockCache) waiters(key string, index int64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.inflight[blockID{key, index}]; ok {
		return f.waiters
	}
	return 0
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheCoalescesConcurrentMissesIntoOneGet(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket(), gate: make(chan struct{})}
	data := storedObject(t, bucket, "cold", testBlock)
	c := newBlockCache(bucket, 1<<20, testBlock)

	const readers = 32
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Go(func() {
			off := int64(i * 100)
			got, err := c.readRange(t.Context(), "cold", off, 50)
			if err == nil && !bytes.Equal(got, data[off:off+50]) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		})
	}
	// Hold the GET until every reader is waiting on it, so none can be
	// served by the cache after the fact instead of by coalescing.
	waitFor(t, "32 readers on one fetch", func() bool { return c.waiters("cold", 0) == readers })
	close(bucket.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := bucket.gets.Load(); n != 1 {
		t.Fatalf("%d GETs for %d concurrent readers of one block, want 1", n, readers)
	}
}

func TestCacheCanceledReaderDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket(), gate: make(chan struct{})}
	data := storedObject(t, bucket, "cold", testBlock)
	c := newBlockCache(bucket, 1<<20, testBlock)

	impatient, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := c.readRange(impatient, "cold", 0, 10)
		first <- err
	}()
	waitFor(t, "the first reader", func() bool { return c.waiters("cold", 0) == 1 })
	second := make(chan []byte, 1)
	go func() {
		got, err := c.readRange(t.Context(), "cold", 0, 10)
		if err != nil {
			t.Error(err)
		}
		second <- got
	}()
	waitFor(t, "the second reader", func() bool { return c.waiters("cold", 0) == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled reader: %v, want context.Canceled", err)
	}
	close(bucket.gate)
	if got := <-second; !bytes.Equal(got, data[:10]) {
		t.Fatalf("second reader got %x, want %x", got, data[:10])
	}
	if n := bucket.gets.Load(); n != 1 {
		t.Fatalf("%d GETs, want 1: the GET belongs to both readers", n)
	}
}

func TestCacheDoesNotKeepFailures(t *testing.T) {
	t.Parallel()
	store := objectlog.NewMemBucket()
	faulty := objectlog.NewFaultyBucket(store)
	bucket := &countingBucket{Bucket: faulty}
	data := storedObject(t, store, "obj", 3*testBlock)
	c := newBlockCache(bucket, 1<<20, testBlock)

	boom := errors.New("store on fire")
	faulty.Inject(objectlog.Fault{Ops: objectlog.OpGetRange, Nth: 1, Err: boom})
	if _, err := c.readRange(t.Context(), "obj", 0, 10); !errors.Is(err, boom) {
		t.Fatalf("first read: %v, want the injected error", err)
	}
	// A stream that breaks off must not pass for the object's end: that
	// would serve short data for good.
	faulty.Inject(objectlog.Fault{Ops: objectlog.OpGetRange, Nth: 1, Truncate: true, TruncateAt: 100})
	if got, err := c.readRange(t.Context(), "obj", 0, 3*testBlock); err == nil {
		t.Fatalf("read over a broken stream: %d bytes and no error", len(got))
	}
	got, err := c.readRange(t.Context(), "obj", 0, 3*testBlock)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the faults: %d bytes, err %v", len(got), err)
	}
	if n := bucket.gets.Load(); n != 3 {
		t.Fatalf("%d GETs, want 3: failed reads must not be cached", n)
	}
}

// eofWithDataBucket answers ranged GETs with readers that return io.EOF
// together with the last bytes, as io.Reader allows and HTTP bodies do.
type eofWithDataBucket struct{ objectlog.Bucket }

func (b eofWithDataBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := b.Bucket.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{iotest.DataErrReader(rc), rc}, nil
}

// A ranged GET that ends on a block boundary inside the object must not
// mark its last block as the object's end: reads past it would then fail
// with ErrInvalidRange (served as DATA_LOSS) for as long as it is cached.
func TestCacheRangeEndingOnBlockBoundaryIsNotTheObjectEnd(t *testing.T) {
	t.Parallel()
	bucket := eofWithDataBucket{objectlog.NewMemBucket()}
	data := storedObject(t, bucket, "obj", 5*testBlock+100)
	c := newBlockCache(bucket, 1<<20, testBlock)
	for _, r := range []struct{ off, n int64 }{{0, testBlock}, {testBlock, 2 * testBlock}, {3 * testBlock, 2*testBlock + 100}, {0, 5*testBlock + 100}} {
		got, err := c.readRange(t.Context(), "obj", r.off, r.n)
		if err != nil {
			t.Fatalf("readRange(%d, %d): %v", r.off, r.n, err)
		}
		if !bytes.Equal(got, data[r.off:r.off+r.n]) {
			t.Fatalf("readRange(%d, %d): wrong bytes", r.off, r.n)
		}
	}
	if _, err := c.readRange(t.Context(), "obj", 5*testBlock+100, 1); !errors.Is(err, objectlog.ErrInvalidRange) {
		t.Errorf("read at the end: %v, want ErrInvalidRange", err)
	}
}

// A reader moving through an object block after block makes the cache read
// ahead: the GET for block 1, with block 0 cached, takes the blocks after
// it too, and the reads of those cost no GET. A read of a block with
// nothing cached before it fetches only what it needs.
func TestCacheReadsAheadForSequentialReaders(t *testing.T) {
	t.Parallel()
	bucket := &countingBucket{Bucket: objectlog.NewMemBucket()}
	size := (readAheadBlocks+4)*testBlock + 10
	data := storedObject(t, bucket, "obj", size)
	c := newBlockCache(bucket, 1<<20, testBlock)
	read := func(off, n int64) {
		t.Helper()
		got, err := c.readRange(t.Context(), "obj", off, n)
		if err != nil || !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("readRange(%d, %d): %v", off, n, err)
		}
	}
	// A lone read in the middle: its block only.
	read(5*testBlock+1, 10)
	if got := bucket.gets.Load(); got != 1 {
		t.Fatalf("%d GETs for one block", got)
	}
	if _, ok := c.blocks[blockID{"obj", 6}]; ok {
		t.Fatal("a lone read read ahead")
	}
	// From the start: block 0, then block 1 reads ahead to block 5, which
	// is cached, and stops there.
	read(0, 100)
	read(testBlock, 100)
	if got := bucket.gets.Load(); got != 3 {
		t.Fatalf("%d GETs after three reads", got)
	}
	for i := int64(2); i <= 4; i++ {
		read(i*testBlock, testBlock)
	}
	if got := bucket.gets.Load(); got != 3 {
		t.Errorf("%d GETs: blocks 2-4 were not read ahead", got)
	}
	// Block 6 follows cached block 5: one GET to the object's end.
	read(6*testBlock, 1)
	read(int64(size)-10, 10)
	if got := bucket.gets.Load(); got != 4 {
		t.Errorf("%d GETs: the read ahead from block 6 did not reach the end", got)
	}
	if _, err := c.readRange(t.Context(), "obj", int64(size), 1); !errors.Is(err, objectlog.ErrInvalidRange) {
		t.Errorf("read at the end: %v", err)
	}
}
