package agent_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
	"github.com/stratabroker/strata/objectlog"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// TestUnacknowledgedRecordBecomesVisibleWhenReplicaResumes: with
// wait_replicas=1 and the replica stopped, a produce fails UNAVAILABLE and
// its record stays invisible. Once the replica runs again, without any
// further produce, the agent makes the record durable and visible on its
// own (as Kafka's high watermark advances once the followers catch up),
// and no reader saw it before the replica had it. Not parallel: it stops
// the shared replica.
func TestUnacknowledgedRecordBecomesVisibleWhenReplicaResumes(t *testing.T) {
	rr := testenv.RedisReplica(t)
	ctx := t.Context()
	prefix := "wait-" + uuid.NewString() + ":"
	index, err := coordinator.Open(ctx, "redis://"+rr.PrimaryAddr+"/0?wait_replicas=1&wait_timeout=200ms", coordinator.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	// reader reads the primary without waiting; onReplica reads the replica.
	reader, err := coordinator.NewRedis(redis.NewClient(&redis.Options{Addr: rr.PrimaryAddr}), coordinator.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reader.Close() })
	onReplica := redis.NewClient(&redis.Options{Addr: rr.ReplicaAddr})
	t.Cleanup(func() { _ = onReplica.Close() })

	tp, err := reader.CreateTopic(ctx, "quiet", coordinator.TopicConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	ta := startAgentOn(t, objectlog.NewMemBucket(), index, func(c *agent.Config) {
		c.CommitTimeout = 500 * time.Millisecond
		c.TopicCacheTTL = time.Hour
	})
	// The partition's log on the replica (the index's key layout, see
	// coordinator/log.go): a reader may see an offset only once it is there.
	replicaLog := prefix + "{t:" + tp.ID.String() + ":0}:log"

	// Every watermark a reader can learn, checked against the replica the
	// moment it arrives.
	type seen struct {
		hwm       int64
		onReplica int64
		err       error
	}
	notes := make(chan seen, 100)
	subCtx, cancelSub := context.WithCancel(ctx)
	defer cancelSub()
	if err := reader.SubscribeWatermarks(subCtx, func(w coordinator.Watermark) {
		if w.TopicID != tp.ID {
			return
		}
		n, err := onReplica.ZCard(context.Background(), replicaLog).Result()
		notes <- seen{w.HighWatermark, n, err}
	}); err != nil {
		t.Fatal(err)
	}

	resume := testenv.StopRedisReplica(t, rr)
	// Offset commits and topic creation wait too, and answer UNAVAILABLE.
	_, err = ta.group.CommitOffsets(ctx, connect.NewRequest(&stratav1.CommitOffsetsRequest{
		Group: "g", Offsets: []*stratav1.PartitionOffset{{Topic: "quiet", Partition: 0, Offset: 0}}}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "only 0 of 1 replicas acknowledged") {
		t.Fatalf("commit offsets with the replica stopped: %v; want Unavailable, only 0 of 1 replicas acknowledged", err)
	}
	_, err = ta.admin.CreateTopic(ctx, connect.NewRequest(&stratav1.CreateTopicRequest{Name: "other", Partitions: 1}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "only 0 of 1 replicas acknowledged") {
		t.Fatalf("create topic with the replica stopped: %v; want Unavailable, only 0 of 1 replicas acknowledged", err)
	}
	_, err = produce(ctx, ta.producer, "quiet", rec("", "late"))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("produce with the replica stopped: %v; want Unavailable, 0 of 1 replicas", err)
	}
	latest := func() int64 {
		t.Helper()
		res, err := listOffsets(t, ta.consumer, latest("quiet", 0))
		if err != nil {
			t.Fatal(err)
		}
		return res[0].GetOffset()
	}
	// While the replica is stopped the agent keeps trying; nothing shows.
	time.Sleep(time.Second)
	if off := latest(); off != 0 {
		t.Fatalf("latest offset %d with the replica stopped; want 0", off)
	}
	select {
	case n := <-notes:
		t.Fatalf("notification %+v with the replica stopped", n)
	default:
	}

	resume()
	deadline := time.Now().Add(30 * time.Second)
	for latest() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("latest offset %d 30 s after the replica resumed, with no further produce; want 1", latest())
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case n := <-notes:
		if n.err != nil || n.hwm != 1 || n.onReplica != 1 {
			t.Fatalf("notification of high watermark %d when the replica had %d entries (%v); want 1 and 1", n.hwm, n.onReplica, n.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no notification of the high watermark")
	}
	got, err := readFrom(t, ta, "quiet", 0, 0)
	if err != nil || len(got) != 1 || got[0] != "late" {
		t.Fatalf("fetched %v, %v; want offset 0: %q", got, err, "late")
	}
}

// TestJanitorShowsCommitOfDeadAgent: a commit whose WAIT failed and whose
// agent died (nothing finishes it) is made visible by the next janitor
// pass once the replica has it, without another produce to the partition.
// Not parallel: it stops the shared replica.
func TestJanitorShowsCommitOfDeadAgent(t *testing.T) {
	rr := testenv.RedisReplica(t)
	ctx := t.Context()
	prefix := "janitor-wait-" + uuid.NewString() + ":"
	index, err := coordinator.Open(ctx, "redis://"+rr.PrimaryAddr+"/0?wait_replicas=1&wait_timeout=200ms", coordinator.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = index.Close() })
	reader, err := coordinator.NewRedis(redis.NewClient(&redis.Options{Addr: rr.PrimaryAddr}), coordinator.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reader.Close() })
	tp, err := reader.CreateTopic(ctx, "orphaned", coordinator.TopicConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}

	// The dead agent's commit: it ran, its WAIT failed, nobody retries it.
	resume := testenv.StopRedisReplica(t, rr)
	dead := coordinator.SegmentCommit{SegmentID: "dead", SegmentKey: "segments/dead.seg", Chunks: []coordinator.ChunkCommit{{
		TopicID: tp.ID, Partition: 1, Batches: []coordinator.BatchCommit{{ByteLength: 10, Records: 2, MaxTimestamp: 1, ProducerID: -1}}}}}
	if _, err := index.CommitSegment(ctx, dead); !errors.Is(err, coordinator.ErrUnavailable) {
		t.Fatalf("commit with the replica stopped: %v, want index unavailable", err)
	}
	ta := startAgentOn(t, objectlog.NewMemBucket(), index, func(c *agent.Config) { c.JanitorInterval = 0 })
	hwm := func() int64 {
		t.Helper()
		st, err := reader.PartitionState(ctx, tp.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		return st.HighWatermark
	}
	// Not durable: the janitor leaves it invisible.
	if _, err := ta.agent.RunJanitor(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if h := hwm(); h != 0 {
		t.Fatalf("high watermark %d after a janitor pass with the replica stopped; want 0", h)
	}

	resume()
	for deadline := time.Now().Add(30 * time.Second); hwm() != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("high watermark %d after janitor passes with the replica running; want 2", hwm())
		}
		if _, err := ta.agent.RunJanitor(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := reader.PartitionState(ctx, tp.ID, 0); err != nil || st.HighWatermark != 0 {
		t.Fatalf("partition 0: high watermark %d, %v; want 0", st.HighWatermark, err)
	}
}
