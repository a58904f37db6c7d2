package agent_test

// The topic cache never decides a final answer: the tests run agents whose
// cache lives an hour, and change topics behind their back.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/stratabroker/strata/agent"
	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// A partition added by CreatePartitions, on another agent, is usable at
// once on an agent whose topic cache still holds the old count.
func TestNewPartitionUsableDespiteTopicCache(t *testing.T) {
	t.Parallel()
	long := func(c *agent.Config) { c.TopicCacheTTL = time.Hour }
	a := startAgent(t, long)
	b := startAgentOn(t, a.store, a.index, long)
	a.createTopic(t, "growing", 1, nil)
	// Fill a's cache with the 1-partition topic.
	produceEach(t, a, "growing", stamped(0, 1, "p0"))
	if _, err := b.admin.CreatePartitions(t.Context(), connect.NewRequest(&stratav1.CreatePartitionsRequest{Name: "growing", Total: 2})); err != nil {
		t.Fatal(err)
	}
	resp, err := produce(t.Context(), a.producer, "growing", stamped(1, 2, "p1"))
	if err != nil {
		t.Fatalf("produce to the new partition through an agent with a stale cache: %v", err)
	}
	if r := resp.GetTopics()[0].GetResults()[0]; r.GetPartition() != 1 || r.GetOffset() != 0 {
		t.Errorf("produced at %d/%d, want 1/0", r.GetPartition(), r.GetOffset())
	}
	got, err := listOffsets(t, a.consumer, latest("growing", 1))
	if err != nil || answer(got[0]) != "growing/1 offset 1 ts -1" {
		t.Errorf("ListOffsets of the new partition: %v %v", got, err)
	}
	// A partition that does not exist, even in the index, is still refused.
	_, err = produce(t.Context(), a.producer, "growing", stamped(2, 3, "p2"))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("produce to partition 2 of 2: %v, want InvalidArgument", err)
	}
}

// A produce bound to a deleted topic whose name was given to a new topic
// fails retryably, and the retry reaches the new topic.
func TestProduceToRecreatedTopicIsRetryable(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = time.Hour })
	ta.createTopic(t, "reborn", 1, nil)
	produceEach(t, ta, "reborn", stamped(0, 1, "old"))
	if err := ta.index.DeleteTopic(t.Context(), "reborn"); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.index.CreateTopic(t.Context(), "reborn", coordinator.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := produce(t.Context(), ta.producer, "reborn", stamped(0, 2, "new"))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("produce through the stale cache: %v, want Unavailable (retryable)", err)
	}
	resp, err := produce(t.Context(), ta.producer, "reborn", stamped(0, 2, "new"))
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if off := resp.GetTopics()[0].GetResults()[0].GetOffset(); off != 0 {
		t.Errorf("retry landed at offset %d, want 0 of the new topic", off)
	}
	// A topic deleted for good stays NotFound.
	if err := ta.index.DeleteTopic(t.Context(), "reborn"); err != nil {
		t.Fatal(err)
	}
	if _, err := produce(t.Context(), ta.producer, "reborn", stamped(0, 3, "gone")); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("produce to a deleted topic: %v, want NotFound", err)
	}
}

// ListOffsets through an agent whose cache holds a deleted topic: a name
// given to a new topic reaches it; a name deleted for good is NotFound.
func TestListOffsetsAfterTopicDeleted(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = time.Hour })
	ta.createTopic(t, "phoenix", 1, nil)
	produceEach(t, ta, "phoenix", stamped(0, 1, "a"), stamped(0, 2, "b"))
	if got, err := listOffsets(t, ta.consumer, latest("phoenix", 0)); err != nil || got[0].GetOffset() != 2 {
		t.Fatalf("latest: %v %v", got, err)
	}
	if err := ta.index.DeleteTopic(t.Context(), "phoenix"); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.index.CreateTopic(t.Context(), "phoenix", coordinator.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if got, err := listOffsets(t, ta.consumer, latest("phoenix", 0)); err != nil || got[0].GetOffset() != 0 {
		t.Errorf("latest of the new topic: %v %v, want offset 0", got, err)
	}
	if err := ta.index.DeleteTopic(t.Context(), "phoenix"); err != nil {
		t.Fatal(err)
	}
	_, err := listOffsets(t, ta.consumer, latest("phoenix", 0))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || !strings.Contains(ce.Message(), `topic "phoenix" does not exist`) {
		t.Fatalf("latest of a deleted topic: %v, want NotFound naming it", err)
	}
	if info := clientDetail[*stratav1.ErrorInfo](t, ce); info.GetKafkaErrorName() != "UNKNOWN_TOPIC_OR_PARTITION" {
		t.Errorf("ErrorInfo %v", info)
	}
}

// A stream opened through an agent whose cache holds a deleted topic
// reads the topic now under that name.
func TestSubscribeAfterTopicRecreated(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = time.Hour })
	ta.createTopic(t, "again", 1, nil)
	produceEach(t, ta, "again", stamped(0, 1, "old"))
	if err := ta.index.DeleteTopic(t.Context(), "again"); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.index.CreateTopic(t.Context(), "again", coordinator.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := ta.consumer.Subscribe(ctx, connect.NewRequest(&stratav1.SubscribeRequest{
		Topic: "again", Start: &stratav1.SubscribeRequest_Earliest{Earliest: true}}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.ResponseHeader()
	// Produced after the stream opened: through the same agent, whose
	// produce refreshes the cache when its commit meets the deleted topic.
	for {
		if _, err = produce(ctx, ta.producer, "again", stamped(0, 2, "new")); connect.CodeOf(err) != connect.CodeUnavailable {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() {
		t.Fatalf("stream ended: %v", s.Err())
	}
	recs := s.Msg().GetRecords()
	if len(recs) != 1 || string(recs[0].GetValue()) != "new" || recs[0].GetOffset() != 0 {
		t.Errorf("stream read %v, want the new topic's record at offset 0", recs)
	}
}

// A record within a limit raised on another agent is accepted at once.
func TestRaisedMessageLimitUsableDespiteTopicCache(t *testing.T) {
	t.Parallel()
	long := func(c *agent.Config) { c.TopicCacheTTL = time.Hour }
	a := startAgent(t, long)
	b := startAgentOn(t, a.store, a.index, long)
	a.createTopic(t, "roomy", 1, map[string]string{"max.message.bytes": "1000"})
	produceEach(t, a, "roomy", stamped(0, 1, "small")) // a caches the topic
	big := &stratav1.Record{Value: make([]byte, 1500)}
	if _, err := produce(t.Context(), a.producer, "roomy", big); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("record over the limit: %v, want InvalidArgument", err)
	}
	if _, err := b.admin.UpdateTopicConfig(t.Context(), connect.NewRequest(&stratav1.UpdateTopicConfigRequest{
		Name: "roomy", Set: map[string]string{"max.message.bytes": "2000"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := produce(t.Context(), a.producer, "roomy", big); err != nil {
		t.Errorf("record within the raised limit, through an agent with a stale cache: %v", err)
	}
}

// A fetch through an agent whose cache holds a topic deleted for good says
// the topic does not exist, by name.
func TestFetchAfterTopicDeletedNamesIt(t *testing.T) {
	t.Parallel()
	ta := startAgent(t, func(c *agent.Config) { c.TopicCacheTTL = time.Hour })
	ta.createTopic(t, "gone", 1, nil)
	produceEach(t, ta, "gone", stamped(0, 1, "a"))
	if _, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "gone"})); err != nil {
		t.Fatal(err)
	}
	if err := ta.index.DeleteTopic(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	_, err := ta.consumer.Fetch(t.Context(), connect.NewRequest(&stratav1.FetchRequest{Topic: "gone"}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || !strings.Contains(ce.Message(), `topic "gone" was deleted`) {
		t.Fatalf("fetch of a deleted topic: %v, want NotFound naming it", err)
	}
	if info := clientDetail[*stratav1.ErrorInfo](t, ce); info.GetKafkaErrorName() != "UNKNOWN_TOPIC_OR_PARTITION" {
		t.Errorf("ErrorInfo %v", info)
	}
}
