package agent

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// hubIdleAfter is how long a partition's or topic's entry in the hub lives
// without a reader asking for it. Readers ask at least every
// watermarkRecheck while they wait, so an entry this idle has no waiter.
const hubIdleAfter = time.Minute

// hub fans the index's watermark notifications out to the long polls and
// subscriptions of this agent: one index subscription per agent, however
// many readers wait. The batcher also publishes its own commits directly, so
// readers on the writing agent wake without a round trip through Redis.
//
// It holds entries only for what readers of this agent wait on: a
// notification for a partition nobody here reads is dropped (a reader that
// comes later reads the index first, so it loses nothing), an entry no
// reader asked for in hubIdleAfter is pruned, and a deleted topic's entries
// go as soon as a reader finds it deleted (forgetTopic). The agent sees
// every commit of the deployment, so remembering every partition it was
// told of would grow without bound as topics come and go.
type hub struct {
	now func() time.Time // time.Now; tests move it

	mu         sync.Mutex
	partitions map[partitionKey]*partitionWatch
	// topics holds, per topic, a channel closed (and replaced) when any of
	// its partitions' watermarks rises: a subscription following many
	// partitions waits on one channel instead of one per partition.
	topics    map[uuid.UUID]*topicWatch
	lastPrune time.Time
}

type partitionKey struct {
	topic     uuid.UUID
	partition int32
}

// partitionWatch holds the highest watermark seen and a channel closed (and
// replaced) whenever it rises.
type partitionWatch struct {
	hwm     int64
	changed chan struct{}
	used    time.Time // when a reader last asked for it
}

type topicWatch struct {
	changed chan struct{}
	used    time.Time
}

func newHub() *hub {
	return &hub{
		now:        time.Now,
		partitions: map[partitionKey]*partitionWatch{},
		topics:     map[uuid.UUID]*topicWatch{},
		lastPrune:  time.Now(),
	}
}

// publish records a new watermark and wakes everyone waiting on the partition.
func (h *hub) publish(wm coordinator.Watermark) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneIdle()
	w := h.partitions[partitionKey{wm.TopicID, wm.Partition}]
	if w == nil {
		// Nobody here waits on the partition. Readers take their channel
		// before they read the index, so one that comes later reads this
		// commit there.
		return
	}
	if wm.HighWatermark <= w.hwm {
		return
	}
	w.hwm = wm.HighWatermark
	close(w.changed)
	w.changed = make(chan struct{})
	if tw, ok := h.topics[wm.TopicID]; ok {
		close(tw.changed)
		delete(h.topics, wm.TopicID)
	}
}

// topicChanged returns a channel closed on the next rise of any watermark
// of the topic. Take it before reading the partitions' watermarks (changed)
// so that no rise falls between the two; the partitions must be watched
// (changed called) for their rises to count.
func (h *hub) topicChanged(topic uuid.UUID) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneIdle()
	tw, ok := h.topics[topic]
	if !ok {
		tw = &topicWatch{changed: make(chan struct{})}
		h.topics[topic] = tw
	}
	tw.used = h.now()
	return tw.changed
}

// changed returns a channel closed on the partition's next rise of the
// watermark, and the highest watermark seen since the partition was first
// watched (-1 if none). The watermark is a hint: after an index failover
// that lost commits it may be above the index's, so it never replaces a
// read of the index.
func (h *hub) changed(k partitionKey) (<-chan struct{}, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruneIdle()
	w := h.partitions[k]
	if w == nil {
		w = &partitionWatch{hwm: -1, changed: make(chan struct{})}
		h.partitions[k] = w
	}
	w.used = h.now()
	return w.changed, w.hwm
}

// forgetTopic drops a deleted topic's entries and wakes their waiters, who
// then read the index and find the topic gone.
func (h *hub) forgetTopic(topic uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, w := range h.partitions {
		if k.topic == topic {
			close(w.changed)
			delete(h.partitions, k)
		}
	}
	if tw, ok := h.topics[topic]; ok {
		close(tw.changed)
		delete(h.topics, topic)
	}
}

// pruneIdle drops, every hubIdleAfter/2 at most, the entries no reader
// asked for in hubIdleAfter. The caller holds mu.
func (h *hub) pruneIdle() {
	now := h.now()
	if now.Sub(h.lastPrune) < hubIdleAfter/2 {
		return
	}
	h.lastPrune = now
	for k, w := range h.partitions {
		if now.Sub(w.used) >= hubIdleAfter {
			// No waiter holds its channel (they come back every
			// watermarkRecheck), so it need not be closed.
			delete(h.partitions, k)
		}
	}
	for id, tw := range h.topics {
		if now.Sub(tw.used) >= hubIdleAfter {
			delete(h.topics, id)
		}
	}
}

// size is the number of partition and topic entries, for tests and metrics.
func (h *hub) size() (partitions, topics int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.partitions), len(h.topics)
}

// waitAbove waits until the partition's watermark is seen above offset, or
// ctx ends. It reports whether the watermark rose. The caller must have
// checked the index after taking ch (see changed) to avoid a lost wake-up.
func waitAbove(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
