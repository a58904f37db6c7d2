package objectlog

// Small pieces of I/O the Bucket backends share, so that they behave alike at
// the edges: a reader that stops with its context, the checks on ranged-read
// arguments, and a put body that knows whether it can be sent again.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// ctxReadCloser fails reads once ctx is done. A file does not watch a context
// and an HTTP body may still hold buffered bytes after its request was
// cancelled; wrapping both makes "a reader stops with its context" true on
// every backend rather than on most.
type ctxReadCloser struct {
	ctx context.Context
	rc  io.ReadCloser
}

func newCtxReadCloser(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return &ctxReadCloser{ctx: ctx, rc: rc}
}

func (r *ctxReadCloser) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.rc.Read(p)
}

func (r *ctxReadCloser) Close() error { return r.rc.Close() }

// readCloser joins a reader with the closer of what it reads from.
type readCloser struct {
	io.Reader
	io.Closer
}

// checkRangeArgs rejects what no backend can serve: a negative offset.
func checkRangeArgs(key string, off int64) error {
	if off < 0 {
		return fmt.Errorf("objectlog: get range %s: negative offset %d", key, off)
	}
	return nil
}

// rangeEnd returns where a read of length bytes from off stops in an object
// of size bytes (length < 0 meaning to the end), or ErrInvalidRange if off is
// at or past the end.
func rangeEnd(key string, size, off, length int64) (int64, error) {
	if off >= size {
		return 0, fmt.Errorf("objectlog: get range %s: offset %d, size %d: %w", key, off, size, ErrInvalidRange)
	}
	if length < 0 || length > size-off {
		return size, nil
	}
	return off + length, nil
}

// errShortBody is a put whose reader ended before the size it was given.
// It is the caller's mistake, so never retried.
var errShortBody = errors.New("reader ended before the given size")

// putBody is a caller's reader prepared for an upload that may be sent more
// than once. A seekable reader holding at least size more bytes is handed to
// the SDK seekable, so the SDK can seek (and read it in parallel parts)
// instead of copying it, and it is rewound before a retry. If it is also an
// io.ReaderAt it goes as an io.SectionReader of exactly the size bytes from
// its current position: minio-go reads a ReaderAt in parts from offset 0,
// whatever its position. Any other reader is wrapped to count what was
// read: it can be retried only while nothing was.
type putBody struct {
	r      io.Reader
	seeker io.Seeker
	start  int64
	count  *countingReader
}

func newPutBody(r io.Reader, size int64) *putBody {
	if s, ok := r.(io.ReadSeeker); ok && size >= 0 {
		start, err1 := s.Seek(0, io.SeekCurrent)
		end, err2 := s.Seek(0, io.SeekEnd)
		_, err3 := s.Seek(start, io.SeekStart)
		if err1 == nil && err2 == nil && err3 == nil && end-start >= size {
			if ra, ok := r.(io.ReaderAt); ok {
				sr := io.NewSectionReader(ra, start, size)
				return &putBody{r: sr, seeker: sr}
			}
			if end-start == size {
				return &putBody{r: r, seeker: s, start: start}
			}
		}
	}
	c := &countingReader{r: r, size: size}
	return &putBody{r: c, count: c}
}

// rewind makes the body readable from its start again, or says why not.
func (b *putBody) rewind() error {
	if b.seeker != nil {
		_, err := b.seeker.Seek(b.start, io.SeekStart)
		return err
	}
	if b.count.n > 0 || b.count.err != nil {
		return errors.New("objectlog: put body was partly read and cannot be sent again")
	}
	return nil
}

// retryable says whether an attempt that failed may be repeated as far as
// the body goes: not if the caller's reader failed or came up short (the
// store is not at fault) and not if part of it is gone.
func (b *putBody) retryable() bool {
	if b.seeker != nil {
		return true
	}
	return b.count.n == 0 && b.count.err == nil && !b.count.short()
}

// failure returns the reader's own failure, if the put failed because of it.
func (b *putBody) failure() error {
	if b.count == nil {
		return nil
	}
	if b.count.err != nil {
		return b.count.err
	}
	if b.count.short() {
		return fmt.Errorf("%w: read %d of %d bytes", errShortBody, b.count.n, b.count.size)
	}
	return nil
}

// countingReader counts the bytes read and remembers how the reader ended.
type countingReader struct {
	r    io.Reader
	size int64
	n    int64
	eof  bool
	err  error // a failure of the reader itself, not io.EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	switch {
	case err == io.EOF:
		c.eof = true
	case err != nil:
		c.err = err
	}
	return n, err
}

func (c *countingReader) short() bool { return c.eof && c.size >= 0 && c.n < c.size }

// copyBody reads exactly size bytes from r into w (everything, if size < 0),
// checking ctx between chunks so a cancelled put of a large body stops soon.
func copyBody(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	src := r
	if size >= 0 {
		src = io.LimitReader(r, size)
	}
	buf := make([]byte, 256<<10)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return total, rerr
		}
	}
	if size >= 0 && total < size {
		return total, fmt.Errorf("%w: read %d of %d bytes", errShortBody, total, size)
	}
	// The context is checked once more after the last byte: a put whose
	// caller gave up while the body was being read must not appear.
	return total, ctx.Err()
}

// s3GetRange holds what GetRange must work around on S3's HTTP API, for both
// S3 backends: HTTP has no empty range, and "bytes=0-" is not satisfiable on
// an empty object although a plain GET of it succeeds. get fetches bytes
// off..end inclusive, or from off to the end when end < 0 (a plain GET when
// off is 0 as well), and returns the body with its length.
func s3GetRange(ctx context.Context, b BucketReader, key string, off, length int64,
	get func(off, end int64) (io.ReadCloser, int64, error)) (io.ReadCloser, error) {
	if err := checkRangeArgs(key, off); err != nil {
		return nil, err
	}
	if length > math.MaxInt64-off {
		length = -1
	}
	switch {
	case length == 0:
		a, err := b.Attributes(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := rangeEnd(key, a.Size, off, 0); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	case off == 0 && length < 0:
		rc, size, err := get(0, -1)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			rc.Close()
			return nil, fmt.Errorf("objectlog: get range %s: offset 0, size 0: %w", key, ErrInvalidRange)
		}
		return rc, nil
	}
	end := int64(-1)
	if length > 0 {
		end = off + length - 1
	}
	rc, _, err := get(off, end)
	return rc, err
}
