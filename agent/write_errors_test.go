package agent_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/objectlog"
)

// TestWriteErrorsNameWhatFailed: a produce that fails because the object
// store refused the segment says "object store unavailable" and never
// "index"; one that fails because the index is down says "index
// unavailable" and never "object store". Both are Unavailable: retryable.
func TestWriteErrorsNameWhatFailed(t *testing.T) {
	t.Parallel()
	wantNamed := func(t *testing.T, err error, name, notName, cause string) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("produce: %v, want Unavailable", err)
		}
		msg := err.Error()
		if strings.Count(msg, name) != 1 || strings.Contains(msg, notName) || !strings.Contains(msg, cause) {
			t.Fatalf("produce failed with %q: want %q named once, with the cause %q, and no %q", msg, name, cause, notName)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"plain", errors.New("injected: disk full")},
		{"transient", fmt.Errorf("%w: injected: 503 slow down", objectlog.ErrUnavailable)},
		{"taken", fmt.Errorf("%w: injected: key taken", objectlog.ErrAlreadyExists)},
	} {
		t.Run("store "+tc.name, func(t *testing.T) {
			t.Parallel()
			ta := startAgent(t, nil)
			ta.createTopic(t, "t", 1, nil)
			ta.bucket.Inject(objectlog.Fault{Ops: objectlog.OpPut, Err: tc.err})
			_, err := produce(t.Context(), ta.producer, "t", rec("", "lost"))
			wantNamed(t, err, "object store unavailable", "index", "injected")
		})
	}
	t.Run("index", func(t *testing.T) {
		t.Parallel()
		ta := startAgent(t, func(c *agent.Config) {
			c.CommitTimeout = 300 * time.Millisecond
			c.TopicCacheTTL = time.Hour // the produce below needs only the commit
		})
		ta.createTopic(t, "t", 1, nil)
		if _, err := produce(t.Context(), ta.producer, "t", rec("", "kept")); err != nil {
			t.Fatal(err)
		}
		if err := ta.index.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := produce(t.Context(), ta.producer, "t", rec("", "lost"))
		wantNamed(t, err, "index unavailable", "object store", "commit segment")
	})
}
