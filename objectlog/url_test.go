package objectlog_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
)

func TestOpenBucketURL(t *testing.T) {
	dir := t.TempDir()
	good := []struct {
		url  string
		want string // the backend's type
	}{
		{"file://" + dir, "*objectlog.FSBucket"},
		{"file://localhost" + dir + "/sub", "*objectlog.FSBucket"},
		{"memory://", "*objectlog.MemBucket"},
		{"s3://strata-data", "*objectlog.MinioBucket"},
		{"s3://strata-data/prefix/x?endpoint=127.0.0.1:9&insecure=true&region=eu-west-1&path_style=true", "*objectlog.MinioBucket"},
		{"s3+aws://strata-data/prefix?region=us-east-1", "*objectlog.AWSBucket"},
		{"s3+aws://strata-data?endpoint=http://127.0.0.1:9&path_style=true", "*objectlog.AWSBucket"},
	}
	for _, tc := range good {
		b, err := objectlog.OpenBucket(t.Context(), tc.url)
		if err != nil {
			t.Errorf("OpenBucket(%s): %v", tc.url, err)
			continue
		}
		if got := fmt.Sprintf("%T", b); got != tc.want {
			t.Errorf("OpenBucket(%s): got a %s, want a %s", tc.url, got, tc.want)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if b, err := objectlog.OpenBucket(t.Context(), "file://"+dir); err != nil || b.(*objectlog.FSBucket).Dir() != dir {
		t.Errorf("file URL: bucket in %v, %v; want %s", b, err, dir)
	}

	bad := []struct {
		url     string
		mention string // the error says this
	}{
		{"", "no scheme"},
		{"/var/lib/strata", "no scheme"},
		{"ftp://x/y", "unknown scheme"},
		{"file://otherhost/path", "no host"},
		{"file:///x?sync=1", "no parameters"},
		{"memory://name", "memory://"},
		{"s3://", "no bucket"},
		{"s3:///prefix", "no bucket"},
		{"s3://Upper_Case", "bucket name"},
		{"s3://ab", "3 to 63"},
		{"s3://bucket?access_key=AKIA&secret_key=hunter2", "credentials are not allowed"},
		{"s3://bucket?secret_key=hunter2", "credentials are not allowed"},
		{"s3://AKIA:hunter2@bucket", "credentials are not allowed"},
		{"s3://bucket?session_token=hunter2", "credentials are not allowed"},
		{"s3://bucket?colour=blue", "unknown parameter"},
		{"s3://bucket?insecure=maybe", "true or false"},
		{"s3://bucket?endpoint=http://h:9000", "host:port"},
		{"s3://bucket?region=a&region=b", "2 times"},
		{"s3+aws://bucket?insecure=true", "unknown parameter"},
		{"s3+aws://bucket?endpoint=h:9000", "http://host:port"},
		{"s3+aws://bucket?path_style=yes", "true or false"},
		{"s3://bucket/%zz", "invalid URL escape"},
	}
	for _, tc := range bad {
		b, err := objectlog.OpenBucket(t.Context(), tc.url)
		if err == nil {
			b.Close()
			t.Errorf("OpenBucket(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("OpenBucket(%q): error %q does not mention %q", tc.url, err, tc.mention)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("OpenBucket(%q): error %q repeats the secret", tc.url, err)
		}
	}
}

func TestOpenBucketURLRelativeFile(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := objectlog.OpenBucket(t.Context(), "file:data/objects")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("data/objects")
	if got := b.(*objectlog.FSBucket).Dir(); got != want {
		t.Errorf("file:data/objects: directory %s, want %s", got, want)
	}
}

// TestOpenBucketURLS3 opens both S3 backends by URL against the real MinIO,
// with credentials from the environment as a server would get them.
func TestOpenBucketURLS3(t *testing.T) {
	s := testenv.MinIO(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	name := testBucketName(t)
	urls := []string{
		"s3://" + name + "/via-minio?endpoint=" + s.Endpoint + "&insecure=true&create_bucket=true",
		"s3+aws://" + name + "/via-aws?endpoint=http://" + s.Endpoint + "&path_style=true&region=us-east-1&create_bucket=true",
	}
	for _, u := range urls {
		b, err := objectlog.OpenBucket(t.Context(), u)
		if err != nil {
			t.Fatalf("OpenBucket(%s): %v", u, err)
		}
		if err := b.PutIfAbsent(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
			t.Fatalf("%s: PutIfAbsent: %v", u, err)
		}
		if got := readObject(t, b, "k"); got != "v" {
			t.Errorf("%s: Get: %q", u, got)
		}
		b.Close()
	}
	// Both wrote under their own prefix of the one bucket.
	whole := newMinioBucket(t, s, name, "", nil)
	if got := strings.Join(listKeys(t, whole, ""), ","); got != "via-aws/k,via-minio/k" {
		t.Errorf("keys in the bucket: %s", got)
	}
}
