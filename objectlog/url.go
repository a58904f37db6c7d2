package objectlog

// Choosing a backend by URL, the way every storage setting in Strata is
// given (see STYLE.md):
//
//	file:///var/lib/strata           filesystem (FSBucket)
//	memory://                        in memory, empty, private to the caller (MemBucket)
//	s3://bucket/prefix?endpoint=host:port&insecure=true&region=r&path_style=true&create_bucket=true
//	                                 minio-go (MinioBucket)
//	s3+aws://bucket/prefix?region=r&endpoint=http://host:port&path_style=true&create_bucket=true
//	                                 aws-sdk-go-v2 (AWSBucket)
//
// Credentials never go in the URL: URLs end up in flags, logs and process
// listings. A URL with user info or a credential-looking parameter is
// rejected with a message saying where credentials come from instead.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// StaticCredentials are fixed S3 credentials, for tests and tools that hold
// them in code. Servers leave them nil and let the credential chain find
// them. They print redacted.
type StaticCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// String hides the secret, so a configuration can be logged.
func (c StaticCredentials) String() string {
	return fmt.Sprintf("StaticCredentials{AccessKeyID: %q, SecretAccessKey: <redacted>}", c.AccessKeyID)
}

// GoString hides the secret from %#v too.
func (c StaticCredentials) GoString() string { return c.String() }

// OpenBucket opens the bucket rawURL names, choosing the backend by scheme.
func OpenBucket(ctx context.Context, rawURL string) (Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse quotes the whole URL in its error; say what was wrong
		// without repeating it.
		return nil, fmt.Errorf("objectlog: bucket URL: %w", unwrapURLError(err))
	}
	if u.User != nil {
		return nil, fmt.Errorf("objectlog: bucket URL %s: credentials are not allowed in the URL; %s", u.Redacted(), credentialsHint)
	}
	switch u.Scheme {
	case "file":
		dir, err := fileURLDir(u)
		if err != nil {
			return nil, err
		}
		return NewFSBucket(dir)
	case "memory":
		if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("objectlog: bucket URL %s: memory:// takes no host, path or parameters", rawURL)
		}
		return NewMemBucket(), nil
	case "s3":
		cfg, err := minioConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		return NewMinioBucket(ctx, cfg)
	case "s3+aws":
		cfg, err := awsConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		return NewAWSBucket(ctx, cfg)
	case "":
		return nil, fmt.Errorf("objectlog: bucket URL %q has no scheme; want file://, memory://, s3:// or s3+aws://", rawURL)
	default:
		return nil, fmt.Errorf("objectlog: bucket URL %s: unknown scheme %q; want file, memory, s3 or s3+aws", u.Redacted(), u.Scheme)
	}
}

const credentialsHint = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or use a shared credentials file or an instance role"

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func fileURLDir(u *url.URL) (string, error) {
	if u.RawQuery != "" {
		return "", fmt.Errorf("objectlog: bucket URL %s: file:// takes no parameters", u)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("objectlog: bucket URL %s: file:// takes no host (for a relative directory write file:dir)", u)
	}
	dir := u.Path
	if u.Opaque != "" {
		dir = u.Opaque // file:relative/dir
	}
	if dir == "" {
		return "", fmt.Errorf("objectlog: bucket URL %s: no directory", u)
	}
	return dir, nil
}

// s3URLParams reads a URL's bucket, prefix and query, accepting only the
// parameters allowed.
func s3URLParams(u *url.URL, allowed ...string) (bucket, prefix string, q url.Values, err error) {
	if u.Opaque != "" {
		return "", "", nil, fmt.Errorf("objectlog: bucket URL %s: want %s://bucket/prefix", u.Redacted(), u.Scheme)
	}
	bucket, prefix = u.Host, strings.TrimPrefix(u.Path, "/")
	if err := checkBucketName(bucket); err != nil {
		return "", "", nil, fmt.Errorf("objectlog: bucket URL %s: %w", u.Redacted(), err)
	}
	q = u.Query()
	for k, v := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "key") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") ||
			strings.Contains(lk, "password") || strings.Contains(lk, "credential") {
			return "", "", nil, fmt.Errorf("objectlog: bucket URL: parameter %q: credentials are not allowed in the URL; %s", k, credentialsHint)
		}
		if !slices.Contains(allowed, k) {
			return "", "", nil, fmt.Errorf("objectlog: bucket URL %s: unknown parameter %q; known: %s", u.Redacted(), k, strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return "", "", nil, fmt.Errorf("objectlog: bucket URL %s: parameter %q given %d times", u.Redacted(), k, len(v))
		}
	}
	return bucket, prefix, q, nil
}

// checkBucketName applies S3's naming rules, so that a typo is reported
// when the URL is read rather than as a signature error later.
func checkBucketName(name string) error {
	if name == "" {
		return errors.New("no bucket name")
	}
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("bucket name %q: want 3 to 63 characters", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' || c == '.') && i > 0 && i < len(name)-1
		if !ok {
			return fmt.Errorf("bucket name %q: want lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", name)
		}
	}
	return nil
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("objectlog: bucket URL: parameter %s=%q: want true or false", name, v)
	}
	return b, nil
}

func minioConfigFromURL(u *url.URL) (MinioConfig, error) {
	bucket, prefix, q, err := s3URLParams(u, "endpoint", "insecure", "region", "path_style", "create_bucket")
	if err != nil {
		return MinioConfig{}, err
	}
	cfg := MinioConfig{Bucket: bucket, Prefix: prefix, Endpoint: q.Get("endpoint"), Region: q.Get("region")}
	if strings.Contains(cfg.Endpoint, "/") {
		return MinioConfig{}, fmt.Errorf("objectlog: bucket URL: endpoint=%q: want host:port (use insecure=true for plain HTTP)", cfg.Endpoint)
	}
	if cfg.Insecure, err = boolParam(q, "insecure"); err != nil {
		return MinioConfig{}, err
	}
	if cfg.PathStyle, err = boolParam(q, "path_style"); err != nil {
		return MinioConfig{}, err
	}
	if cfg.CreateBucket, err = boolParam(q, "create_bucket"); err != nil {
		return MinioConfig{}, err
	}
	return cfg, nil
}

func awsConfigFromURL(u *url.URL) (AWSConfig, error) {
	bucket, prefix, q, err := s3URLParams(u, "endpoint", "region", "path_style", "create_bucket")
	if err != nil {
		return AWSConfig{}, err
	}
	cfg := AWSConfig{Bucket: bucket, Prefix: prefix, Endpoint: q.Get("endpoint"), Region: q.Get("region")}
	if cfg.Endpoint != "" {
		e, err := url.Parse(cfg.Endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return AWSConfig{}, fmt.Errorf("objectlog: bucket URL: endpoint=%q: want a URL such as http://host:port", cfg.Endpoint)
		}
	}
	if cfg.PathStyle, err = boolParam(q, "path_style"); err != nil {
		return AWSConfig{}, err
	}
	if cfg.CreateBucket, err = boolParam(q, "create_bucket"); err != nil {
		return AWSConfig{}, err
	}
	return cfg, nil
}
