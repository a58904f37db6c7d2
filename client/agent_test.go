package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/agent/connectapi"
	"github.com/stratabroker/strata/client"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
	"github.com/stratabroker/strata/proto/gen/strata/v1/stratav1connect"
)

// testAgent is a real agent on an in-memory store and embedded index,
// served over h2c by an httptest server, as agents serve it.
type testAgent struct {
	url      string
	http     *http.Client
	producer stratav1connect.ProducerServiceClient
	admin    stratav1connect.AdminServiceClient
	group    stratav1connect.GroupServiceClient
}

func startAgent(t testing.TB) *testAgent {
	t.Helper()
	return startAgentWith(t, nil)
}

// startAgentWith is startAgent with tweak applied to the agent's config.
func startAgentWith(t testing.TB, tweak func(*agent.Config)) *testAgent {
	t.Helper()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	return startAgentOn(t, objectlog.NewMemBucket(), index, tweak)
}

// startAgentOn is startAgentWith on the given store and index.
func startAgentOn(t testing.TB, store objectlog.Bucket, index *coordinator.Redis, tweak func(*agent.Config)) *testAgent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.AdminListen = ""
	cfg.TopicCacheTTL = 50 * time.Millisecond
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := agent.New(t.Context(), cfg, store, index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(connectapi.Handler(a))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	// Cleanups run last in, first out: the agent closes after the
	// server, which closes after the consumers' own cleanups.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	t.Cleanup(srv.Close)
	hc := h2cClient(t)
	return &testAgent{
		url:      srv.URL,
		http:     hc,
		producer: stratav1connect.NewProducerServiceClient(hc, srv.URL),
		admin:    stratav1connect.NewAdminServiceClient(hc, srv.URL),
		group:    stratav1connect.NewGroupServiceClient(hc, srv.URL),
	}
}

// h2cClient is an HTTP client speaking h2c with prior knowledge. wrap, if
// not nil, wraps its transport (fault injection).
func h2cClient(t testing.TB, wrap ...func(http.RoundTripper) http.RoundTripper) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	for _, w := range wrap {
		rt = w(rt)
	}
	return &http.Client{Transport: rt}
}

func (ta *testAgent) createTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	_, err := ta.admin.CreateTopic(t.Context(), connect.NewRequest(&stratav1.CreateTopicRequest{Name: name, Partitions: partitions}))
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// produce writes n records to every partition of topic; values are
// "<partition>-<i>" with i counting on from first.
func (ta *testAgent) produce(t *testing.T, topic string, partitions int32, first, n int) {
	t.Helper()
	if err := ta.produceErr(t.Context(), topic, partitions, first, n); err != nil {
		t.Fatal(err)
	}
}

// produceErr is produce for goroutines other than the test's.
func (ta *testAgent) produceErr(ctx context.Context, topic string, partitions int32, first, n int) error {
	var recs []*stratav1.Record
	for p := range partitions {
		for i := first; i < first+n; i++ {
			recs = append(recs, &stratav1.Record{Partition: &p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	_, err := ta.producer.Produce(ctx, connect.NewRequest(&stratav1.ProduceRequest{
		Topics: []*stratav1.TopicRecords{{Topic: topic, Records: recs}},
	}))
	if err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	return nil
}

// committed is the group's committed offsets.
func (ta *testAgent) committed(t *testing.T, group string) map[client.TopicPartition]int64 {
	t.Helper()
	resp, err := ta.group.FetchOffsets(t.Context(), connect.NewRequest(&stratav1.FetchOffsetsRequest{Group: group}))
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[client.TopicPartition]int64{}
	for _, o := range resp.Msg.GetOffsets() {
		out[client.TopicPartition{Topic: o.GetTopic(), Partition: o.GetPartition()}] = o.GetOffset()
	}
	return out
}

// config is a consumer of topics in group with short timings for tests.
func (ta *testAgent) config(group string, topics ...string) client.GroupConsumerConfig {
	return client.GroupConsumerConfig{
		HTTPClient:         ta.http,
		BaseURL:            ta.url,
		Group:              group,
		Topics:             topics,
		SessionTimeout:     time.Second,
		Reset:              client.ResetEarliest,
		MaxWait:            100 * time.Millisecond,
		AutoCommitInterval: 100 * time.Millisecond,
	}
}

// Steady groups: for tests that assert a run without session losses
// (every record read exactly once, every position committed on Close).
// config's one-second session lapses on a loaded machine: the member
// heartbeats a third of a session after the last answer, so under -race
// and a busy CPU two slow round trips (or one stall of the test process)
// pass its deadline; the member then gives its partitions up without
// committing (OnLost, as it must: another member may own them), joins
// again and reads them again from the last commit. A steady group keeps
// hand-overs as quick (an agent heartbeat interval of steadyHeartbeat) but
// gives the session steadySession of slack, so only a real failure loses
// it.
const (
	steadyHeartbeat = 200 * time.Millisecond
	steadySession   = 30 * time.Second
)

// startSteadyAgent is startAgent telling members to heartbeat every
// steadyHeartbeat, whatever their session.
func startSteadyAgent(t testing.TB) *testAgent {
	t.Helper()
	return startAgentWith(t, func(c *agent.Config) { c.GroupHeartbeatInterval = steadyHeartbeat })
}

// steadyConfig is config with a steadySession session.
func (ta *testAgent) steadyConfig(group string, topics ...string) client.GroupConsumerConfig {
	cfg := ta.config(group, topics...)
	cfg.SessionTimeout = steadySession
	return cfg
}

func newConsumer(t *testing.T, cfg client.GroupConsumerConfig) *client.GroupConsumer {
	t.Helper()
	c, err := client.NewGroupConsumer(t.Context(), cfg)
	if err != nil {
		t.Fatalf("new group consumer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// gate is a RoundTripper that holds back the RPCs whose path ends with
// one of suffixes while it is closed: they wait until it opens or their
// context ends. It plays a member whose heartbeats stop reaching the group.
type gate struct {
	next     http.RoundTripper
	suffixes []string

	mu     sync.Mutex
	closed chan struct{} // nil while open
	// failing, while set, fails the RPCs at once, as a dead agent's
	// refused connections do.
	failing atomic.Bool
}

func newGate(suffixes ...string) *gate { return &gate{suffixes: suffixes} }

func (g *gate) wrap(rt http.RoundTripper) http.RoundTripper { g.next = rt; return g }

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = make(chan struct{})
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	for _, s := range g.suffixes {
		if !strings.HasSuffix(req.URL.Path, s) {
			continue
		}
		if g.failing.Load() {
			return nil, errors.New("connection refused (test gate)")
		}
		g.mu.Lock()
		closed := g.closed
		g.mu.Unlock()
		if closed != nil {
			select {
			case <-closed:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
	}
	return g.next.RoundTrip(req)
}

// pollUntil polls c until done says so or the time runs out, feeding every
// record to done.
func pollUntil(t *testing.T, c *client.GroupConsumer, what string, done func([]client.Record) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("polling for %s: %v", what, err)
		}
		if done(recs) {
			return
		}
	}
}

// waitFor polls cond until it holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
