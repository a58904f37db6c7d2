package objectlog

// FaultyBucket wraps any Bucket and makes chosen calls go wrong: fail, wait,
// cut data short, or fail after the work was done (a lost answer). It is how
// tests of the agent show what happens when the store misbehaves, without a
// store that can be told to misbehave. Rules are added and removed while the
// bucket is in use.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Op is a set of Bucket operations, for choosing which calls a Fault hits.
type Op uint8

// The operations of a Bucket.
const (
	OpGet Op = 1 << iota
	OpGetRange
	OpAttributes
	OpList
	OpPut
	OpDelete

	// OpRead is every operation that reads.
	OpRead = OpGet | OpGetRange | OpAttributes | OpList
	// OpAll is every operation.
	OpAll = OpRead | OpPut | OpDelete
)

var opNames = []string{"get", "get range", "attributes", "list", "put", "delete"}

func (o Op) String() string {
	var names []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Fault says which calls of a FaultyBucket go wrong, and how. A call is hit
// when it matches Ops, Key and Prefix and its number among matching calls is
// in the window Nth and Times describe.
type Fault struct {
	// Ops are the operations hit; 0 means all.
	Ops Op
	// Key is a path.Match pattern the key must match; "" matches any. For
	// List the key is the prefix listed.
	Key string
	// Prefix is a prefix the key must have.
	Prefix string
	// Nth is the first matching call hit, counting from 1; 0 means the
	// first. With Nth set and Times 0, only the Nth call is hit.
	Nth int
	// Times is how many calls are hit from the Nth on; 0 means all of them
	// (only the Nth one if Nth is set).
	Times int

	// Delay holds the call this long before it goes on (or fails). A call
	// whose context ends first fails with the context's error.
	Delay time.Duration
	// Err fails the call: before it reaches the wrapped bucket, or, with
	// After, once the wrapped bucket has done it. With Truncate, Err is how
	// the truncated stream ends instead of io.ErrUnexpectedEOF.
	Err error
	// After lets the call through and then fails it with Err: the store did
	// the work and the answer was lost. A put is stored; a reader returned
	// by a get is closed.
	After bool
	// Truncate cuts data short after TruncateAt bytes: readers from Get and
	// GetRange yield that many bytes then fail; a put reads that many bytes
	// of its body, stores nothing and fails; a listing yields TruncateAt
	// entries then fails. Attributes and Delete ignore it.
	Truncate   bool
	TruncateAt int64
}

// Injection is a Fault added to a FaultyBucket.
type Injection struct {
	bucket *FaultyBucket
	fault  Fault
	seen   int // matching calls so far
	fired  int // calls hit so far
}

// Remove takes the fault out; calls in flight keep what they got.
func (in *Injection) Remove() {
	b := in.bucket
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rules = slices.DeleteFunc(b.rules, func(r *Injection) bool { return r == in })
}

// Fired returns how many calls the fault has hit.
func (in *Injection) Fired() int {
	in.bucket.mu.Lock()
	defer in.bucket.mu.Unlock()
	return in.fired
}

// FaultyBucket is a Bucket that passes calls to another one, except those
// its faults hit. It is safe for concurrent use.
type FaultyBucket struct {
	inner Bucket
	mu    sync.Mutex
	rules []*Injection
}

var _ Bucket = (*FaultyBucket)(nil)

// NewFaultyBucket wraps inner, with no faults yet.
func NewFaultyBucket(inner Bucket) *FaultyBucket { return &FaultyBucket{inner: inner} }

// Inject adds a fault. When several faults hit a call, the one added first
// applies; every matching fault counts the call, so each one's Nth means
// what it says whatever the others do.
func (b *FaultyBucket) Inject(f Fault) *Injection {
	in := &Injection{bucket: b, fault: f}
	b.mu.Lock()
	b.rules = append(b.rules, in)
	b.mu.Unlock()
	return in
}

// Clear removes every fault.
func (b *FaultyBucket) Clear() {
	b.mu.Lock()
	b.rules = nil
	b.mu.Unlock()
}

// Unwrap returns the wrapped bucket.
func (b *FaultyBucket) Unwrap() Bucket { return b.inner }

func (f *Fault) matches(op Op, key string) bool {
	if f.Ops != 0 && f.Ops&op == 0 {
		return false
	}
	if f.Prefix != "" && !strings.HasPrefix(key, f.Prefix) {
		return false
	}
	if f.Key != "" {
		if ok, err := path.Match(f.Key, key); err != nil || !ok {
			return false
		}
	}
	return true
}

// hits returns the fault that applies to this call, if any.
func (b *FaultyBucket) hits(op Op, key string) *Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	var hit *Fault
	for _, in := range b.rules {
		if !in.fault.matches(op, key) {
			continue
		}
		in.seen++
		first, times := max(in.fault.Nth, 1), in.fault.Times
		if times == 0 && in.fault.Nth > 0 {
			times = 1
		}
		if in.seen < first || (times > 0 && in.seen >= first+times) || hit != nil {
			continue
		}
		in.fired++
		f := in.fault
		hit = &f
	}
	return hit
}

func injected(op Op, key string, err error) error {
	return fmt.Errorf("objectlog: injected fault: %s %s: %w", op, key, err)
}

// before applies the part of a fault that comes before the call: the delay
// and, unless After, the error. A nil fault is no fault.
func (f *Fault) before(ctx context.Context, op Op, key string) error {
	if f == nil {
		return nil
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return injected(op, key, ctx.Err())
		case <-t.C:
		}
	}
	if f.Err != nil && !f.After && !f.Truncate {
		return injected(op, key, f.Err)
	}
	return nil
}

// after returns the error a fault with After gives a call that went through.
func (f *Fault) after(op Op, key string) error {
	if f != nil && f.After && f.Err != nil && !f.Truncate {
		return injected(op, key, f.Err)
	}
	return nil
}

func (f *Fault) truncErr(op Op, key string) error {
	if f.Err != nil {
		return injected(op, key, f.Err)
	}
	return injected(op, key, io.ErrUnexpectedEOF)
}

func (b *FaultyBucket) read(ctx context.Context, op Op, key string, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	f := b.hits(op, key)
	if err := f.before(ctx, op, key); err != nil {
		return nil, err
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	if err := f.after(op, key); err != nil {
		rc.Close()
		return nil, err
	}
	if f != nil && f.Truncate {
		return &truncatedReader{rc: rc, left: f.TruncateAt, err: f.truncErr(op, key)}, nil
	}
	return rc, nil
}

// Get opens the whole object, unless a fault says otherwise.
func (b *FaultyBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return b.read(ctx, OpGet, key, func() (io.ReadCloser, error) { return b.inner.Get(ctx, key) })
}

// GetRange opens part of the object, unless a fault says otherwise.
func (b *FaultyBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	return b.read(ctx, OpGetRange, key, func() (io.ReadCloser, error) { return b.inner.GetRange(ctx, key, off, length) })
}

// Attributes returns the object's attributes, unless a fault says otherwise.
func (b *FaultyBucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	f := b.hits(OpAttributes, key)
	if err := f.before(ctx, OpAttributes, key); err != nil {
		return Attributes{}, err
	}
	a, err := b.inner.Attributes(ctx, key)
	if err != nil {
		return a, err
	}
	if err := f.after(OpAttributes, key); err != nil {
		return Attributes{}, err
	}
	return a, nil
}

// List lists the objects under prefix, unless a fault says otherwise.
func (b *FaultyBucket) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		f := b.hits(OpList, prefix)
		if err := f.before(ctx, OpList, prefix); err != nil {
			yield(ObjectInfo{}, err)
			return
		}
		n := int64(0)
		for oi, err := range b.inner.List(ctx, prefix) {
			if err == nil && f != nil && f.Truncate && n == f.TruncateAt {
				yield(ObjectInfo{}, f.truncErr(OpList, prefix))
				return
			}
			n++
			if !yield(oi, err) || err != nil {
				return
			}
		}
		if err := f.after(OpList, prefix); err != nil {
			yield(ObjectInfo{}, err)
		}
	}
}

// PutIfAbsent stores the object, unless a fault says otherwise.
func (b *FaultyBucket) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	f := b.hits(OpPut, key)
	if err := f.before(ctx, OpPut, key); err != nil {
		return err
	}
	if f != nil && f.Truncate {
		// The connection broke partway through the body: the store never
		// got a whole object, so it keeps nothing.
		if _, err := io.CopyN(io.Discard, r, f.TruncateAt); err != nil && !errors.Is(err, io.EOF) {
			return injected(OpPut, key, err)
		}
		return f.truncErr(OpPut, key)
	}
	if err := b.inner.PutIfAbsent(ctx, key, r, size); err != nil {
		return err
	}
	return f.after(OpPut, key)
}

// Delete removes the object, unless a fault says otherwise.
func (b *FaultyBucket) Delete(ctx context.Context, key string) error {
	f := b.hits(OpDelete, key)
	if err := f.before(ctx, OpDelete, key); err != nil {
		return err
	}
	if err := b.inner.Delete(ctx, key); err != nil {
		return err
	}
	return f.after(OpDelete, key)
}

// Close closes the wrapped bucket.
func (b *FaultyBucket) Close() error { return b.inner.Close() }

// truncatedReader yields left bytes, then err.
type truncatedReader struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (r *truncatedReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	if err == io.EOF {
		// The object was shorter than the cut: it ends as it is.
		return n, io.EOF
	}
	return n, err
}

func (r *truncatedReader) Close() error { return r.rc.Close() }
