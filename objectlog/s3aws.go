package objectlog

// The aws-sdk-go-v2 backend (s3+aws://bucket/prefix?region=...): for AWS S3
// with AWS's own credential chain (environment, shared profile, web identity
// as in EKS IRSA, ECS, EC2 instance role), and for any S3-compatible store
// through endpoint= and path_style=.
//
// Create-only: PutObject and CompleteMultipartUpload carry IfNoneMatch "*".
// The SDK's retryer is replaced by aws.NopRetryer and retry.go's policy runs
// instead, as in the minio-go backend, with the same put-token check after a
// retried put finds its key taken.
//
// Uploads: the SDK needs a seekable body of known length to sign a request
// over plain HTTP, and S3 needs a Content-Length. A seekable body whose size
// is known and at most one part goes up as it is. Anything else is read one
// part at a time into a buffer: a body that fits in one part becomes one
// PutObject; a longer one a multipart upload with up to PartConcurrency parts
// in flight, so memory stays at PartSize x PartConcurrency whatever the size,
// and each part (a buffer) can be retried on its own.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// AWSConfig configures an aws-sdk-go-v2 backend.
type AWSConfig struct {
	// Bucket is the bucket's name (required).
	Bucket string
	// Prefix is prepended to every key; a '/' is added if it lacks one.
	Prefix string
	// Region is the bucket's region; empty means the SDK's (AWS_REGION, the
	// profile), else us-east-1.
	Region string
	// Endpoint is the store's base URL (http://host:port) for S3-compatible
	// stores; empty means AWS.
	Endpoint string
	// PathStyle addresses buckets as host/bucket instead of bucket.host;
	// MinIO and most self-hosted stores need it.
	PathStyle bool
	// Credentials, when set, are used as they are; nil means the SDK's
	// default chain.
	Credentials *StaticCredentials
	// CreateBucket creates the bucket if it does not exist, for tests and dev
	// setups.
	CreateBucket bool
	// PartSize is the multipart part size; default DefaultPartSize.
	PartSize int64
	// PartConcurrency is how many parts upload at once; default 4.
	PartConcurrency int
	// Retry bounds retries of transient failures; zero means the defaults.
	Retry RetryPolicy
	// HTTPClient replaces the SDK's HTTP client, e.g. for fault injection.
	// Its TLS configuration is its own: AWS_CA_BUNDLE does not apply to it.
	HTTPClient *http.Client
}

// AWSBucket is a Bucket on S3 through aws-sdk-go-v2.
type AWSBucket struct {
	client      *s3.Client
	bucket      string
	prefix      string
	partSize    int64
	concurrency int
	retry       RetryPolicy
}

var _ Bucket = (*AWSBucket)(nil)

// NewAWSBucket returns an aws-sdk-go-v2 backend. Loading the default
// configuration reads the environment and the shared files but talks to no
// server; the store is first contacted by cfg.CreateBucket or the first
// request.
func NewAWSBucket(ctx context.Context, cfg AWSConfig) (*AWSBucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("objectlog: aws bucket: no bucket name")
	}
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if cfg.Region != "" {
		load = append(load, config.WithRegion(cfg.Region))
	}
	if c := cfg.Credentials; c != nil {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("objectlog: aws bucket %s: load configuration: %w", cfg.Bucket, err)
	}
	if cfg.HTTPClient != nil {
		// Set after loading: given to LoadDefaultConfig, a plain
		// *http.Client fails when AWS_CA_BUNDLE is set, since the SDK
		// cannot add the bundle to it. A caller's client brings its own
		// TLS configuration.
		awsCfg.HTTPClient = cfg.HTTPClient
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Multipart objects carry composite checksums, which the SDK
		// cannot check on a GET and says so in a log line each time.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	b := &AWSBucket{
		client:      client,
		bucket:      cfg.Bucket,
		prefix:      normalizePrefix(cfg.Prefix),
		partSize:    cfg.PartSize,
		concurrency: cfg.PartConcurrency,
		retry:       cfg.Retry,
	}
	if b.partSize <= 0 {
		b.partSize = DefaultPartSize
	}
	if b.concurrency <= 0 {
		b.concurrency = 4
	}
	if cfg.CreateBucket {
		if err := b.createBucket(ctx, awsCfg.Region); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *AWSBucket) createBucket(ctx context.Context, region string) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(b.bucket)}
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		_, err := b.client.CreateBucket(ctx, in)
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		return err
	})
	if err != nil {
		return b.mapErr("create bucket", b.bucket, err)
	}
	return nil
}

// awsStatus returns the HTTP status and S3 error code of err, where known.
func awsStatus(err error) (status int, code string) {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// awsTransient classifies aws-sdk-go-v2 errors for retry.
func awsTransient(err error) bool {
	if status, code := awsStatus(err); status != 0 || code != "" {
		return transientStatus(status, code)
	}
	return transientTransport(err)
}

// mapErr turns an aws-sdk-go-v2 error into the package's sentinels.
func (b *AWSBucket) mapErr(op, key string, err error) error {
	status, code := awsStatus(err)
	var (
		noKey    *types.NoSuchKey
		notFound *types.NotFound
	)
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("objectlog: %s %s: bucket %s does not exist: %w: %w", op, key, b.bucket, ErrNoBucket, err)
	case errors.As(err, &noKey), errors.As(err, &notFound), code == "NoSuchKey", status == http.StatusNotFound:
		return fmt.Errorf("objectlog: %s %s: %w", op, key, ErrNotFound)
	case code == "PreconditionFailed", status == http.StatusPreconditionFailed:
		return fmt.Errorf("objectlog: %s %s: %w", op, key, ErrAlreadyExists)
	case code == "InvalidRange", status == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("objectlog: %s %s: %w", op, key, ErrInvalidRange)
	}
	if awsTransient(err) {
		return fmt.Errorf("objectlog: %s %s: %w: %w", op, key, ErrUnavailable, err)
	}
	return fmt.Errorf("objectlog: %s %s: %w", op, key, err)
}

func (b *AWSBucket) get(ctx context.Context, op, key string, rng *string) (*s3.GetObjectOutput, error) {
	if key == "" {
		return nil, fmt.Errorf("objectlog: %s: empty key", op)
	}
	var out *s3.GetObjectOutput
	err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		var err error
		out, err = b.client.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(b.bucket),
			Key:    aws.String(b.prefix + key),
			Range:  rng,
		})
		return err
	})
	if err != nil {
		return nil, b.mapErr(op, key, err)
	}
	return out, nil
}

// Get opens the whole object.
func (b *AWSBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := b.get(ctx, "get", key, nil)
	if err != nil {
		return nil, err
	}
	return newCtxReadCloser(ctx, out.Body), nil
}

// GetRange opens length bytes from off (to the end if length < 0).
func (b *AWSBucket) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	return s3GetRange(ctx, b, key, off, length, func(off, end int64) (io.ReadCloser, int64, error) {
		var rng *string
		switch {
		case end >= 0:
			rng = aws.String(fmt.Sprintf("bytes=%d-%d", off, end))
		case off > 0:
			rng = aws.String(fmt.Sprintf("bytes=%d-", off))
		}
		out, err := b.get(ctx, "get range", key, rng)
		if err != nil {
			return nil, 0, err
		}
		return newCtxReadCloser(ctx, out.Body), aws.ToInt64(out.ContentLength), nil
	})
}

// Attributes returns the object's size and modification time (one HEAD).
func (b *AWSBucket) Attributes(ctx context.Context, key string) (Attributes, error) {
	if key == "" {
		return Attributes{}, errors.New("objectlog: attributes: empty key")
	}
	out, err := b.head(ctx, key)
	if err != nil {
		return Attributes{}, b.mapErr("attributes", key, err)
	}
	return Attributes{Size: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
}

func (b *AWSBucket) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	var out *s3.HeadObjectOutput
	err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		var err error
		out, err = b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.prefix + key)})
		return err
	})
	return out, err
}

// List yields the objects under prefix in lexical order, a page at a time;
// a page that fails for a transient reason is asked for again.
func (b *AWSBucket) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
			Bucket: aws.String(b.bucket),
			Prefix: aws.String(b.prefix + prefix),
		})
		for pages.HasMorePages() {
			var page *s3.ListObjectsV2Output
			err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
				var err error
				// A failed NextPage keeps its continuation token, so
				// calling it again asks for the same page.
				page, err = pages.NextPage(ctx)
				return err
			})
			if err != nil {
				yield(ObjectInfo{}, b.mapErr("list", fmt.Sprintf("%q", prefix), err))
				return
			}
			for _, o := range page.Contents {
				oi := ObjectInfo{
					Key:          strings.TrimPrefix(aws.ToString(o.Key), b.prefix),
					Size:         aws.ToInt64(o.Size),
					LastModified: aws.ToTime(o.LastModified),
				}
				if !yield(oi, nil) {
					return
				}
			}
		}
	}
}

// PutIfAbsent uploads the object with IfNoneMatch "*".
func (b *AWSBucket) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	if key == "" {
		return errors.New("objectlog: put: empty key")
	}
	token := rand.Text()
	if size >= 0 && size <= b.partSize {
		if body := newPutBody(r, size); body.seeker != nil {
			return b.putSingle(ctx, key, body, size, token)
		}
	}
	// Read the first part to learn whether the body fits in one.
	limit := b.partSize
	if size >= 0 && size < limit {
		limit = size
	}
	var (
		first []byte
		n     int
		err   error
	)
	if size >= 0 {
		first = make([]byte, limit)
		n, err = io.ReadFull(r, first)
		first = first[:n]
	} else {
		// Grow as the body comes: most bodies of unknown size are small,
		// and a part-sized buffer for each would be waste.
		var buf bytes.Buffer
		_, err = buf.ReadFrom(io.LimitReader(r, limit))
		first, n = buf.Bytes(), buf.Len()
		if err == nil && int64(n) < limit {
			err = io.EOF
		}
	}
	more := false
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if size >= 0 && int64(n) < size {
			return fmt.Errorf("objectlog: put %s: %w: read %d of %d bytes", key, errShortBody, n, size)
		}
	case err != nil:
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	case size >= 0:
		more = size > int64(n)
	default:
		// A full part of unknown length: one more byte tells whether
		// there is another part.
		var peek [1]byte
		m, perr := io.ReadFull(r, peek[:])
		if perr != nil && perr != io.EOF {
			return fmt.Errorf("objectlog: put %s: %w", key, perr)
		}
		if m == 1 {
			more = true
			r = io.MultiReader(bytes.NewReader(peek[:]), r)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	if !more {
		return b.putSingle(ctx, key, newPutBody(bytes.NewReader(first), int64(len(first))), int64(len(first)), token)
	}
	return b.putMultipart(ctx, key, first, r, size, token)
}

// putSingle sends one PutObject from a rewindable body.
func (b *AWSBucket) putSingle(ctx context.Context, key string, body *putBody, size int64, token string) error {
	attempts := 0
	err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		if err := body.rewind(); err != nil {
			return err
		}
		attempts++
		_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(b.bucket),
			Key:           aws.String(b.prefix + key),
			Body:          body.r,
			ContentLength: aws.Int64(size),
			ContentType:   aws.String("application/octet-stream"),
			IfNoneMatch:   aws.String("*"),
			Metadata:      map[string]string{strings.ToLower(putTokenMeta): token},
		})
		return err
	})
	if err == nil {
		return nil
	}
	if attempts > 1 && b.isOurs(ctx, key, token, err) {
		return nil
	}
	return b.mapErr("put", key, err)
}

// isOurs says whether err, from a retried put, is that put meeting the
// object an earlier attempt of its own made.
func (b *AWSBucket) isOurs(ctx context.Context, key, token string, err error) bool {
	status, code := awsStatus(err)
	if status != http.StatusPreconditionFailed && code != "PreconditionFailed" && code != "NoSuchUpload" {
		return false
	}
	out, herr := b.head(ctx, key)
	if herr != nil {
		return false
	}
	for k, v := range out.Metadata {
		if strings.EqualFold(k, putTokenMeta) {
			return v == token
		}
	}
	return false
}

// putMultipart uploads first and the rest of r as a multipart upload.
func (b *AWSBucket) putMultipart(ctx context.Context, key string, first []byte, r io.Reader, size int64, token string) (err error) {
	var created *s3.CreateMultipartUploadOutput
	err = retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		var err error
		created, err = b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(b.bucket),
			Key:               aws.String(b.prefix + key),
			ContentType:       aws.String("application/octet-stream"),
			Metadata:          map[string]string{strings.ToLower(putTokenMeta): token},
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		return err
	})
	if err != nil {
		return b.mapErr("put", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			// An abandoned upload keeps its parts (and their cost) until a
			// lifecycle rule removes them: abort it, even if ctx is done.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = retry(actx, b.retry, awsTransient, func(ctx context.Context) error {
				_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
					Bucket: aws.String(b.bucket), Key: aws.String(b.prefix + key), UploadId: uploadID,
				})
				return err
			})
		}
	}()

	parts, err := b.uploadParts(ctx, key, uploadID, first, r, size)
	if err != nil {
		return err
	}
	attempts := 0
	err = retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		attempts++
		_, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(b.bucket),
			Key:             aws.String(b.prefix + key),
			UploadId:        uploadID,
			IfNoneMatch:     aws.String("*"),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		return err
	})
	if err != nil && attempts > 1 && b.isOurs(ctx, key, token, err) {
		return nil
	}
	if err != nil {
		return b.mapErr("put", key, err)
	}
	return nil
}

// uploadParts reads r part by part and uploads up to b.concurrency parts at
// once. Buffers are recycled, so at most b.concurrency parts are in memory.
func (b *AWSBucket) uploadParts(ctx context.Context, key string, uploadID *string, first []byte, r io.Reader, size int64) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		parts  []types.CompletedPart
		failed error // the first part that failed
		wg     sync.WaitGroup
	)
	free := make(chan []byte, b.concurrency)
	upload := func(num int32, buf []byte) {
		defer wg.Done()
		var out *s3.UploadPartOutput
		err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
			var err error
			out, err = b.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:            aws.String(b.bucket),
				Key:               aws.String(b.prefix + key),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				Body:              bytes.NewReader(buf),
				ContentLength:     aws.Int64(int64(len(buf))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			return err
		})
		free <- buf[:b.partSize] // every buffer, the first included, holds a whole part
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if failed == nil {
				failed = b.mapErr("put", key, fmt.Errorf("part %d: %w", num, err))
			}
			cancel()
			return
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	}

	read := int64(len(first))
	wg.Add(1)
	go upload(1, first)
	allocated := 1
	var readErr error
	for num := int32(2); ; num++ {
		var buf []byte
		select {
		case buf = <-free:
		default:
			if allocated < b.concurrency {
				buf = make([]byte, b.partSize)
				allocated++
			} else {
				select {
				case buf = <-free:
				case <-ctx.Done():
				}
			}
		}
		if buf == nil {
			break
		}
		if size >= 0 && size-read < int64(len(buf)) {
			buf = buf[:size-read]
		}
		n, err := io.ReadFull(r, buf)
		read += int64(n)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			readErr = err
			break
		}
		if n > 0 {
			wg.Add(1)
			go upload(num, buf[:n])
		}
		if err != nil || (size >= 0 && read == size) {
			break
		}
		if num == 10000 {
			readErr = fmt.Errorf("body needs more than 10000 parts of %d bytes", b.partSize)
			break
		}
	}
	wg.Wait()
	if failed != nil {
		return nil, failed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("objectlog: put %s: %w", key, err)
	}
	if readErr != nil {
		return nil, fmt.Errorf("objectlog: put %s: %w", key, readErr)
	}
	if size >= 0 && read < size {
		return nil, fmt.Errorf("objectlog: put %s: %w: read %d of %d bytes", key, errShortBody, read, size)
	}
	slices.SortFunc(parts, func(x, y types.CompletedPart) int { return int(aws.ToInt32(x.PartNumber) - aws.ToInt32(y.PartNumber)) })
	return parts, nil
}

// Delete removes the object; a missing one is not an error.
func (b *AWSBucket) Delete(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("objectlog: delete: empty key")
	}
	err := retry(ctx, b.retry, awsTransient, func(ctx context.Context) error {
		_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.prefix + key)})
		return err
	})
	if err != nil {
		if err = b.mapErr("delete", key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// Close does nothing: the SDK's client holds no resources that need it.
func (b *AWSBucket) Close() error { return nil }
