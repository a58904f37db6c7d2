package objectlog

// The in-memory backend (memory://): for unit tests that want Bucket
// semantics without a disk or a server. Objects are immutable byte slices, so
// readers share them without copying.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemBucket is a Bucket in memory. Its zero value is not usable; call
// NewMemBucket.
type MemBucket struct {
	mu      sync.RWMutex
	objects map[string]memObject
}

type memObject struct {
	data    []byte
	modTime time.Time
}

var _ Bucket = (*MemBucket)(nil)

// NewMemBucket returns an empty in-memory bucket.
func NewMemBucket() *MemBucket {
	return &MemBucket{objects: make(map[string]memObject)}
}

func (b *MemBucket) lookup(op, key string) (memObject, error) {
	if key == "" {
		return memObject{}, fmt.Errorf("objectlog: %s: empty key", op)
	}
	b.mu.RLock()
	o, ok := b.objects[key]
	b.mu.RUnlock()
	if !ok {
		return memObject{}, fmt.Errorf("objectlog: %s %s: %w", op, key, ErrNotFound)
	}
	return o, nil
}

// Get opens the whole object.
func (b *MemBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objectlog: get %s: %w", key, err)
	}
	o, err := b.lookup("get", key)
	if err != nil {
		return nil, err
	}
	return newCtxReadCloser(ctx, io.NopCloser(bytes.NewReader(o.data))), nil
}

// GetRange opens length bytes from off (to the end if length < 0).
func (b *MemBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := checkRangeArgs(key, off); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objectlog: get range %s: %w", key, err)
	}
	o, err := b.lookup("get range", key)
	if err != nil {
		return nil, err
	}
	end, err := rangeEnd(key, int64(len(o.data)), off, length)
	if err != nil {
		return nil, err
	}
	return newCtxReadCloser(ctx, io.NopCloser(bytes.NewReader(o.data[off:end]))), nil
}

// Attributes returns the object's size and the time it was put.
func (b *MemBucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	if err := ctx.Err(); err != nil {
		return Attributes{}, fmt.Errorf("objectlog: attributes %s: %w", key, err)
	}
	o, err := b.lookup("attributes", key)
	if err != nil {
		return Attributes{}, err
	}
	return Attributes{Size: int64(len(o.data)), LastModified: o.modTime}, nil
}

// List yields the objects under prefix in lexical key order, as they were
// when the listing started.
func (b *MemBucket) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(ObjectInfo{}, fmt.Errorf("objectlog: list %q: %w", prefix, err))
			return
		}
		b.mu.RLock()
		var out []ObjectInfo
		for k, o := range b.objects {
			if strings.HasPrefix(k, prefix) {
				out = append(out, ObjectInfo{Key: k, Size: int64(len(o.data)), LastModified: o.modTime})
			}
		}
		b.mu.RUnlock()
		slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
		for _, oi := range out {
			if !yield(oi, nil) {
				return
			}
		}
	}
}

// PutIfAbsent reads the body whole, then stores it unless the key is taken.
func (b *MemBucket) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if key == "" {
		return errors.New("objectlog: put: empty key")
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size))
	}
	if _, err := copyBody(ctx, &buf, r, size); err != nil {
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok {
		return fmt.Errorf("objectlog: put %s: %w", key, ErrAlreadyExists)
	}
	b.objects[key] = memObject{data: buf.Bytes(), modTime: time.Now()}
	return nil
}

// Delete removes the object.
func (b *MemBucket) Delete(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("objectlog: delete: empty key")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objectlog: delete %s: %w", key, err)
	}
	b.mu.Lock()
	delete(b.objects, key)
	b.mu.Unlock()
	return nil
}

// Close does nothing; the objects stay readable.
func (b *MemBucket) Close() error { return nil }
