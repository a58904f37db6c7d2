package agent

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// The Subscribe stream's tests, through Connect as clients use it, are in
// agent/connectapi; this one is of the core's loop alone.

func TestSubscribeEndsWhenTheClientLeaves(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	topic := env.createTopic(t, 1)
	done := make(chan error, 1)
	s := &subscription{a: a, req: &stratav1.SubscribeRequest{Topic: topic.Name}, topic: topic, all: true, maxBytes: defaultReadBytes}
	if err := s.add(t.Context(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		done <- s.run(ctx, func(*stratav1.SubscribeResponse) error { return nil })
	}()
	time.Sleep(50 * time.Millisecond) // let it reach its wait
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("run returned nil for a canceled stream")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end with its context")
	}
}

// coreStream is a subscription run on the core's Subscribe, as a front-end
// runs it, with its messages in a channel.
type coreStream struct {
	t      *testing.T
	msgs   chan *stratav1.SubscribeResponse
	done   chan error
	cancel context.CancelFunc
}

// subscribeCore starts a subscription and waits until its start positions
// are fixed, so records produced afterwards count as live.
func subscribeCore(t *testing.T, a *Agent, req *stratav1.SubscribeRequest) *coreStream {
	t.Helper()
	// Generous: the compactor's tests stream hundreds of archived records,
	// one per message, which under -race on a loaded machine takes a while.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	s := &coreStream{t: t, msgs: make(chan *stratav1.SubscribeResponse), done: make(chan error, 1), cancel: cancel}
	started := make(chan struct{})
	go func() {
		s.done <- a.Subscribe(ctx, req, SubscribeStream{
			Started: func() error { close(started); return nil },
			Send: func(m *stratav1.SubscribeResponse) error {
				select {
				case s.msgs <- m:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		})
	}()
	t.Cleanup(s.close)
	select {
	case <-started:
	case err := <-s.done:
		t.Fatalf("subscribe: %v", err)
	}
	return s
}

// next receives until it has n records, failing on a message over
// maxBytes (0: unchecked) or the stream's end.
func (s *coreStream) next(n int, maxBytes int64) []*stratav1.ConsumedRecord {
	s.t.Helper()
	var out []*stratav1.ConsumedRecord
	for len(out) < n {
		var msg *stratav1.SubscribeResponse
		select {
		case msg = <-s.msgs:
		case err := <-s.done:
			s.t.Fatalf("stream ended after %d of %d records: %v", len(out), n, err)
		}
		if msg.KeepAlive && len(msg.Records) == 0 {
			continue
		}
		if size := int64(proto.Size(msg)); maxBytes > 0 && len(msg.Records) > 1 && size > maxBytes {
			s.t.Fatalf("a message of %d records takes %d bytes, over max_bytes %d", len(msg.Records), size, maxBytes)
		}
		out = append(out, msg.Records...)
	}
	if len(out) > n {
		s.t.Fatalf("got %d records, want %d", len(out), n)
	}
	return out
}

func (s *coreStream) close() { s.cancel() }
