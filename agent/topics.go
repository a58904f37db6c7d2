package agent

import (
	"context"
	"sync"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// topicCache keeps topic metadata for a short while, so produce and fetch do
// not read the index's metadata slot on every request. Staleness is bounded
// by the TTL, and never decides a final answer:
//   - misses are not cached, so "no such topic" always comes from the index;
//   - a partition past the cached count is checked against a fresh read
//     before it is refused (partitionTopic; Produce likewise), so partitions
//     added by CreatePartitions on any agent are usable at once;
//   - a record over the cached max.message.bytes is checked against a
//     fresh read before it is refused (Produce);
//   - an index answer that the cached topic's partition does not exist
//     (the topic was deleted, perhaps created again under the same name)
//     invalidates the entry and is retried on the fresh topic (refreshTopic);
//     a produce whose commit met a deleted topic that now exists again is
//     answered retryable (errTopicRecreated).
type topicCache struct {
	index coordinator.Topics
	ttl   time.Duration

	mu      sync.Mutex
	entries map[string]topicEntry
}

type topicEntry struct {
	topic   coordinator.Topic
	fetched time.Time
}

func newTopicCache(index coordinator.Topics, ttl time.Duration) *topicCache {
	return &topicCache{index: index, ttl: ttl, entries: map[string]topicEntry{}}
}

// get returns the topic named name, from the cache while it is fresh.
func (c *topicCache) get(ctx context.Context, name string) (coordinator.Topic, error) {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) < c.ttl {
		return e.topic, nil
	}
	t, err := c.index.DescribeTopic(ctx, name)
	if err != nil {
		return coordinator.Topic{}, err
	}
	c.put(t)
	return t, nil
}

func (c *topicCache) put(t coordinator.Topic) {
	c.mu.Lock()
	c.entries[t.Name] = topicEntry{topic: t, fetched: time.Now()}
	c.mu.Unlock()
}

func (c *topicCache) invalidate(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.mu.Unlock()
}
