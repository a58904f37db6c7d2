package objectlog

import (
	"context"
	"time"
)

// Internals the black-box tests in package objectlog_test reach.
var (
	TransientStatus    = transientStatus
	TransientTransport = transientTransport
	MinioTransient     = minioTransient
	AWSTransient       = awsTransient
)

// Backoff is RetryPolicy.backoff with the defaults applied.
func (p RetryPolicy) Backoff(retry int, u float64) time.Duration {
	return p.withDefaults().backoff(retry, u)
}

// RunRetry is retry.
func RunRetry(ctx context.Context, p RetryPolicy, transient func(error) bool, op func(context.Context) error) error {
	return retry(ctx, p, transient, op)
}

// FSTempPrefix is fsTempPrefix.
const FSTempPrefix = fsTempPrefix
