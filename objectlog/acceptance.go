package objectlog

// The acceptance suite every Bucket backend passes. It lives in a normal file
// (not a _test file) so that backends outside this package, and wrappers
// such as FaultyBucket, can run it too.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// AcceptanceTest checks that the buckets newBucket returns behave as Bucket
// says: not-found errors, create-only under a race, ranged reads at the
// edges, a 64 MiB object, listings in lexical order across pages, idempotent
// deletes and cancellation mid-transfer. Subtests run in parallel, each on a
// bucket of its own: newBucket must return an empty one and register its own
// cleanup; the suite closes it.
func AcceptanceTest(t *testing.T, newBucket func(t *testing.T) Bucket) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, b Bucket)
	}{
		{"NotFound", testNotFound},
		{"EmptyKey", testEmptyKey},
		{"PutGet", testPutGet},
		{"ShortBody", testShortBody},
		{"PutExisting", testPutExisting},
		{"CreateOnlyRace", testCreateOnlyRace},
		{"GetRange", testGetRange},
		{"GetRangeEmptyObject", testGetRangeEmptyObject},
		{"Large", testLarge},
		{"List", testList},
		{"ListPaginated", testListPaginated},
		{"Delete", testDelete},
		{"CancelPut", testCancelPut},
		{"CancelGet", testCancelGet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBucket(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, b)
		})
	}
}

// wantIs fails the test unless errors.Is(err, target) and the message
// names key, as every backend's errors must.
func wantIs(t *testing.T, what string, err, target error, key string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	if key != "" && !strings.Contains(err.Error(), key) {
		t.Errorf("%s: error %q does not name the key %q", what, err, key)
	}
}

// opaque hides every method of a reader but Read, so backends cannot seek
// or size it.
type opaque struct{ r io.Reader }

func (o opaque) Read(p []byte) (int, error) { return o.r.Read(p) }

func mustPut(t *testing.T, b Bucket, key string, data []byte) {
	t.Helper()
	if err := b.PutIfAbsent(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("PutIfAbsent(%s): %v", key, err)
	}
}

func readAll(t *testing.T, what string, rc io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("%s: read: %v", what, err)
	}
	return data
}

func mustGet(t *testing.T, b Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	return readAll(t, "Get("+key+")", rc, err)
}

func listAll(t *testing.T, b Bucket, prefix string) []ObjectInfo {
	t.Helper()
	var out []ObjectInfo
	for oi, err := range b.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		out = append(out, oi)
	}
	return out
}

func keysOf(infos []ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, oi := range infos {
		keys[i] = oi.Key
	}
	return keys
}

// pattern returns n bytes that differ by position and by seed, so a read of
// the wrong range or the wrong writer's bytes never looks right. One random
// 64 KiB block is repeated with the position mixed into every 512 bytes:
// random bytes for 64 MiB would take seconds under the race detector.
func pattern(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	block := make([]byte, 64<<10)
	_, _ = rand.NewChaCha8(key).Read(block)
	data := make([]byte, n)
	for off := 0; off < n; off += len(block) {
		copy(data[off:], block)
	}
	for off := 0; off+8 <= n; off += 512 {
		v := binary.LittleEndian.Uint64(data[off:])
		binary.LittleEndian.PutUint64(data[off:], v^uint64(off)*0x9e3779b97f4a7c15)
	}
	return data
}

func testNotFound(t *testing.T, b Bucket) {
	ctx := t.Context()
	const key = "missing/object"
	_, err := b.Get(ctx, key)
	wantIs(t, "Get", err, ErrNotFound, key)
	_, err = b.GetRange(ctx, key, 0, 10)
	wantIs(t, "GetRange", err, ErrNotFound, key)
	_, err = b.GetRange(ctx, key, 5, -1)
	wantIs(t, "GetRange to the end", err, ErrNotFound, key)
	_, err = b.Attributes(ctx, key)
	wantIs(t, "Attributes", err, ErrNotFound, key)
	if err := b.Delete(ctx, key); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
	if got := listAll(t, b, ""); len(got) != 0 {
		t.Errorf("List of an empty bucket: got %v", keysOf(got))
	}
}

func testEmptyKey(t *testing.T, b Bucket) {
	ctx := t.Context()
	if err := b.PutIfAbsent(ctx, "", strings.NewReader("x"), 1); err == nil {
		t.Error("PutIfAbsent with an empty key succeeded")
	}
	if _, err := b.Get(ctx, ""); err == nil {
		t.Error("Get with an empty key succeeded")
	}
	if _, err := b.Attributes(ctx, ""); err == nil {
		t.Error("Attributes with an empty key succeeded")
	}
	if err := b.Delete(ctx, ""); err == nil {
		t.Error("Delete with an empty key succeeded")
	}
	if got := listAll(t, b, ""); len(got) != 0 {
		t.Errorf("after a failed put with an empty key, List got %v", keysOf(got))
	}
}

func testPutGet(t *testing.T, b Bucket) {
	ctx := t.Context()
	before := time.Now()
	data := []byte("hello, strata")
	mustPut(t, b, "obj/small", data)
	if got := mustGet(t, b, "obj/small"); !bytes.Equal(got, data) {
		t.Errorf("Get: got %q, want %q", got, data)
	}
	a, err := b.Attributes(ctx, "obj/small")
	if err != nil {
		t.Fatalf("Attributes: %v", err)
	}
	if a.Size != int64(len(data)) {
		t.Errorf("Attributes: size %d, want %d", a.Size, len(data))
	}
	// Stores keep second (S3) or coarser precision and their own clock:
	// allow slack either way, but not a zero time.
	if a.LastModified.Before(before.Add(-time.Hour)) || a.LastModified.After(time.Now().Add(time.Hour)) {
		t.Errorf("Attributes: LastModified %v, want about %v", a.LastModified, before)
	}

	// An empty object is an object.
	if err := b.PutIfAbsent(ctx, "obj/empty", bytes.NewReader(nil), 0); err != nil {
		t.Fatalf("PutIfAbsent(empty): %v", err)
	}
	if got := mustGet(t, b, "obj/empty"); len(got) != 0 {
		t.Errorf("Get(empty): got %d bytes", len(got))
	}
	if a, err := b.Attributes(ctx, "obj/empty"); err != nil || a.Size != 0 {
		t.Errorf("Attributes(empty): %+v, %v; want size 0", a, err)
	}

	// From the middle of a seekable reader, with more after the size.
	src := bytes.NewReader([]byte("skip:hello, again:more"))
	if _, err := src.Seek(5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := b.PutIfAbsent(ctx, "obj/offset", src, 12); err != nil {
		t.Fatalf("PutIfAbsent(from offset 5): %v", err)
	}
	if got := mustGet(t, b, "obj/offset"); string(got) != "hello, again" {
		t.Errorf("Get(offset): got %q, want %q", got, "hello, again")
	}

	// Size unknown, from a reader that cannot seek.
	unknown := pattern(1, 100_000)
	if err := b.PutIfAbsent(ctx, "obj/unknown-size", opaque{bytes.NewReader(unknown)}, -1); err != nil {
		t.Fatalf("PutIfAbsent(size -1): %v", err)
	}
	if got := mustGet(t, b, "obj/unknown-size"); !bytes.Equal(got, unknown) {
		t.Errorf("Get(unknown-size): got %d bytes, want %d equal ones", len(got), len(unknown))
	}
	if a, err := b.Attributes(ctx, "obj/unknown-size"); err != nil || a.Size != int64(len(unknown)) {
		t.Errorf("Attributes(unknown-size): %+v, %v; want size %d", a, err, len(unknown))
	}
}

func testShortBody(t *testing.T, b Bucket) {
	ctx := t.Context()
	for _, r := range []io.Reader{bytes.NewReader(make([]byte, 10)), opaque{bytes.NewReader(make([]byte, 10))}} {
		err := b.PutIfAbsent(ctx, "obj/short", r, 100)
		if err == nil {
			t.Fatalf("PutIfAbsent of 10 bytes with size 100 (%T) succeeded", r)
		}
		if errors.Is(err, ErrAlreadyExists) {
			t.Fatalf("PutIfAbsent of a short body: got %v", err)
		}
		_, err = b.Attributes(ctx, "obj/short")
		wantIs(t, "Attributes after a short put", err, ErrNotFound, "obj/short")
	}
}

func testPutExisting(t *testing.T, b Bucket) {
	mustPut(t, b, "obj/once", []byte("first"))
	err := b.PutIfAbsent(t.Context(), "obj/once", strings.NewReader("second!"), 7)
	wantIs(t, "second PutIfAbsent", err, ErrAlreadyExists, "obj/once")
	if got := mustGet(t, b, "obj/once"); string(got) != "first" {
		t.Errorf("after a refused put: got %q, want %q", got, "first")
	}
}

func testCreateOnlyRace(t *testing.T, b Bucket) {
	const writers = 32
	const key = "race/segment"
	payloads := make([][]byte, writers)
	for i := range payloads {
		payloads[i] = pattern(uint64(100+i), 256<<10)
	}
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = b.PutIfAbsent(t.Context(), key, bytes.NewReader(payloads[i]), int64(len(payloads[i])))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, ErrAlreadyExists):
			t.Errorf("writer %d: got %v, want ErrAlreadyExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer succeeded: %v", errs)
	}
	if got := mustGet(t, b, key); !bytes.Equal(got, payloads[winner]) {
		t.Errorf("the object does not hold the winner's (%d) bytes whole: got %d bytes", winner, len(got))
	}
}

func testGetRange(t *testing.T, b Bucket) {
	const size = 10_000
	data := pattern(2, size)
	mustPut(t, b, "range/obj", data)
	tests := []struct {
		name        string
		off, length int64
		want        []byte // nil with invalid set
		invalid     bool
	}{
		{"first byte", 0, 1, data[:1], false},
		{"head", 0, 100, data[:100], false},
		{"middle", 4000, 1500, data[4000:5500], false},
		{"last byte", size - 1, 1, data[size-1:], false},
		{"last byte to the end", size - 1, -1, data[size-1:], false},
		{"whole", 0, size, data, false},
		{"whole to the end", 0, -1, data, false},
		{"rest", 6000, -1, data[6000:], false},
		{"past the end is cut", size - 10, 100, data[size-10:], false},
		{"huge length is cut", 1, 1 << 62, data[1:], false},
		{"empty", 500, 0, []byte{}, false},
		{"start at the end", size, 1, nil, true},
		{"start at the end, to the end", size, -1, nil, true},
		{"start at the end, empty", size, 0, nil, true},
		{"start past the end", size + 1000, 10, nil, true},
	}
	for _, tc := range tests {
		rc, err := b.GetRange(t.Context(), "range/obj", tc.off, tc.length)
		if tc.invalid {
			if err == nil {
				rc.Close()
			}
			wantIs(t, tc.name, err, ErrInvalidRange, "range/obj")
			continue
		}
		got := readAll(t, tc.name, rc, err)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: GetRange(%d, %d): got %d bytes, want %d (equal ones)", tc.name, tc.off, tc.length, len(got), len(tc.want))
		}
	}
	if rc, err := b.GetRange(t.Context(), "range/obj", -1, 10); err == nil {
		rc.Close()
		t.Error("GetRange with a negative offset succeeded")
	}
}

func testGetRangeEmptyObject(t *testing.T, b Bucket) {
	mustPut(t, b, "range/empty", nil)
	for _, length := range []int64{-1, 0, 10} {
		rc, err := b.GetRange(t.Context(), "range/empty", 0, length)
		if err == nil {
			rc.Close()
		}
		wantIs(t, fmt.Sprintf("GetRange(0, %d) of an empty object", length), err, ErrInvalidRange, "range/empty")
	}
}

// testLarge puts 64 MiB from a reader that cannot seek (so S3 backends
// stream it in parts) and reads it back by hash, then checks ranged reads
// across the part boundaries S3 backends use.
func testLarge(t *testing.T, b Bucket) {
	ctx := t.Context()
	const size = 64 << 20
	data := pattern(3, size)
	want := sha256.Sum256(data)
	if err := b.PutIfAbsent(ctx, "large/64mib", opaque{bytes.NewReader(data)}, size); err != nil {
		t.Fatalf("PutIfAbsent(64 MiB): %v", err)
	}
	rc, err := b.Get(ctx, "large/64mib")
	if err != nil {
		t.Fatalf("Get(64 MiB): %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil {
		t.Fatalf("Get(64 MiB): read: %v", err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("Get(64 MiB): got %d bytes with another hash", n)
	}
	if a, err := b.Attributes(ctx, "large/64mib"); err != nil || a.Size != size {
		t.Errorf("Attributes(64 MiB): %+v, %v", a, err)
	}
	for _, off := range []int64{16<<20 - 100, 32<<20 - 1, size - 4096} {
		rc, err := b.GetRange(ctx, "large/64mib", off, 4096)
		got := readAll(t, "GetRange(64 MiB)", rc, err)
		if !bytes.Equal(got, data[off:min(off+4096, size)]) {
			t.Errorf("GetRange(64 MiB, %d, 4096): wrong bytes", off)
		}
	}

	// Multipart from the middle of a seekable reader that reads at offsets.
	src := bytes.NewReader(data)
	if _, err := src.Seek(1<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	const offsetSize = 17 << 20
	if err := b.PutIfAbsent(ctx, "large/offset", src, offsetSize); err != nil {
		t.Fatalf("PutIfAbsent(17 MiB from offset 1 MiB): %v", err)
	}
	if got := mustGet(t, b, "large/offset"); !bytes.Equal(got, data[1<<20:1<<20+offsetSize]) {
		t.Errorf("Get(17 MiB from offset 1 MiB): got %d bytes, want %d equal ones", len(got), offsetSize)
	}

	// A body of unknown size longer than any part size in use.
	const unknown = 20<<20 + 1
	if err := b.PutIfAbsent(ctx, "large/unknown", opaque{bytes.NewReader(data[:unknown])}, -1); err != nil {
		t.Fatalf("PutIfAbsent(20 MiB, size -1): %v", err)
	}
	if got := mustGet(t, b, "large/unknown"); !bytes.Equal(got, data[:unknown]) {
		t.Errorf("Get(20 MiB, size -1): got %d bytes, want %d equal ones", len(got), unknown)
	}
}

func testList(t *testing.T, b Bucket) {
	// "a.txt" sorts before "a/b/c" ('.' < '/'): a directory walk would not.
	keys := []string{"b", "a/c", "abc/x", "a/b/d", "a.txt", "a/b/c", "ab"}
	for _, k := range keys {
		mustPut(t, b, k, []byte(k+"!"))
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a.txt", "a/b/c", "a/b/d", "a/c", "ab", "abc/x", "b"}},
		{"a", []string{"a.txt", "a/b/c", "a/b/d", "a/c", "ab", "abc/x"}},
		{"a/", []string{"a/b/c", "a/b/d", "a/c"}},
		{"a/b", []string{"a/b/c", "a/b/d"}},
		{"a/b/", []string{"a/b/c", "a/b/d"}},
		{"a/b/c", []string{"a/b/c"}},
		{"ab", []string{"ab", "abc/x"}},
		{"abc/", []string{"abc/x"}},
		{"zzz", nil},
		{"a/zzz/", nil},
	}
	for _, tc := range tests {
		got := listAll(t, b, tc.prefix)
		if !slices.Equal(keysOf(got), tc.want) {
			t.Errorf("List(%q): got %q, want %q", tc.prefix, keysOf(got), tc.want)
		}
		for _, oi := range got {
			if oi.Size != int64(len(oi.Key)+1) || oi.LastModified.IsZero() {
				t.Errorf("List(%q): %s has size %d and time %v, want size %d and a time", tc.prefix, oi.Key, oi.Size, oi.LastModified, len(oi.Key)+1)
			}
		}
	}
	// Stopping early is allowed and stops.
	n := 0
	for _, err := range b.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 {
		t.Errorf("List with an early break yielded %d entries", n)
	}
}

// testListPaginated writes more keys than one S3 listing page holds (1000).
func testListPaginated(t *testing.T, b Bucket) {
	const n = 1100
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("many/%05d", i)
	}
	keys := make(chan string)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 16 {
		wg.Go(func() {
			for k := range keys {
				if err := b.PutIfAbsent(t.Context(), k, strings.NewReader(k), int64(len(k))); err != nil {
					errs <- fmt.Errorf("PutIfAbsent(%s): %w", k, err)
				}
			}
		})
	}
	for _, k := range append([]string{"manyx", "other/1", "man"}, want...) {
		keys <- k
	}
	close(keys)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := keysOf(listAll(t, b, "many/"))
	if !slices.Equal(got, want) {
		t.Fatalf("List(many/): got %d keys (sorted: %v), want %d in order", len(got), slices.IsSorted(got), n)
	}
	if all := listAll(t, b, ""); len(all) != n+3 {
		t.Errorf("List(\"\"): got %d keys, want %d", len(all), n+3)
	}
}

func testDelete(t *testing.T, b Bucket) {
	ctx := t.Context()
	mustPut(t, b, "d/x/1", []byte("one"))
	mustPut(t, b, "d/x/2", []byte("two"))
	for i := range 2 {
		if err := b.Delete(ctx, "d/x/1"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	_, err := b.Attributes(ctx, "d/x/1")
	wantIs(t, "Attributes after Delete", err, ErrNotFound, "d/x/1")
	_, err = b.Get(ctx, "d/x/1")
	wantIs(t, "Get after Delete", err, ErrNotFound, "d/x/1")
	if got := keysOf(listAll(t, b, "d/")); !slices.Equal(got, []string{"d/x/2"}) {
		t.Errorf("List after Delete: got %q, want [d/x/2]", got)
	}
	if got := mustGet(t, b, "d/x/2"); string(got) != "two" {
		t.Errorf("a sibling of the deleted object: got %q", got)
	}
	// The key is free again.
	mustPut(t, b, "d/x/1", []byte("uno"))
	if got := mustGet(t, b, "d/x/1"); string(got) != "uno" {
		t.Errorf("put after Delete: got %q, want %q", got, "uno")
	}
}

// stallingReader yields its data, then blocks until ctx ends, and then
// reports a clean io.EOF: the backend, not the reader, has to notice that
// the put was cancelled.
type stallingReader struct {
	ctx     context.Context
	data    []byte
	stalled chan struct{}
	once    sync.Once
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	r.once.Do(func() { close(r.stalled) })
	<-r.ctx.Done()
	return 0, io.EOF
}

func testCancelPut(t *testing.T, b Bucket) {
	for _, size := range []int64{4 << 20, -1} {
		key := fmt.Sprintf("cancel/put-%d", size)
		ctx, cancel := context.WithCancel(t.Context())
		r := &stallingReader{ctx: ctx, data: pattern(4, 1<<20), stalled: make(chan struct{})}
		done := make(chan error, 1)
		go func() { done <- b.PutIfAbsent(ctx, key, r, size) }()
		select {
		case <-r.stalled:
		case err := <-done:
			cancel()
			t.Fatalf("size %d: PutIfAbsent returned %v before reading its whole body", size, err)
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatalf("size %d: PutIfAbsent did not read its body", size)
		}
		cancel()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("size %d: PutIfAbsent cancelled mid-body succeeded", size)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("size %d: PutIfAbsent did not return after its context was cancelled", size)
		}
		_, err := b.Attributes(t.Context(), key)
		wantIs(t, fmt.Sprintf("size %d: Attributes after a cancelled put", size), err, ErrNotFound, key)
	}
}

func testCancelGet(t *testing.T, b Bucket) {
	const size = 4 << 20
	mustPut(t, b, "cancel/get", pattern(5, size))
	open := map[string]func(ctx context.Context) (io.ReadCloser, error){
		"Get":      func(ctx context.Context) (io.ReadCloser, error) { return b.Get(ctx, "cancel/get") },
		"GetRange": func(ctx context.Context) (io.ReadCloser, error) { return b.GetRange(ctx, "cancel/get", 1, size-2) },
	}
	for name, open := range open {
		ctx, cancel := context.WithCancel(t.Context())
		rc, err := open(ctx)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 64<<10)); err != nil {
			cancel()
			t.Fatalf("%s: first read: %v", name, err)
		}
		cancel()
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: reading on after cancel: %d bytes, error %v; want context.Canceled", name, n, err)
		}

		if rc, err := open(ctx); err == nil {
			rc.Close()
			t.Errorf("%s with a cancelled context succeeded", name)
		}
	}
}
