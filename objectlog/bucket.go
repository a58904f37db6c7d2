package objectlog

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"
)

// Sentinel errors. Backends wrap them with the key (fmt.Errorf("%s: %w", key, ErrNotFound))
// so callers test with errors.Is and people read which object it was.
// ErrUnavailable (retry.go) marks store failures that may pass.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrAlreadyExists: a create-only put found the key taken.
	ErrAlreadyExists = errors.New("object already exists")
	// ErrInvalidRange: a ranged read started at or past the end of the object.
	ErrInvalidRange = errors.New("range not satisfiable")
	// ErrCorrupt: bytes read do not follow their format or fail their checksum.
	ErrCorrupt = errors.New("corrupt data")
	// ErrNoBucket: the S3 bucket itself does not exist (S3's NoSuchBucket):
	// a configuration error, not a missing object.
	ErrNoBucket = errors.New("no such bucket")
)

// Attributes are what a HEAD of an object tells.
type Attributes struct {
	Size         int64
	LastModified time.Time
}

// BucketReader is the read side of an object store.
type BucketReader interface {
	// Get opens the whole object. The caller closes the reader. The reader
	// fails with ctx's error once ctx is done, on every backend.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes from off. A range running past the end is
	// cut at the end; off at or past the end is ErrInvalidRange (so is any
	// range of an empty object); length < 0 means to the end; length 0 is
	// an empty reader. A negative off is an error.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Attributes returns the object's size and modification time.
	Attributes(ctx context.Context, key string) (Attributes, error)
	// List yields the keys under prefix in lexical order, with their attributes.
	// It stops at the first error, which it yields with an empty key.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
}

// ObjectInfo is one entry of a listing.
type ObjectInfo struct {
	Key  string
	Size int64
	// LastModified is when the object was written.
	LastModified time.Time
}

// BucketWriter is the write side. Objects are immutable: there is no overwrite.
type BucketWriter interface {
	// PutIfAbsent writes the object whole under key, or fails with
	// ErrAlreadyExists if the key is taken. size is the number of bytes r
	// yields (-1 if unknown): exactly size bytes are read, and a reader that
	// ends sooner fails the put. Readers never see a partly written object,
	// and a put whose reader fails or whose ctx ends first leaves none. After
	// ErrUnavailable the object may exist all the same (the store took it
	// and the answer was lost): an orphan for the janitor, unless committed.
	// A seekable r (bytes.Reader, os.File) can always be sent again, so the
	// S3 backends can retry a put of one that failed for a transient reason.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// Bucket is an S3-compatible object store, or the filesystem standing in for one.
type Bucket interface {
	BucketReader
	BucketWriter
	// Close releases the backend's resources.
	Close() error
}
