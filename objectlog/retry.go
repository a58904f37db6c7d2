package objectlog

// Retries for the S3 backends. Both SDKs come with retry loops of their own;
// the backends switch those off and use this one instead, so that there is one
// policy, one classifier and one attempts budget to reason about and to test,
// whichever SDK sits underneath.

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// RetryPolicy bounds how a backend retries a request that failed for a
// transient reason. The zero value means the defaults.
type RetryPolicy struct {
	// MaxAttempts is the number of tries, the first included (default 5).
	// 1 disables retries.
	MaxAttempts int
	// BaseDelay is the cap on the wait before the first retry (default
	// 100ms); the cap doubles with each retry up to MaxDelay.
	BaseDelay time.Duration
	// MaxDelay caps any single wait (default 5s).
	MaxDelay time.Duration
}

// DefaultRetryPolicy is what a zero RetryPolicy means: five tries with at
// most 1.5s of waiting between them (0.75s on average), which rides out an
// S3 SlowDown burst or a dropped connection without holding a produce long.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	return p
}

// backoff is the wait before retry number retry (0 for the first retry):
// "full jitter", uniform in [0, min(MaxDelay, BaseDelay<<retry)]. Full jitter
// spreads agents that failed together (a store restart fails every agent at
// once) so they do not come back in lockstep. u is a uniform draw in [0, 1).
func (p RetryPolicy) backoff(retry int, u float64) time.Duration {
	ceiling := p.MaxDelay
	if retry < 62 {
		if d := p.BaseDelay << retry; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(u * float64(ceiling))
}

// retry runs op until it succeeds, fails for a reason transient does not
// accept, runs out of attempts, or ctx is done. It returns op's last error, so
// that the caller's error mapping sees what the store said, not a retry
// wrapper. op must be safe to run again: a put rewinds its body first.
func retry(ctx context.Context, p RetryPolicy, transient func(error) bool, op func(context.Context) error) error {
	p = p.withDefaults()
	var err error
	for attempt := 0; attempt < p.MaxAttempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(p.backoff(attempt-1, rand.Float64()))
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
		}
		err = op(ctx)
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
	}
	return err
}

// transientStatus says whether an S3 error response is worth another try.
// 5xx are (InternalError, ServiceUnavailable, SlowDown is a 503). Other 4xx
// are the request's own fault and never are, with three exceptions that mean
// "not now" rather than "not this": 408 and S3's RequestTimeout (the server
// gave up waiting for our body), 429 (throttled), and 409
// ConditionalRequestConflict, which S3 answers to one of two racing
// conditional writes and documents as retryable; the retry then gets a 412 if
// the other write won.
func transientStatus(status int, code string) bool {
	switch code {
	case "SlowDown", "SlowDownRead", "SlowDownWrite", "ServiceUnavailable", "InternalError",
		"RequestTimeout", "Throttling", "ThrottlingException", "RequestLimitExceeded",
		"RequestThrottled", "ConditionalRequestConflict":
		return true
	}
	switch {
	case status >= 500:
		// 501 NotImplemented is a missing feature, not a passing fault.
		return status != 501
	case status == 408, status == 429:
		return true
	}
	return false
}

// transientTransport says whether an error from below the S3 protocol (a
// connection or a stream) is worth another try: refused or reset connections,
// broken pipes, timeouts and streams cut short. The caller's own context
// ending is never transient: retry checks ctx before asking.
func transientTransport(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, net.ErrClosed) {
		return true
	}
	// A per-request timeout (an http.Client or dialer deadline) surfaces as
	// context.DeadlineExceeded or a net.Error that times out; if the caller's
	// own deadline passed, retry has stopped already.
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// ErrUnavailable marks a failure of the store that may pass: it was still
// failing for a transient reason (5xx, throttling, a refused or reset
// connection, a timeout) when the backend's retries ran out. The agent maps
// it to Unavailable, a status the client retries.
var ErrUnavailable = errors.New("object store unavailable")
