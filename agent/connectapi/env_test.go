package connectapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
)

// readEnv is one deployment's store and index, shared by the agents a test
// starts on it.
type readEnv struct {
	store objectlog.Bucket
	index agent.Index
}

func newReadEnv(t *testing.T) *readEnv {
	t.Helper()
	r, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &readEnv{store: objectlog.NewMemBucket(), index: r}
}

// startAgent starts an agent on the env with its own cold cache of small
// blocks and short timers; tweak changes its config.
func (e *readEnv) startAgent(t *testing.T, tweak func(*agent.Config)) (*agent.Agent, objectlog.Bucket) {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.AdminListen = ""
	cfg.CacheBlockBytes = 4 << 10
	cfg.CacheBytes = 4 << 20
	cfg.MaxFetchWait = 5 * time.Second
	cfg.TopicCacheTTL = 100 * time.Millisecond
	cfg.CompactionInterval = 0
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := agent.New(t.Context(), cfg, e.store, e.index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a, e.store
}

func (e *readEnv) createTopic(t *testing.T, partitions int32) coordinator.Topic {
	t.Helper()
	name := "t-" + strings.ReplaceAll(t.Name(), "/", "-")
	tp, err := e.index.CreateTopic(t.Context(), name, coordinator.TopicConfig{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// write appends recs as one batch to a partition through the core's
// AppendBatch (the write path's batcher, records and timestamps as given)
// and returns the batch's base offset once committed.
func write(t *testing.T, a *agent.Agent, topic coordinator.Topic, p int32, spec objectlog.BatchSpec, recs ...objectlog.Record) int64 {
	t.Helper()
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendRecords([16]byte{}, 0, spec, recs); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	c := footer.Chunks[0]
	raw := data[c.ByteOffset : c.ByteOffset+c.ByteLength]
	// A topic deleted and created again meets the agent's cached copy of
	// the old one once (ErrTopicRecreated), as a client would; the cache
	// is fresh for the second try.
	for try := 0; ; try++ {
		wait, err := a.AppendBatch(t.Context(), topic.Name, p, bytes.Clone(raw))
		if err != nil {
			t.Fatal(err)
		}
		base, err := wait(t.Context())
		if errors.Is(err, agent.ErrTopicRecreated) && try == 0 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, err := a.ReadTopic(t.Context(), topic.Name); err != nil || got.ID != topic.ID {
			t.Fatalf("wrote to topic %q as %v (%v), want id %s", topic.Name, got.ID, err, topic.ID)
		}
		return base
	}
}

// values makes records with the given values, null keys and timestamp ts.
func values(ts int64, vs ...string) []objectlog.Record {
	out := make([]objectlog.Record, len(vs))
	for i, v := range vs {
		out[i] = objectlog.Record{Value: []byte(v), Timestamp: ts}
	}
	return out
}

// retainedIndex pretends that retention moved the log start to start, as
// the janitor does.
type retainedIndex struct {
	agent.Index
	start atomic.Int64
}

func (r *retainedIndex) Lookup(ctx context.Context, id uuid.UUID, p int32, offset, maxBytes int64) ([]coordinator.IndexEntry, coordinator.PartitionState, error) {
	start := r.start.Load()
	st, err := r.Index.PartitionState(ctx, id, p)
	if err != nil {
		return nil, st, err
	}
	st.LogStartOffset = max(st.LogStartOffset, start)
	if offset < start {
		return nil, st, fmt.Errorf("lookup: %w: log start %d, high watermark %d", coordinator.ErrOffsetOutOfRange, st.LogStartOffset, st.HighWatermark)
	}
	entries, ist, err := r.Index.Lookup(ctx, id, p, offset, maxBytes)
	ist.LogStartOffset = max(ist.LogStartOffset, start)
	return entries, ist, err
}

func (r *retainedIndex) PartitionState(ctx context.Context, id uuid.UUID, p int32) (coordinator.PartitionState, error) {
	st, err := r.Index.PartitionState(ctx, id, p)
	st.LogStartOffset = max(st.LogStartOffset, r.start.Load())
	return st, err
}
