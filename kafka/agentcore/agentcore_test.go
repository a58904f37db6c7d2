package agentcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/kafka"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

func startAgent(t testing.TB, index *coordinator.Redis, id, kafkaAddr, zone string) *agent.Agent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.AgentID, cfg.KafkaAdvertise, cfg.Zone = id, kafkaAddr, zone
	cfg.AdminListen = ""
	cfg.FlushInterval = 5 * time.Millisecond
	a, err := agent.New(t.Context(), cfg, objectlog.NewMemBucket(), index, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}

// Brokers lists the live agents with a Kafka listener under their node ids,
// this agent always among them; the cluster id is the index's, shared.
func TestBrokersAndClusterID(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a := startAgent(t, index, "agent-a", "10.0.0.1:9092", "z1")
	b := startAgent(t, index, "agent-b", "10.0.0.2:9093", "")
	// An agent without a Kafka listener is no broker.
	if err := index.RegisterAgent(t.Context(), coordinator.AgentInfo{ID: "plain", Addr: "10.0.0.3:7070"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if a.NodeID() == b.NodeID() || a.NodeID() <= 0 || b.NodeID() <= 0 {
		t.Fatalf("node ids %d and %d: want distinct positive ids", a.NodeID(), b.NodeID())
	}
	ca, err := New(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := New(t.Context(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca.probes.dial = func(string) error { return nil } // the addresses are made up
	if ca.ClusterID() == "" || ca.ClusterID() != cb.ClusterID() {
		t.Fatalf("cluster ids %q and %q: want one shared id", ca.ClusterID(), cb.ClusterID())
	}
	var got []string
	if !waitFor(func() bool {
		brokers, err := ca.Brokers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, br := range brokers {
			got = append(got, fmt.Sprintf("%d@%s:%d/%s", br.ID, br.Host, br.Port, br.Zone))
		}
		slices.Sort(got)
		return len(got) == 2
	}) {
		t.Fatalf("brokers %v, want agent-a and agent-b", got)
	}
	want := []string{fmt.Sprintf("%d@10.0.0.1:9092/z1", a.NodeID()), fmt.Sprintf("%d@10.0.0.2:9093/", b.NodeID())}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("brokers %v, want %v", got, want)
	}
}

func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// The node id is derived from the agent id: the same id gets the same node
// id again (a restarted agent keeps it), unless a live agent holds it.
func TestNodeIDStableAndCollisionFree(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a1 := startAgent(t, index, "same", "h:1", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a2 := startAgent(t, index, "same", "h:1", "")
	if a1.NodeID() != a2.NodeID() {
		t.Fatalf("restarted agent got node id %d, first %d", a2.NodeID(), a1.NodeID())
	}
	// Another agent id registered with that node id (a hash collision):
	// a newcomer whose hash lands on it must pick another.
	if err := index.RegisterAgent(t.Context(), coordinator.AgentInfo{ID: "other", Addr: "x:1", KafkaAddr: "x:2", NodeID: a2.NodeID()}, time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := a2.Close(ctx2); err != nil {
		t.Fatal(err)
	}
	a3 := startAgent(t, index, "same", "h:1", "")
	if a3.NodeID() == a2.NodeID() {
		t.Fatalf("agent took node id %d, held by a live agent", a3.NodeID())
	}
}

func TestErrorTable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		core error
		want error
	}{
		{fmt.Errorf("x: %w", agent.ErrTooLarge), kafka.ErrMessageTooLarge},
		{errors.Join(coordinator.ErrNotFound, agent.ErrUnknownTopicOrPartition), kafka.ErrUnknownTopicOrPartition},
		{fmt.Errorf("%w: epoch 3", coordinator.ErrFenced), kafka.ErrInvalidProducerEpoch},
		{coordinator.ErrOutOfOrderSequence, kafka.ErrOutOfOrderSequence},
		{fmt.Errorf("upload: %w", objectlog.ErrUnavailable), kafka.ErrUnavailable},
		{coordinator.ErrUnavailable, kafka.ErrUnavailable},
		{objectlog.ErrCorrupt, kafka.ErrCorruptMessage},
		{fmt.Errorf("%w: topic t partition 0: record 0 length", agent.ErrCorruptBatch), kafka.ErrCorruptMessage},
		{agent.ErrOverloaded, kafka.ErrThrottled},
		{fmt.Errorf("topic t: %w", agent.ErrInvalidRecord), kafka.ErrInvalidRecord},
		{agent.ErrTopicRecreated, kafka.ErrUnknownTopicOrPartition},
		{fmt.Errorf("%w: %w", agent.ErrInvalidTopicName, coordinator.ErrInvalid), kafka.ErrInvalidTopic},
		{fmt.Errorf("%w: %w", agent.ErrInvalidPartitions, coordinator.ErrInvalid), kafka.ErrInvalidPartitions},
		{fmt.Errorf("retention.ms: %w", coordinator.ErrInvalidConfig), kafka.ErrInvalidConfig},
		{fmt.Errorf("collides: %w", coordinator.ErrInvalidTopicName), kafka.ErrInvalidTopic},
		{fmt.Errorf("can only rise: %w", coordinator.ErrInvalidPartitions), kafka.ErrInvalidPartitions},
		// issue 12: a rule that is no topic config is not INVALID_CONFIG.
		{fmt.Errorf("%w: producer 10 epoch -1 sequence 2", coordinator.ErrInvalid), kafka.ErrInvalidRequest},
		{coordinator.ErrAlreadyExists, kafka.ErrTopicAlreadyExists},
	} {
		got := kafkaErr(c.core)
		if !errors.Is(got, c.want) || !errors.Is(got, c.core) {
			t.Errorf("kafkaErr(%v) = %v, want %v wrapping it", c.core, got, c.want)
		}
	}
	if got := readErr(objectlog.ErrCorrupt); !errors.Is(got, kafka.ErrUnavailable) {
		t.Errorf("a corrupt stored batch reads as %v, want ErrUnavailable", got)
	}
	if kafkaErr(nil) != nil || kafkaErr(context.Canceled) != context.Canceled {
		t.Error("nil and context errors must pass as they are")
	}
}

// An agent killed with SIGKILL stays registered until its registration
// expires; its Kafka listener refuses connections, and Brokers leaves it
// out once a probe found that, and lists it again once one reaches it.
func TestBrokersLeaveOutUnreachableAgents(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	a := startAgent(t, index, "agent-a", "127.0.0.1:1", "")
	if err := index.RegisterAgent(t.Context(), coordinator.AgentInfo{ID: "agent-b", Addr: "x:1", KafkaAddr: addr, NodeID: 42}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c, err := New(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.probes.every = 10 * time.Millisecond
	listsB := func() bool {
		brokers, err := c.Brokers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range brokers {
			if b.ID == 42 {
				return true
			}
		}
		return false
	}
	// Reachable: listed, and still listed after probes ran.
	time.Sleep(50 * time.Millisecond)
	if !listsB() || !waitFor(func() bool { time.Sleep(20 * time.Millisecond); return listsB() }) {
		t.Fatal("a reachable agent is not listed")
	}
	l.Close()
	if !waitFor(func() bool { return !listsB() }) {
		t.Fatal("an agent whose Kafka listener refuses connections is still listed")
	}
}

// issue 12: a Kafka client's batch with a real producer id but epoch -1 is
// INVALID_RECORD naming the fields, not INVALID_CONFIG naming a segment.
func TestProduceMalformedProducerBatch(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a := startAgent(t, index, "agent-p", "10.0.0.1:9092", "")
	c, err := New(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(t.Context(), kafka.TopicSpec{Name: "orders", Partitions: 1}, false); err != nil {
		t.Fatal(err)
	}
	id, _, err := a.NewProducerEpoch(t.Context(), -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	raw := segmentBatch(t, objectlog.BatchSpec{ProducerID: id, ProducerEpoch: -1, BaseSequence: 2})
	r := <-c.Produce(t.Context(), "orders", 0, kafka.Batch{Raw: raw})
	if !errors.Is(r.Err, kafka.ErrInvalidRecord) || r.BaseOffset != -1 {
		t.Fatalf("epoch -1: %+v, want ErrInvalidRecord", r)
	}
	if msg := r.Err.Error(); !strings.Contains(msg, "producer epoch -1") || strings.Contains(msg, "segment") {
		t.Fatalf("message %q: want the epoch named and no segment", msg)
	}
}

// A commit error keeps its cause but loses the segment keys in its words.
func TestWithoutSegmentKeys(t *testing.T) {
	t.Parallel()
	cause := fmt.Errorf("commit segment segments/01M8N8AAS4HW6NZKQA6ZV9A26K.seg: commit segment 01M8N8AAS4HW6NZKQA6ZV9A26K: %w: producer 1 epoch 0", coordinator.ErrFenced)
	got := kafkaErr(withoutSegmentKeys(cause))
	if !errors.Is(got, kafka.ErrInvalidProducerEpoch) || !errors.Is(got, coordinator.ErrFenced) {
		t.Fatalf("%v: want ErrInvalidProducerEpoch wrapping ErrFenced", got)
	}
	if msg := got.Error(); strings.Contains(msg, "01M8N8") || !strings.Contains(msg, "producer 1 epoch 0") {
		t.Fatalf("message %q: want the reason without the segment", msg)
	}
	plain := errors.New("no segment here")
	if withoutSegmentKeys(plain) != plain {
		t.Fatal("an error naming no segment must pass as it is")
	}
}

// segmentBatch is one RecordBatch v2 as a Kafka client sends it.
func segmentBatch(t *testing.T, spec objectlog.BatchSpec) []byte {
	t.Helper()
	w := objectlog.NewSegmentWriter()
	if _, err := w.AppendRecords([16]byte{}, 0, spec, []objectlog.Record{{Value: []byte("v"), Timestamp: 1}}); err != nil {
		t.Fatal(err)
	}
	data, footer, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	ch := footer.Chunks[0]
	return slices.Clone(data[ch.ByteOffset : ch.ByteOffset+ch.ByteLength])
}

// issue 12: Produce answers the partition's log start offset (Kafka's
// Produce v5+ log_start_offset), not -1.
func TestProduceAnswersLogStartOffset(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a := startAgent(t, index, "agent-s", "10.0.0.1:9092", "")
	c, err := New(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(t.Context(), kafka.TopicSpec{Name: "logs", Partitions: 1}, false); err != nil {
		t.Fatal(err)
	}
	produce := func() kafka.ProduceResult {
		r := <-c.Produce(t.Context(), "logs", 0, kafka.Batch{Raw: segmentBatch(t, objectlog.NoProducer)})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r
	}
	for range 3 {
		if r := produce(); r.LogStartOffset != 0 {
			t.Fatalf("log start %d, want 0", r.LogStartOffset)
		}
	}
	if _, err := a.DeleteRecordsBefore(t.Context(), "logs", 0, 2); err != nil {
		t.Fatal(err)
	}
	if r := produce(); r.BaseOffset != 3 || r.LogStartOffset != 2 {
		t.Fatalf("after DeleteRecords before 2: base %d, log start %d; want 3 and 2", r.BaseOffset, r.LogStartOffset)
	}
}

// issue 12: a topic whose name collides with an existing one's in Kafka's
// metric names is refused INVALID_TOPIC_EXCEPTION over the Kafka API, and
// with coordinator.ErrInvalidTopicName (INVALID_ARGUMENT naming
// INVALID_TOPIC_EXCEPTION) over the Connect API's core.
func TestCreateTopicMetricNameCollision(t *testing.T) {
	t.Parallel()
	index, err := coordinator.Open(t.Context(), "memory://", coordinator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	a := startAgent(t, index, "agent-c", "10.0.0.1:9092", "")
	c, err := New(t.Context(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(t.Context(), kafka.TopicSpec{Name: "col.a", Partitions: 1}, false); err != nil {
		t.Fatal(err)
	}
	for _, validateOnly := range []bool{false, true} {
		_, err = c.CreateTopic(t.Context(), kafka.TopicSpec{Name: "col_a", Partitions: 1}, validateOnly)
		if !errors.Is(err, kafka.ErrInvalidTopic) || !strings.Contains(err.Error(), "collides with existing topic") {
			t.Fatalf("Kafka CreateTopics col_a (validate only %v): %v, want ErrInvalidTopic", validateOnly, err)
		}
	}
	if _, err := c.CreateTopic(t.Context(), kafka.TopicSpec{Name: "col-a", Partitions: 1}, true); err != nil {
		t.Fatalf("validate only col-a: %v", err)
	}
	_, err = a.CreateTopic(t.Context(), &stratav1.CreateTopicRequest{Name: "col_a", Partitions: 1})
	if !errors.Is(err, coordinator.ErrInvalidTopicName) {
		t.Fatalf("AdminService.CreateTopic col_a: %v, want ErrInvalidTopicName", err)
	}
}
