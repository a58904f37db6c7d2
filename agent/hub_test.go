package agent

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// The hub hears every commit of the deployment; it must hold only what this
// agent's readers wait on, or it grows with every partition ever created.
func TestHubKeepsOnlyWhatReadersWaitOn(t *testing.T) {
	t.Parallel()
	h := newHub()
	now := time.Now()
	h.now = func() time.Time { return now }
	h.lastPrune = now
	deleted, live := uuid.New(), uuid.New()

	// Commits to partitions nobody here reads leave nothing behind.
	for p := range int32(1000) {
		h.publish(coordinator.Watermark{TopicID: uuid.New(), Partition: p, HighWatermark: 1})
	}
	if parts, topics := h.size(); parts != 0 || topics != 0 {
		t.Fatalf("after commits nobody waits on: %d partitions, %d topics kept", parts, topics)
	}

	var waiting []<-chan struct{}
	for p := range int32(10) {
		for _, id := range []uuid.UUID{deleted, live} {
			ch, _ := h.changed(partitionKey{id, p})
			if id == deleted {
				waiting = append(waiting, ch)
			}
		}
	}
	deletedTopic := h.topicChanged(deleted)
	h.topicChanged(live)
	if parts, topics := h.size(); parts != 20 || topics != 2 {
		t.Fatalf("%d partitions, %d topics watched, want 20 and 2", parts, topics)
	}

	// A reader found the topic deleted: its entries go, and whoever waits
	// on them wakes to find out.
	h.forgetTopic(deleted)
	for i, ch := range append(waiting, deletedTopic) {
		select {
		case <-ch:
		default:
			t.Fatalf("waiter %d of the deleted topic was not woken", i)
		}
	}
	if parts, topics := h.size(); parts != 10 || topics != 1 {
		t.Fatalf("after forgetting the deleted topic: %d partitions, %d topics, want 10 and 1", parts, topics)
	}

	// Entries no reader asked for in hubIdleAfter go; one asked for
	// recently stays, with the watermark it saw.
	now = now.Add(hubIdleAfter / 2)
	_, _ = h.changed(partitionKey{live, 0})
	h.publish(coordinator.Watermark{TopicID: live, Partition: 0, HighWatermark: 7})
	now = now.Add(hubIdleAfter/2 + time.Second)
	h.publish(coordinator.Watermark{TopicID: live, Partition: 3, HighWatermark: 1})
	if parts, topics := h.size(); parts != 1 || topics != 0 {
		t.Fatalf("after %s idle: %d partitions, %d topics, want only the one read since", hubIdleAfter, parts, topics)
	}
	if _, hwm := h.changed(partitionKey{live, 0}); hwm != 7 {
		t.Fatalf("the kept entry's watermark is %d, want 7", hwm)
	}
	now = now.Add(2 * hubIdleAfter)
	h.publish(coordinator.Watermark{TopicID: live, Partition: 0, HighWatermark: 8})
	if parts, topics := h.size(); parts != 0 || topics != 0 {
		t.Fatalf("after everything went idle: %d partitions, %d topics", parts, topics)
	}
}
