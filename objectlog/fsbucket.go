package objectlog

// The filesystem backend (file:///path): a directory standing in for a bucket,
// for `strata dev` and single-machine deployments. Keys map to paths below the
// root, '/' to subdirectories.
//
// Create-only and crash safety come from the filesystem's own atomic
// operations, not from locks: a put writes a temporary file in the object's
// directory, fsyncs it, and hard-links it to the final name. link(2) fails
// with EEXIST when the name is taken, so of two racing puts exactly one
// wins, and a reader sees either no file or the whole, synced one. The
// directory is fsynced afterwards so the new name survives a crash too.
//
// A crash can leave a temporary file behind. Temporary names start with
// fsTempPrefix, which no key segment may start with, so listings never show
// them. RemoveStaleTemps removes those older than a grace period; the
// janitor's orphan pass calls it with --orphan-grace, like any orphan (a
// put still writing touches its temporary file, so it is never that old).
//
// Unlike S3, a directory cannot hold both a key "a" and a key "a/b": the
// second put fails with an error (not ErrAlreadyExists). Strata's key layouts
// never do this.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fsTempPrefix starts the name of every temporary file. Keys whose segments
// start with it are rejected, so it never collides with an object.
const fsTempPrefix = ".strata-tmp-"

// FSBucket is a Bucket in a local directory.
type FSBucket struct {
	root string
}

var _ Bucket = (*FSBucket)(nil)

// NewFSBucket opens the directory dir as a bucket, creating it if needed.
func NewFSBucket(dir string) (*FSBucket, error) {
	if dir == "" {
		return nil, errors.New("objectlog: filesystem bucket: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objectlog: filesystem bucket %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("objectlog: filesystem bucket: %w", err)
	}
	return &FSBucket{root: abs}, nil
}

// Dir returns the bucket's root directory.
func (b *FSBucket) Dir() string { return b.root }

// invalidKeyReason says why the '/'-separated segments of s cannot be a
// key (or the directory part of a listing prefix), or "" if they can.
func invalidKeyReason(s string) string {
	if s == "" {
		return "empty key"
	}
	if strings.HasPrefix(s, "/") {
		return "absolute path"
	}
	if strings.ContainsAny(s, "\x00\\") {
		return "NUL or backslash"
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch {
		case seg == "":
			return "empty segment"
		case seg == "." || seg == "..":
			return "dot segment"
		case strings.HasPrefix(seg, fsTempPrefix):
			return "segment starts with the reserved " + fsTempPrefix
		}
	}
	return ""
}

func (b *FSBucket) path(op, key string) (string, error) {
	if why := invalidKeyReason(key); why != "" {
		return "", fmt.Errorf("objectlog: %s %q: invalid key for a filesystem bucket: %s", op, key, why)
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

// notExist says whether err means there is no file at the path: ENOTDIR
// covers "a/b" where "a" is an object.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// open opens the object's file, or reports ErrNotFound.
func (b *FSBucket) open(op, key string) (*os.File, fs.FileInfo, error) {
	p, err := b.path(op, key)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if notExist(err) {
			return nil, nil, fmt.Errorf("objectlog: %s %s: %w", op, key, ErrNotFound)
		}
		return nil, nil, fmt.Errorf("objectlog: %s %s: %w", op, key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("objectlog: %s %s: %w", op, key, err)
	}
	if !fi.Mode().IsRegular() {
		// A directory is a prefix of other keys, not an object.
		f.Close()
		return nil, nil, fmt.Errorf("objectlog: %s %s: %w", op, key, ErrNotFound)
	}
	return f, fi, nil
}

// Get opens the whole object.
func (b *FSBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objectlog: get %s: %w", key, err)
	}
	f, _, err := b.open("get", key)
	if err != nil {
		return nil, err
	}
	return newCtxReadCloser(ctx, f), nil
}

// GetRange opens length bytes from off (to the end if length < 0).
func (b *FSBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := checkRangeArgs(key, off); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objectlog: get range %s: %w", key, err)
	}
	f, fi, err := b.open("get range", key)
	if err != nil {
		return nil, err
	}
	end, err := rangeEnd(key, fi.Size(), off, length)
	if err != nil {
		f.Close()
		return nil, err
	}
	return newCtxReadCloser(ctx, readCloser{io.NewSectionReader(f, off, end-off), f}), nil
}

// Attributes returns the object's size and modification time.
func (b *FSBucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	if err := ctx.Err(); err != nil {
		return Attributes{}, fmt.Errorf("objectlog: attributes %s: %w", key, err)
	}
	p, err := b.path("attributes", key)
	if err != nil {
		return Attributes{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if notExist(err) {
			return Attributes{}, fmt.Errorf("objectlog: attributes %s: %w", key, ErrNotFound)
		}
		return Attributes{}, fmt.Errorf("objectlog: attributes %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Attributes{}, fmt.Errorf("objectlog: attributes %s: %w", key, ErrNotFound)
	}
	return Attributes{Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// List yields the objects under prefix in lexical key order. It walks the
// directory the prefix names and sorts: a walk alone would put "a/b" before
// "a.txt", which lexical order does not.
func (b *FSBucket) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		infos, err := b.list(ctx, prefix)
		if err != nil {
			yield(ObjectInfo{}, fmt.Errorf("objectlog: list %q: %w", prefix, err))
			return
		}
		for _, oi := range infos {
			if !yield(oi, nil) {
				return
			}
		}
	}
}

func (b *FSBucket) list(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Only the directory part of the prefix (up to its last '/') narrows the
	// walk; the rest is matched against names.
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir := prefix[:i]
		if invalidKeyReason(dir) != "" {
			return nil, nil // no key can start with it
		}
		start = filepath.Join(b.root, filepath.FromSlash(dir))
	}
	var out []ObjectInfo
	visited := 0
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notExist(err) {
				return nil // the prefix names no directory, or a delete raced the walk
			}
			return err
		}
		if visited++; visited%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if p == b.root {
			return nil
		}
		if strings.HasPrefix(d.Name(), fsTempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			sub := key + "/"
			if !strings.HasPrefix(sub, prefix) && !strings.HasPrefix(prefix, sub) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if notExist(err) {
				return nil // deleted since the directory was read
			}
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// PutIfAbsent writes the object, or fails with ErrAlreadyExists.
func (b *FSBucket) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	p, err := b.path("put", key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	dir := filepath.Dir(p)
	tmp, synced, err := b.createTemp(dir)
	if err != nil {
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	// Removing the temporary name is right whether the link was made or not:
	// after a link it is only a second name for the object.
	defer os.Remove(tmp.Name())

	_, err = copyBody(ctx, tmp, r, size)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Last look before the object appears: a put whose caller gave up
		// must leave nothing behind.
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Lstat(p); serr == nil && fi.IsDir() {
				return fmt.Errorf("objectlog: put %s: the name is a directory of other keys", key)
			}
			return fmt.Errorf("objectlog: put %s: %w", key, ErrAlreadyExists)
		}
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	if err := os.Remove(tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	// The object exists from the link on; make its name (and the names of
	// directories made for it) durable before saying so.
	for _, d := range append(synced, dir) {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("objectlog: put %s: sync directory: %w", key, err)
		}
	}
	return nil
}

// createTemp creates a temporary file in dir, creating dir and its parents
// if needed. It returns the parents of the directories it created, whose
// entries must be synced too. A concurrent Delete may prune a directory
// between its creation and the temporary file's, so a missing directory is
// tried again a few times; once the temporary file is in, the directory is
// not empty and nothing prunes it.
func (b *FSBucket) createTemp(dir string) (*os.File, []string, error) {
	var parents []string
	for attempt := 0; ; attempt++ {
		created, err := b.mkdirs(dir)
		for _, c := range created {
			parents = append(parents, filepath.Dir(c))
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && attempt < 10 {
				continue
			}
			return nil, nil, err
		}
		name := filepath.Join(dir, fsTempPrefix+rand.Text())
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			slices.Sort(parents)
			return f, slices.Compact(parents), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return nil, nil, err
		}
	}
}

// mkdirs creates dir and its missing parents below the root, returning the
// directories it created.
func (b *FSBucket) mkdirs(dir string) ([]string, error) {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil, nil
	}
	rel, err := filepath.Rel(b.root, dir)
	if err != nil {
		return nil, err
	}
	var created []string
	cur := b.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, seg)
		err := os.Mkdir(cur, 0o777)
		switch {
		case err == nil:
			created = append(created, cur)
		case errors.Is(err, fs.ErrExist):
			// Made by someone else, or a file: the next step or the
			// temporary file's creation says which.
		default:
			return created, err
		}
	}
	return created, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Delete removes the object and then the directories it leaves empty, so
// that deleted topics do not leave a tree of empty directories behind. A
// delete is not synced: an object that comes back after a crash is an orphan
// the janitor deletes again.
func (b *FSBucket) Delete(ctx context.Context, key string) error {
	p, err := b.path("delete", key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objectlog: delete %s: %w", key, err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if notExist(err) {
			return nil
		}
		return fmt.Errorf("objectlog: delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a prefix of other keys: there is no object by this name
	}
	if err := os.Remove(p); err != nil && !notExist(err) {
		return fmt.Errorf("objectlog: delete %s: %w", key, err)
	}
	for d := filepath.Dir(p); d != b.root && strings.HasPrefix(d, b.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break // not empty (or gone): its parents are not empty either
		}
	}
	return nil
}

// StaleTempRemover is a Bucket whose puts can leave temporary files behind
// when the process dies mid-put (the filesystem backend): invisible to
// List, so no orphan pass finds them, they need their own sweep.
type StaleTempRemover interface {
	// RemoveStaleTemps removes the temporary files under prefix last
	// modified before olderThan and returns how many it removed and their
	// bytes.
	RemoveStaleTemps(ctx context.Context, prefix string, olderThan time.Time) (removed int, bytes int64, err error)
}

var _ StaleTempRemover = (*FSBucket)(nil)

// AsStaleTempRemover returns b, or the bucket it wraps (an Unwrap() Bucket
// method, as FaultyBucket's), that is a StaleTempRemover.
func AsStaleTempRemover(b Bucket) (StaleTempRemover, bool) {
	for b != nil {
		if s, ok := b.(StaleTempRemover); ok {
			return s, true
		}
		u, ok := b.(interface{ Unwrap() Bucket })
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	return nil, false
}

// RemoveStaleTemps implements StaleTempRemover: it walks the directory the
// prefix names (up to its last '/'), as List does.
func (b *FSBucket) RemoveStaleTemps(ctx context.Context, prefix string, olderThan time.Time) (int, int64, error) {
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir := prefix[:i]
		if invalidKeyReason(dir) != "" {
			return 0, 0, nil
		}
		start = filepath.Join(b.root, filepath.FromSlash(dir))
	}
	removed, bytes, visited := 0, int64(0), 0
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if notExist(err) {
				return nil
			}
			return err
		}
		if visited++; visited%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), fsTempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if notExist(err) {
				return nil // its put finished meanwhile
			}
			return err
		}
		if !fi.ModTime().Before(olderThan) {
			return nil
		}
		if err := os.Remove(p); err != nil {
			if notExist(err) {
				return nil
			}
			return err
		}
		removed++
		bytes += fi.Size()
		return nil
	})
	if err != nil {
		return removed, bytes, fmt.Errorf("objectlog: remove stale temporary files under %q: %w", prefix, err)
	}
	return removed, bytes, nil
}

// Close does nothing: the filesystem backend holds no resources.
func (b *FSBucket) Close() error { return nil }
