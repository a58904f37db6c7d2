package objectlog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/minio/minio-go/v7"

	"github.com/stratabroker/strata/objectlog"
)

// awsErr builds the error aws-sdk-go-v2 returns for an S3 error response.
func awsErr(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "test"},
		},
		RequestID: "test",
	}}
}

func minioErr(status int, code string) error {
	return fmt.Errorf("objectlog: wrapped: %w", minio.ErrorResponse{StatusCode: status, Code: code})
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestRetryClassifier(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		status int
		code   string
		want   bool
	}{
		{500, "InternalError", true},
		{503, "SlowDown", true},
		{503, "ServiceUnavailable", true},
		{502, "", true},
		{504, "", true},
		{501, "NotImplemented", false},
		{400, "RequestTimeout", true},
		{408, "", true},
		{429, "", true},
		{409, "ConditionalRequestConflict", true},
		{400, "InvalidArgument", false},
		{403, "AccessDenied", false},
		{403, "SignatureDoesNotMatch", false},
		{404, "NoSuchKey", false},
		{404, "NoSuchBucket", false},
		{409, "BucketAlreadyExists", false},
		{412, "PreconditionFailed", false},
		{416, "InvalidRange", false},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%d %s", tc.status, tc.code)
		if got := objectlog.TransientStatus(tc.status, tc.code); got != tc.want {
			t.Errorf("TransientStatus(%s) = %v, want %v", name, got, tc.want)
		}
		if got := objectlog.MinioTransient(minioErr(tc.status, tc.code)); got != tc.want {
			t.Errorf("minio %s: transient = %v, want %v", name, got, tc.want)
		}
		if got := objectlog.AWSTransient(awsErr(tc.status, tc.code)); got != tc.want {
			t.Errorf("aws %s: transient = %v, want %v", name, got, tc.want)
		}
	}

	transport := []struct {
		name string
		err  error
		want bool
	}{
		{"connection reset", reset, true},
		{"connection refused", refused, true},
		{"reset inside url.Error", &url.Error{Op: "Put", URL: "http://x", Err: reset}, true},
		{"aws send error", &smithy.OperationError{Err: &smithyhttp.RequestSendError{Err: reset}}, true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"timeout", &url.Error{Op: "Get", URL: "http://x", Err: timeoutErr{}}, true},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), true},
		{"EOF before the response", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, true},
		{"per-request deadline", fmt.Errorf("attempt: %w", context.DeadlineExceeded), true},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"aws canceled", &smithy.OperationError{Err: &smithy.CanceledError{Err: context.Canceled}}, false},
		{"plain error", errors.New("bad key"), false},
		{"nil", nil, false},
	}
	for _, tc := range transport {
		if got := objectlog.TransientTransport(tc.err); got != tc.want {
			t.Errorf("TransientTransport(%s) = %v, want %v", tc.name, got, tc.want)
		}
		if got := objectlog.MinioTransient(tc.err); got != tc.want {
			t.Errorf("MinioTransient(%s) = %v, want %v", tc.name, got, tc.want)
		}
		if got := objectlog.AWSTransient(tc.err); got != tc.want {
			t.Errorf("AWSTransient(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRetryBackoff(t *testing.T) {
	p := objectlog.RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	tests := []struct {
		retry int
		u     float64
		want  time.Duration
	}{
		{0, 0, 0},
		{0, 0.5, 50 * time.Millisecond},
		{0, 0.75, 75 * time.Millisecond},
		{1, 0.5, 100 * time.Millisecond},
		{3, 0.5, 400 * time.Millisecond},
		{3, 0.75, 600 * time.Millisecond},
		{4, 0.5, 500 * time.Millisecond}, // 1.6s capped at 1s
		{4, 0.75, 750 * time.Millisecond},
		{62, 0.5, 500 * time.Millisecond}, // the shift would overflow
		{1000, 0.75, 750 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := p.Backoff(tc.retry, tc.u); got != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.retry, tc.u, got, tc.want)
		}
	}
	// The zero policy means the defaults.
	if got, want := (objectlog.RetryPolicy{}).Backoff(0, 0.5), objectlog.DefaultRetryPolicy.BaseDelay/2; got != want {
		t.Errorf("zero policy Backoff(0, 0.5) = %v, want %v", got, want)
	}
}

func TestRetryLoop(t *testing.T) {
	errTransient := errors.New("transient")
	errPermanent := errors.New("permanent")
	isTransient := func(err error) bool { return errors.Is(err, errTransient) }
	p := objectlog.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

	tests := []struct {
		name      string
		fails     []error // what the calls return, in order; then nil
		wantCalls int
		wantErr   error
	}{
		{"success", nil, 1, nil},
		{"two transient then success", []error{errTransient, errTransient}, 3, nil},
		{"permanent is not retried", []error{errPermanent, errTransient}, 1, errPermanent},
		{"transient then permanent", []error{errTransient, errPermanent}, 2, errPermanent},
		{"attempts run out", []error{errTransient, errTransient, errTransient, errTransient, errTransient}, 4, errTransient},
	}
	for _, tc := range tests {
		calls := 0
		err := objectlog.RunRetry(t.Context(), p, isTransient, func(context.Context) error {
			calls++
			if calls <= len(tc.fails) {
				return tc.fails[calls-1]
			}
			return nil
		})
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
		}
		if calls != tc.wantCalls {
			t.Errorf("%s: %d calls, want %d", tc.name, calls, tc.wantCalls)
		}
	}

	// The caller's context bounds the waiting: a long backoff ends when it
	// is cancelled, with the last error.
	slow := objectlog.RetryPolicy{MaxAttempts: 10, BaseDelay: time.Hour, MaxDelay: time.Hour}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	calls := 0
	err := objectlog.RunRetry(ctx, slow, isTransient, func(context.Context) error { calls++; return errTransient })
	if !errors.Is(err, errTransient) {
		t.Errorf("cancelled retry: err %v, want the last error", err)
	}
	// One call, or two if the first backoff drew (almost) zero.
	if calls < 1 || calls > 2 || time.Since(start) > 10*time.Second {
		t.Errorf("cancelled retry: %d calls in %v", calls, time.Since(start))
	}

	// An error while the context is done is not retried.
	ctx, cancel = context.WithCancel(t.Context())
	calls = 0
	_ = objectlog.RunRetry(ctx, p, isTransient, func(context.Context) error { calls++; cancel(); return errTransient })
	if calls != 1 {
		t.Errorf("retry after cancel: %d calls, want 1", calls)
	}
}
