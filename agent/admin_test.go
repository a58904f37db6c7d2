package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// The AdminService's topic deletes are the Kafka front-end's (RemoveTopic):
// a long poll of the deleted topic on this agent is woken by the delete
// itself, not by its next watermark recheck, and answers that the topic is
// gone.
func TestAdminDeleteTopicWakesLongPolls(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, func(c *Config) { c.MaxFetchWait = time.Minute })
	topic := env.createTopic(t, 1)
	key := partitionKey{topic.ID, 0}

	fetched := make(chan error, 1)
	go func() {
		req := fetchReq(topic, 0, 0)
		req.MaxWait = durationpb.New(time.Minute)
		_, err := a.Fetch(t.Context(), req)
		fetched <- err
	}()
	// The fetch waits at the (empty) log's end once the hub has its entry.
	deadline := time.Now().Add(30 * time.Second)
	watching := func() bool {
		a.hub.mu.Lock()
		defer a.hub.mu.Unlock()
		return a.hub.partitions[key] != nil
	}
	for !watching() {
		if time.Now().After(deadline) {
			t.Fatal("the fetch never waited on the hub")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wake, _ := a.hub.changed(key)
	topicWake := a.hub.topicChanged(topic.ID)

	if _, err := a.DeleteTopic(t.Context(), &stratav1.DeleteTopicRequest{Name: topic.Name}); err != nil {
		t.Fatal(err)
	}
	for what, ch := range map[string]<-chan struct{}{"partition": wake, "topic": topicWake} {
		select {
		case <-ch:
		default:
			t.Errorf("AdminService.DeleteTopic returned with the %s's waiters still asleep", what)
		}
	}
	select {
	case err := <-fetched:
		if !errors.Is(err, ErrUnknownTopicOrPartition) || !strings.Contains(err.Error(), "was deleted") {
			t.Fatalf("the woken fetch answered %v, want ErrUnknownTopicOrPartition saying the topic was deleted", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fetch did not end after its topic was deleted")
	}

	// A second delete finds nothing: UNKNOWN_TOPIC_OR_PARTITION, naming it.
	_, err := a.DeleteTopic(t.Context(), &stratav1.DeleteTopicRequest{Name: topic.Name})
	if !errors.Is(err, ErrUnknownTopicOrPartition) || !errors.Is(err, coordinator.ErrNotFound) || !strings.Contains(err.Error(), topic.Name) {
		t.Fatalf("delete of a deleted topic: %v", err)
	}
}

// The AdminService's creates are NewTopic: a name that collides with an
// existing topic's in Kafka's metric names is refused as over Kafka, and
// the partition limits carry the limit (LimitExceeded) as the index's did.
func TestAdminCreateTopicSharesKafkaRules(t *testing.T) {
	t.Parallel()
	env := newReadEnv(t)
	a, _ := env.startAgent(t, nil)
	if _, err := a.CreateTopic(t.Context(), &stratav1.CreateTopicRequest{Name: "metric_a"}); err != nil {
		t.Fatal(err)
	}
	_, err := a.CreateTopic(t.Context(), &stratav1.CreateTopicRequest{Name: "metric.a"})
	if !errors.Is(err, coordinator.ErrInvalidTopicName) || !strings.Contains(err.Error(), `collides with existing topic "metric_a"`) {
		t.Fatalf("create metric.a beside metric_a: %v, want ErrInvalidTopicName naming the collision", err)
	}
	_, err = a.CreateTopic(t.Context(), &stratav1.CreateTopicRequest{Name: "wide", Partitions: coordinator.MaxPartitions + 1})
	var le *coordinator.LimitError
	if !errors.As(err, &le) || le.Name != "partitions" || le.Limit != coordinator.MaxPartitions || !errors.Is(err, coordinator.ErrInvalidPartitions) {
		t.Fatalf("create with %d partitions: %v, want a partitions LimitError", coordinator.MaxPartitions+1, err)
	}
	_, err = a.CreatePartitions(t.Context(), &stratav1.CreatePartitionsRequest{Name: "metric_a", Total: 1})
	if !errors.Is(err, coordinator.ErrInvalidPartitions) || !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("grow to the same count: %v, want ErrInvalidPartitions", err)
	}
	resp, err := a.CreatePartitions(t.Context(), &stratav1.CreatePartitionsRequest{Name: "metric_a", Total: 3})
	if err != nil || resp.GetTopic().GetPartitions() != 3 {
		t.Fatalf("grow to 3: %v %v", resp, err)
	}
}
