package objectlog

// The minio-go backend (s3://bucket/prefix?endpoint=...): any S3-compatible
// store, MinIO and AWS S3 included.
//
// Create-only is the store's job: every put carries If-None-Match: *. In
// minio-go v7.4.1, PutObjectOptions.SetMatchETagExcept("*") sets exactly that
// header, and PutObject sends the options' headers both on a single-part PUT
// and on the CompleteMultipartUpload of a multipart one. MinIO and S3 check
// the condition at completion, under the object's lock, so create-only holds
// for objects of any size and the multipart path needs no special care.
// minio-go aborts a multipart upload that fails.
//
// minio-go's own retries are switched off (MaxRetries 1); retry.go's policy
// runs instead. A put is retried only when its body can be sent again (see
// putBody). If a retried put finds the key taken, the first attempt may have
// succeeded with its answer lost; each put therefore carries a random token
// in its metadata, and a 412 after a retry is checked against it.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// DefaultPartSize is the part size of multipart uploads. minio-go sizes parts
// for a 5 TiB object when the size is unknown (hundreds of MiB buffered per
// part); 16 MiB keeps a streamed upload's memory small and still allows
// objects up to 160 GiB in 10,000 parts. Segments (8 MiB by default) go up in
// a single PUT.
const DefaultPartSize = 16 << 20

// putTokenMeta names the user metadata that carries a put's token.
const putTokenMeta = "Strata-Put-Token"

// MinioConfig configures a minio-go backend.
type MinioConfig struct {
	// Bucket is the bucket's name (required).
	Bucket string
	// Prefix is prepended to every key; a '/' is added if it lacks one.
	Prefix string
	// Endpoint is host[:port] of the store; default s3.amazonaws.com.
	Endpoint string
	// Insecure talks plain HTTP instead of HTTPS.
	Insecure bool
	// Region is the bucket's region; empty lets minio-go look it up.
	Region string
	// PathStyle forces path-style requests (host/bucket/key) instead of
	// minio-go's choice, for stores whose DNS has no virtual hosts.
	PathStyle bool
	// Credentials, when set, are used as they are; nil means the usual chain:
	// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, MINIO_ROOT_USER/..., the shared
	// credentials file, then IAM (web identity, ECS, EC2 instance role).
	Credentials *StaticCredentials
	// CreateBucket creates the bucket if it does not exist, for tests and dev
	// setups. Production buckets are made by whoever owns their policies.
	CreateBucket bool
	// PartSize is the multipart part size; default DefaultPartSize.
	PartSize uint64
	// Retry bounds retries of transient failures; zero means the defaults.
	Retry RetryPolicy
	// Transport replaces minio-go's default HTTP transport, e.g. for tests
	// that inject network faults.
	Transport http.RoundTripper
}

// MinioBucket is a Bucket on an S3-compatible store, through minio-go.
type MinioBucket struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport // ours to close, nil if the caller's
	bucket    string
	prefix    string
	partSize  uint64
	retry     RetryPolicy
}

var _ Bucket = (*MinioBucket)(nil)

// NewMinioBucket returns a minio-go backend. It talks to the store only when
// cfg.CreateBucket asks it to; otherwise a wrong endpoint or credentials show
// on the first request.
func NewMinioBucket(ctx context.Context, cfg MinioConfig) (*MinioBucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("objectlog: minio bucket: no bucket name")
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	creds := minioCredentialChain()
	if c := cfg.Credentials; c != nil {
		creds = credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	}
	opts := &minio.Options{
		Creds:      creds,
		Secure:     !cfg.Insecure,
		Region:     cfg.Region,
		MaxRetries: 1,
		Transport:  cfg.Transport,
	}
	var own *http.Transport
	if cfg.Transport == nil {
		t, err := minio.DefaultTransport(!cfg.Insecure)
		if err != nil {
			return nil, fmt.Errorf("objectlog: minio bucket: %w", err)
		}
		own, opts.Transport = t, t
	}
	if cfg.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("objectlog: minio bucket %s at %s: %w", cfg.Bucket, endpoint, err)
	}
	b := &MinioBucket{
		client:    client,
		core:      minio.Core{Client: client},
		transport: own,
		bucket:    cfg.Bucket,
		prefix:    normalizePrefix(cfg.Prefix),
		partSize:  cfg.PartSize,
		retry:     cfg.Retry,
	}
	if b.partSize == 0 {
		b.partSize = DefaultPartSize
	}
	if cfg.CreateBucket {
		if err := b.createBucket(ctx, cfg.Region); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// minioCredentialChain is where credentials come from when none are given:
// the environment, the shared file, then the instance's role. Never a URL or
// a flag, which end up in logs and process listings.
func minioCredentialChain() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
}

func (b *MinioBucket) createBucket(ctx context.Context, region string) error {
	err := retry(ctx, b.retry, minioTransient, func(ctx context.Context) error {
		err := b.client.MakeBucket(ctx, b.bucket, minio.MakeBucketOptions{Region: region})
		if minioCode(err) == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	})
	if err != nil {
		return b.mapErr("create bucket", b.bucket, err)
	}
	return nil
}

// minioCode returns the S3 error code of err, or "".
func minioCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// minioTransient classifies minio-go errors for retry.
func minioTransient(err error) bool {
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.StatusCode != 0 || er.Code != "") {
		return transientStatus(er.StatusCode, er.Code)
	}
	return transientTransport(err)
}

// mapErr turns a minio-go error into the package's sentinels, with the key.
func (b *MinioBucket) mapErr(op, key string, err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch {
		case er.Code == "NoSuchBucket":
			return fmt.Errorf("objectlog: %s %s: bucket %s does not exist: %w: %w", op, key, b.bucket, ErrNoBucket, err)
		case er.Code == "NoSuchKey" || er.StatusCode == http.StatusNotFound:
			return fmt.Errorf("objectlog: %s %s: %w", op, key, ErrNotFound)
		case er.Code == "PreconditionFailed" || er.StatusCode == http.StatusPreconditionFailed:
			return fmt.Errorf("objectlog: %s %s: %w", op, key, ErrAlreadyExists)
		case er.Code == "InvalidRange" || er.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			return fmt.Errorf("objectlog: %s %s: %w", op, key, ErrInvalidRange)
		}
	}
	if minioTransient(err) {
		return fmt.Errorf("objectlog: %s %s: %w: %w", op, key, ErrUnavailable, err)
	}
	return fmt.Errorf("objectlog: %s %s: %w", op, key, err)
}

// Get opens the whole object.
func (b *MinioBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.get(ctx, "get", key, minio.GetObjectOptions{})
	return rc, err
}

func (b *MinioBucket) get(ctx context.Context, op, key string, opts minio.GetObjectOptions) (io.ReadCloser, minio.ObjectInfo, error) {
	if key == "" {
		return nil, minio.ObjectInfo{}, fmt.Errorf("objectlog: %s: empty key", op)
	}
	var (
		rc   io.ReadCloser
		info minio.ObjectInfo
	)
	err := retry(ctx, b.retry, minioTransient, func(ctx context.Context) error {
		var err error
		rc, info, _, err = b.core.GetObject(ctx, b.bucket, b.prefix+key, opts)
		return err
	})
	if err != nil {
		return nil, info, b.mapErr(op, key, err)
	}
	return newCtxReadCloser(ctx, rc), info, nil
}

// GetRange opens length bytes from off (to the end if length < 0).
func (b *MinioBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	return s3GetRange(ctx, b, key, off, length, func(off, end int64) (io.ReadCloser, int64, error) {
		var opts minio.GetObjectOptions
		if off > 0 || end >= 0 {
			// minio-go's end 0 means "to the end".
			if err := opts.SetRange(off, max(end, 0)); err != nil {
				return nil, 0, fmt.Errorf("objectlog: get range %s: %w", key, err)
			}
		}
		rc, info, err := b.get(ctx, "get range", key, opts)
		return rc, info.Size, err
	})
}

// Attributes returns the object's size and modification time (one HEAD).
func (b *MinioBucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	if key == "" {
		return Attributes{}, errors.New("objectlog: attributes: empty key")
	}
	info, err := b.stat(ctx, key)
	if err != nil {
		return Attributes{}, b.mapErr("attributes", key, err)
	}
	return Attributes{Size: info.Size, LastModified: info.LastModified}, nil
}

func (b *MinioBucket) stat(ctx context.Context, key string) (minio.ObjectInfo, error) {
	var info minio.ObjectInfo
	err := retry(ctx, b.retry, minioTransient, func(ctx context.Context) error {
		var err error
		info, err = b.client.StatObject(ctx, b.bucket, b.prefix+key, minio.StatObjectOptions{})
		return err
	})
	return info, err
}

// List yields the objects under prefix in lexical order. A listing that
// fails for a transient reason resumes after the last key it yielded, so a
// retry costs one page, not the whole listing.
func (b *MinioBucket) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		fetchOwner := false
		startAfter := ""
		stopped := false
		err := retry(ctx, b.retry, minioTransient, func(ctx context.Context) error {
			opts := minio.ListObjectsOptions{
				Prefix:     b.prefix + prefix,
				Recursive:  true,
				StartAfter: startAfter,
				FetchOwner: &fetchOwner,
			}
			for oi := range b.client.ListObjectsIter(ctx, b.bucket, opts) {
				if oi.Err != nil {
					return oi.Err
				}
				startAfter = oi.Key
				if !yield(ObjectInfo{Key: strings.TrimPrefix(oi.Key, b.prefix), Size: oi.Size, LastModified: oi.LastModified}, nil) {
					stopped = true
					return nil
				}
			}
			// minio-go ends a cancelled listing quietly.
			return ctx.Err()
		})
		if err != nil && !stopped {
			yield(ObjectInfo{}, b.mapErr("list", fmt.Sprintf("%q", prefix), err))
		}
	}
}

// PutIfAbsent uploads the object with If-None-Match: *.
func (b *MinioBucket) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if key == "" {
		return errors.New("objectlog: put: empty key")
	}
	token := rand.Text()
	body := newPutBody(r, size)
	opts := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		PartSize:     b.partSize,
		UserMetadata: map[string]string{putTokenMeta: token},
	}
	opts.SetMatchETagExcept("*")
	attempts := 0
	err := retry(ctx, b.retry, func(err error) bool { return body.retryable() && minioTransient(err) },
		func(ctx context.Context) error {
			if attempts > 0 {
				if err := body.rewind(); err != nil {
					return err
				}
			}
			attempts++
			_, err := b.client.PutObject(ctx, b.bucket, b.prefix+key, body.r, size, opts)
			return err
		})
	if err == nil {
		return nil
	}
	if ferr := body.failure(); ferr != nil {
		return fmt.Errorf("objectlog: put %s: %w", key, ferr)
	}
	if attempts > 1 && (minioCode(err) == "PreconditionFailed" || minioStatus(err) == http.StatusPreconditionFailed) {
		// An earlier attempt may have made the object and lost its answer.
		if info, serr := b.stat(ctx, key); serr == nil && minioMeta(info, putTokenMeta) == token {
			return nil
		}
	}
	return b.mapErr("put", key, err)
}

func minioStatus(err error) int {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// minioMeta returns a user metadata value; header case varies by store.
func minioMeta(info minio.ObjectInfo, name string) string {
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Delete removes the object; a missing one is not an error.
func (b *MinioBucket) Delete(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("objectlog: delete: empty key")
	}
	err := retry(ctx, b.retry, minioTransient, func(ctx context.Context) error {
		return b.client.RemoveObject(ctx, b.bucket, b.prefix+key, minio.RemoveObjectOptions{})
	})
	if err != nil && minioCode(err) != "NoSuchKey" {
		return b.mapErr("delete", key, err)
	}
	return nil
}

// Close drops idle connections of the transport the bucket made.
func (b *MinioBucket) Close() error {
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// normalizePrefix makes a key prefix end in '/' so that "seg" and "segments"
// never share keys; "" stays "".
func normalizePrefix(p string) string {
	p = strings.TrimPrefix(p, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}
