package objectlog_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

func TestBucketFilesystem(t *testing.T) {
	objectlog.AcceptanceTest(t, func(t *testing.T) objectlog.Bucket {
		b, err := objectlog.NewFSBucket(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestBucketMemory(t *testing.T) {
	objectlog.AcceptanceTest(t, func(t *testing.T) objectlog.Bucket { return objectlog.NewMemBucket() })
}

func TestBucketMinio(t *testing.T) {
	s := testenv.MinIO(t)
	objectlog.AcceptanceTest(t, func(t *testing.T) objectlog.Bucket {
		return newMinioBucket(t, s, testBucketName(t), "", nil)
	})
}

func TestBucketAWS(t *testing.T) {
	s := testenv.MinIO(t)
	objectlog.AcceptanceTest(t, func(t *testing.T) objectlog.Bucket {
		return newAWSBucket(t, s, testBucketName(t), "", nil)
	})
}

// testBucketName returns a fresh bucket name and removes that bucket, with
// whatever it holds, when the test ends.
func testBucketName(t testing.TB) string {
	t.Helper()
	name := "strata-test-" + strings.ToLower(rand.Text())
	s := testenv.MinIO(t)
	t.Cleanup(func() {
		c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
		if err != nil {
			t.Logf("cleanup of bucket %s: %v", name, err)
			return
		}
		// t.Context is already cancelled while cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = c.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
		if err != nil && minio.ToErrorResponse(err).Code != "NoSuchBucket" {
			t.Logf("cleanup of bucket %s: %v", name, err)
		}
	})
	return name
}

func staticCreds(s testenv.S3) *objectlog.StaticCredentials {
	return &objectlog.StaticCredentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
}

func newMinioBucket(t testing.TB, s testenv.S3, bucket, prefix string, transport http.RoundTripper) *objectlog.MinioBucket {
	t.Helper()
	b, err := objectlog.NewMinioBucket(t.Context(), objectlog.MinioConfig{
		Bucket:       bucket,
		Prefix:       prefix,
		Endpoint:     s.Endpoint,
		Insecure:     true,
		Credentials:  staticCreds(s),
		CreateBucket: true,
		Transport:    transport,
		Retry:        fastRetry,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newAWSBucket(t testing.TB, s testenv.S3, bucket, prefix string, transport http.RoundTripper) *objectlog.AWSBucket {
	t.Helper()
	cfg := objectlog.AWSConfig{
		Bucket:       bucket,
		Prefix:       prefix,
		Region:       "us-east-1",
		Endpoint:     "http://" + s.Endpoint,
		PathStyle:    true,
		Credentials:  staticCreds(s),
		CreateBucket: true,
		Retry:        fastRetry,
	}
	if transport != nil {
		cfg.HTTPClient = &http.Client{Transport: transport}
	}
	b, err := objectlog.NewAWSBucket(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fastRetry keeps tests of failure paths quick.
var fastRetry = objectlog.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}

type s3Backend struct {
	name string
	open func(t *testing.T, s testenv.S3, bucket, prefix string, transport http.RoundTripper) objectlog.Bucket
}

var s3Backends = []s3Backend{
	{"minio-go", func(t *testing.T, s testenv.S3, bucket, prefix string, tr http.RoundTripper) objectlog.Bucket {
		return newMinioBucket(t, s, bucket, prefix, tr)
	}},
	{"aws-sdk-go-v2", func(t *testing.T, s testenv.S3, bucket, prefix string, tr http.RoundTripper) objectlog.Bucket {
		return newAWSBucket(t, s, bucket, prefix, tr)
	}},
}

// TestBucketS3Prefix checks that a prefix keeps a backend's keys apart and
// that listings and errors speak in keys without it.
func TestBucketS3Prefix(t *testing.T) {
	s := testenv.MinIO(t)
	for _, be := range s3Backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			name := testBucketName(t)
			whole := be.open(t, s, name, "", nil)
			tenant := be.open(t, s, name, "tenant/one", nil)
			ctx := t.Context()
			if err := tenant.PutIfAbsent(ctx, "seg/1", strings.NewReader("x"), 1); err != nil {
				t.Fatal(err)
			}
			if err := whole.PutIfAbsent(ctx, "seg/2", strings.NewReader("y"), 1); err != nil {
				t.Fatal(err)
			}
			if got := listKeys(t, tenant, ""); !slices.Equal(got, []string{"seg/1"}) {
				t.Errorf("prefixed List: got %q, want [seg/1]", got)
			}
			if got := listKeys(t, whole, ""); !slices.Equal(got, []string{"seg/2", "tenant/one/seg/1"}) {
				t.Errorf("unprefixed List: got %q", got)
			}
			_, err := tenant.Get(ctx, "seg/2")
			if !errors.Is(err, objectlog.ErrNotFound) || strings.Contains(err.Error(), "tenant") {
				t.Errorf("prefixed Get of another prefix's key: %v; want ErrNotFound naming the key only", err)
			}
		})
	}
}

func listKeys(t *testing.T, b objectlog.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for oi, err := range b.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

// faultTransport passes requests to MinIO except those its rule picks,
// which get a synthetic failure. It counts the requests the rule matched.
type faultTransport struct {
	base   http.RoundTripper
	method string
	key    string // the request path ends with "/" + key
	fault  func(n int, req *http.Request, base http.RoundTripper) (*http.Response, error)

	mu sync.Mutex
	n  int
}

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != f.method || !strings.HasSuffix(req.URL.Path, "/"+f.key) || req.URL.Query().Has("uploads") {
		return f.base.RoundTrip(req)
	}
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	return f.fault(n, req, f.base)
}

func (f *faultTransport) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func closeBody(req *http.Request, drain bool) {
	if req.Body != nil {
		if drain {
			_, _ = io.Copy(io.Discard, req.Body)
		}
		req.Body.Close()
	}
}

func s3ErrorResponse(req *http.Request, status int, code string) *http.Response {
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>injected</Message><RequestId>test</RequestId></Error>`
	return &http.Response{
		Status:        http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/xml"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

var errReset = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}

// firstN fails the first n matching requests with status and code (status
// 0: a connection reset), then lets them through.
func firstN(n, status int, code string) func(int, *http.Request, http.RoundTripper) (*http.Response, error) {
	return func(i int, req *http.Request, base http.RoundTripper) (*http.Response, error) {
		if i > n {
			return base.RoundTrip(req)
		}
		closeBody(req, false)
		if status == 0 {
			return nil, errReset
		}
		return s3ErrorResponse(req, status, code), nil
	}
}

// TestBucketS3Retries drives both S3 backends through transient and
// permanent failures injected below the SDK, against the real MinIO.
func TestBucketS3Retries(t *testing.T) {
	s := testenv.MinIO(t)
	for _, be := range s3Backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			name := testBucketName(t)
			open := func(t *testing.T, ft *faultTransport) objectlog.Bucket {
				ft.base = http.DefaultTransport.(*http.Transport).Clone()
				return be.open(t, s, name, "", ft)
			}
			ctx := t.Context()

			t.Run("put through SlowDown", func(t *testing.T) {
				ft := &faultTransport{method: http.MethodPut, key: "slow", fault: firstN(2, 503, "SlowDown")}
				b := open(t, ft)
				if err := b.PutIfAbsent(ctx, "slow", bytes.NewReader([]byte("data")), 4); err != nil {
					t.Fatalf("PutIfAbsent: %v", err)
				}
				if ft.count() != 3 {
					t.Errorf("PUT requests: got %d, want 3", ft.count())
				}
				if got := readObject(t, b, "slow"); got != "data" {
					t.Errorf("Get: got %q", got)
				}
			})

			t.Run("get through resets", func(t *testing.T) {
				ft := &faultTransport{method: http.MethodGet, key: "reset", fault: firstN(2, 0, "")}
				b := open(t, ft)
				if err := b.PutIfAbsent(ctx, "reset", strings.NewReader("data"), 4); err != nil {
					t.Fatal(err)
				}
				if got := readObject(t, b, "reset"); got != "data" {
					t.Errorf("Get: got %q", got)
				}
				if ft.count() != 3 {
					t.Errorf("GET requests: got %d, want 3", ft.count())
				}
			})

			t.Run("attempts are bounded", func(t *testing.T) {
				ft := &faultTransport{method: http.MethodHead, key: "down", fault: firstN(1000, 503, "ServiceUnavailable")}
				b := open(t, ft)
				_, err := b.Attributes(ctx, "down")
				if !errors.Is(err, objectlog.ErrUnavailable) || errors.Is(err, objectlog.ErrNotFound) {
					t.Errorf("Attributes of an unavailable store: %v; want ErrUnavailable", err)
				}
				if ft.count() != fastRetry.MaxAttempts {
					t.Errorf("HEAD requests: got %d, want %d", ft.count(), fastRetry.MaxAttempts)
				}
			})

			t.Run("4xx is not retried", func(t *testing.T) {
				ft := &faultTransport{method: http.MethodDelete, key: "denied", fault: firstN(1000, 403, "AccessDenied")}
				b := open(t, ft)
				err := b.Delete(ctx, "denied")
				if err == nil || errors.Is(err, objectlog.ErrUnavailable) {
					t.Errorf("Delete denied: %v; want a permanent error", err)
				}
				if ft.count() != 1 {
					t.Errorf("DELETE requests: got %d, want 1", ft.count())
				}
			})

			t.Run("lost answer", func(t *testing.T) {
				// The first PUT reaches MinIO and stores the object, but its
				// answer is lost; the retry meets the object and must know
				// it as its own.
				ft := &faultTransport{method: http.MethodPut, key: "lost", fault: func(i int, req *http.Request, base http.RoundTripper) (*http.Response, error) {
					resp, err := base.RoundTrip(req)
					if i == 1 && err == nil {
						resp.Body.Close()
						return nil, errReset
					}
					return resp, err
				}}
				b := open(t, ft)
				if err := b.PutIfAbsent(ctx, "lost", bytes.NewReader([]byte("mine")), 4); err != nil {
					t.Fatalf("PutIfAbsent after a lost answer: %v", err)
				}
				if ft.count() != 2 {
					t.Errorf("PUT requests: got %d, want 2", ft.count())
				}
				// Someone else's put of the same key still loses.
				err := b.PutIfAbsent(ctx, "lost", bytes.NewReader([]byte("other")), 5)
				if !errors.Is(err, objectlog.ErrAlreadyExists) {
					t.Errorf("a second writer: %v; want ErrAlreadyExists", err)
				}
				if got := readObject(t, b, "lost"); got != "mine" {
					t.Errorf("Get: got %q", got)
				}
			})
		})
	}
}

// TestBucketMinioConsumedBodyNotResent checks that a put whose body cannot
// seek is not sent again once the store has read part of it: the bytes are
// gone, and a retry would upload something else.
func TestBucketMinioConsumedBodyNotResent(t *testing.T) {
	s := testenv.MinIO(t)
	ft := &faultTransport{base: http.DefaultTransport.(*http.Transport).Clone(), method: http.MethodPut, key: "consumed",
		fault: func(_ int, req *http.Request, _ http.RoundTripper) (*http.Response, error) {
			closeBody(req, true)
			return s3ErrorResponse(req, 503, "SlowDown"), nil
		}}
	b := newMinioBucket(t, s, testBucketName(t), "", ft)
	err := b.PutIfAbsent(t.Context(), "consumed", io.MultiReader(strings.NewReader("data")), 4)
	if !errors.Is(err, objectlog.ErrUnavailable) {
		t.Errorf("PutIfAbsent: %v; want ErrUnavailable", err)
	}
	if ft.count() != 1 {
		t.Errorf("PUT requests: got %d, want 1", ft.count())
	}
}

func readObject(t *testing.T, b objectlog.Bucket, key string) string {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): read: %v", key, err)
	}
	return string(data)
}

// TestBucketFilesystemLayout checks what the filesystem backend promises
// beyond Bucket: keys are paths under the root (tools read them there),
// invalid keys are refused, temporary files never show, and emptied
// directories go away.
func TestBucketFilesystemLayout(t *testing.T) {
	dir := t.TempDir()
	b, err := objectlog.NewFSBucket(filepath.Join(dir, "not", "yet"))
	if err != nil {
		t.Fatal(err)
	}
	root := b.Dir()
	ctx := t.Context()

	if err := b.PutIfAbsent(ctx, "archive/t/partition=0/0-9.parquet", strings.NewReader("PAR1"), 4); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "archive", "t", "partition=0", "0-9.parquet"))
	if err != nil || string(got) != "PAR1" {
		t.Errorf("object file: %q, %v", got, err)
	}

	for _, key := range []string{"", "/abs", "../x", "a/../b", "a/./b", "a//b", "a/", objectlog.FSTempPrefix + "x", "a/" + objectlog.FSTempPrefix + "y", "a\\b"} {
		if err := b.PutIfAbsent(ctx, key, strings.NewReader("x"), 1); err == nil {
			t.Errorf("PutIfAbsent(%q) succeeded", key)
		}
		if _, err := b.Get(ctx, key); err == nil || errors.Is(err, objectlog.ErrNotFound) {
			t.Errorf("Get(%q): %v; want an invalid-key error", key, err)
		}
		if err := b.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q) succeeded", key)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key with .. escaped the root: %v", err)
	}

	// Leftovers of a crash mid-put.
	for _, p := range []string{objectlog.FSTempPrefix + "1", "archive/" + objectlog.FSTempPrefix + "2"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := listKeys(t, b, ""); !slices.Equal(got, []string{"archive/t/partition=0/0-9.parquet"}) {
		t.Errorf("List shows temporary files: %q", got)
	}

	// "a" cannot be both an object and a directory of objects.
	if err := b.PutIfAbsent(ctx, "archive", strings.NewReader("x"), 1); err == nil || errors.Is(err, objectlog.ErrAlreadyExists) {
		t.Errorf("PutIfAbsent over a directory: %v; want an error other than ErrAlreadyExists", err)
	}
	if _, err := b.Attributes(ctx, "archive"); !errors.Is(err, objectlog.ErrNotFound) {
		t.Errorf("Attributes of a directory: %v; want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "archive"); err != nil {
		t.Errorf("Delete of a directory name: %v", err)
	}

	if err := b.Delete(ctx, "archive/t/partition=0/0-9.parquet"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "archive", "t")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied directories were left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "archive")); err != nil {
		t.Errorf("a directory with a file in it was removed: %v", err)
	}
}

// TestBucketFilesystemPutDeleteRace races puts into a directory with
// deletes that prune it: every put must land.
func TestBucketFilesystemPutDeleteRace(t *testing.T) {
	b, err := objectlog.NewFSBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				key := "dir/sub/" + string(rune('a'+i)) + "-" + string(rune('a'+j%26)) + string(rune('a'+j/26))
				if err := b.PutIfAbsent(ctx, key, strings.NewReader("x"), 1); err != nil {
					t.Errorf("PutIfAbsent(%s): %v", key, err)
					return
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Errorf("Delete(%s): %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := listKeys(t, b, ""); len(got) != 0 {
		t.Errorf("after put+delete of every key, List: %q", got)
	}
}

// failingReader yields n bytes, then fails with err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

// TestBucketS3FailedMultipartAborted checks that a multipart upload whose
// body fails halfway reports the body's error, stores nothing, and leaves
// no incomplete upload (whose parts a store would keep, and bill).
func TestBucketS3FailedMultipartAborted(t *testing.T) {
	s := testenv.MinIO(t)
	const partSize = 5 << 20 // S3's smallest
	errBody := errors.New("the body's source failed")
	open := map[string]func(t *testing.T, bucket string) objectlog.Bucket{
		"minio-go": func(t *testing.T, bucket string) objectlog.Bucket {
			b, err := objectlog.NewMinioBucket(t.Context(), objectlog.MinioConfig{Bucket: bucket, Endpoint: s.Endpoint, Insecure: true,
				Credentials: staticCreds(s), CreateBucket: true, PartSize: partSize})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"aws-sdk-go-v2": func(t *testing.T, bucket string) objectlog.Bucket {
			b, err := objectlog.NewAWSBucket(t.Context(), objectlog.AWSConfig{Bucket: bucket, Endpoint: "http://" + s.Endpoint, PathStyle: true,
				Region: "us-east-1", Credentials: staticCreds(s), CreateBucket: true, PartSize: partSize})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bucket := testBucketName(t)
			b := open(t, bucket)
			for _, size := range []int64{-1, 3 * partSize} {
				key := fmt.Sprintf("failing-%d", size)
				err := b.PutIfAbsent(t.Context(), key, &failingReader{n: 2*partSize + 100, err: errBody}, size)
				if !errors.Is(err, errBody) {
					t.Errorf("size %d: PutIfAbsent: %v; want the body's error", size, err)
				}
				if _, err := b.Attributes(t.Context(), key); !errors.Is(err, objectlog.ErrNotFound) {
					t.Errorf("size %d: Attributes after a failed put: %v", size, err)
				}
			}
			core, err := minio.NewCore(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
			if err != nil {
				t.Fatal(err)
			}
			uploads, err := core.ListMultipartUploads(t.Context(), bucket, "", "", "", "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(uploads.Uploads) != 0 {
				t.Errorf("incomplete uploads left behind: %+v", uploads.Uploads)
			}
		})
	}
}

// TestBucketFilesystemRemoveStaleTemps: the temporary files a crash left
// under the prefix are removed once older than the cutoff; newer ones (a
// put may still be writing), those under other prefixes and the objects
// stay.
func TestBucketFilesystemRemoveStaleTemps(t *testing.T) {
	t.Parallel()
	b, err := objectlog.NewFSBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	root := b.Dir()
	if err := b.PutIfAbsent(ctx, "segments/a.seg", strings.NewReader("seg"), 3); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	files := map[string]bool{ // path -> removed
		"segments/" + objectlog.FSTempPrefix + "old":     true,
		"segments/sub/" + objectlog.FSTempPrefix + "old": true,
		"segments/" + objectlog.FSTempPrefix + "new":     false,
		"archive/" + objectlog.FSTempPrefix + "old":      false,
		"segments/a.seg": false,
		"segments/" + strings.TrimPrefix(objectlog.FSTempPrefix, ".") + "x": false,
	}
	for p := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if p != "segments/a.seg" {
			if err := os.WriteFile(full, []byte("partial"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.HasSuffix(p, "new") {
			if err := os.Chtimes(full, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, size, err := b.RemoveStaleTemps(ctx, "segments/", time.Now().Add(-time.Hour))
	if err != nil || n != 2 || size != 2*int64(len("partial")) {
		t.Fatalf("RemoveStaleTemps: %d files, %d bytes, %v; want 2 files, %d bytes", n, size, err, 2*len("partial"))
	}
	for p, removed := range files {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
		if gone := errors.Is(err, os.ErrNotExist); gone != removed {
			t.Errorf("%s: removed %v, want %v (%v)", p, gone, removed, err)
		}
	}
	if s, ok := objectlog.AsStaleTempRemover(objectlog.NewFaultyBucket(b)); !ok || s != b {
		t.Errorf("AsStaleTempRemover does not find the filesystem bucket under a FaultyBucket")
	}
	if _, ok := objectlog.AsStaleTempRemover(objectlog.NewMemBucket()); ok {
		t.Errorf("AsStaleTempRemover says a memory bucket has temporary files")
	}
}
