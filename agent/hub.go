package agent

import (
	"context"
	"sync"

	"github.com/google/uuid"

	"github.com/stratabroker/strata/coordinator"
)

// hub fans the index's watermark notifications out to the long polls and
// subscriptions of this agent: one index subscription per agent, however
// many readers wait. The batcher also publishes its own commits directly, so
// readers on the writing agent wake without a round trip through Redis.
type hub struct {
	mu         sync.Mutex
	partitions map[partitionKey]*partitionWatch
	// topics holds, per topic, a channel closed (and replaced) when any of
	// its partitions' watermarks rises: a subscription following many
	// partitions waits on one channel instead of one per partition.
	topics map[uuid.UUID]chan struct{}
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
}

func newHub() *hub {
	return &hub{partitions: map[partitionKey]*partitionWatch{}, topics: map[uuid.UUID]chan struct{}{}}
}

func (h *hub) watch(k partitionKey) *partitionWatch {
	w := h.partitions[k]
	if w == nil {
		w = &partitionWatch{hwm: -1, changed: make(chan struct{})}
		h.partitions[k] = w
	}
	return w
}

// publish records a new watermark and wakes everyone waiting on the partition.
func (h *hub) publish(wm coordinator.Watermark) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watch(partitionKey{wm.TopicID, wm.Partition})
	if wm.HighWatermark <= w.hwm {
		return
	}
	w.hwm = wm.HighWatermark
	close(w.changed)
	w.changed = make(chan struct{})
	if ch, ok := h.topics[wm.TopicID]; ok {
		close(ch)
		delete(h.topics, wm.TopicID)
	}
}

// topicChanged returns a channel closed on the next rise of any watermark
// of the topic. Take it before reading the partitions' watermarks (changed)
// so that no rise falls between the two.
func (h *hub) topicChanged(topic uuid.UUID) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.topics[topic]
	if !ok {
		ch = make(chan struct{})
		h.topics[topic] = ch
	}
	return ch
}

// changed returns a channel closed on the partition's next rise of the
// watermark, and the highest watermark seen so far (-1 if none).
func (h *hub) changed(k partitionKey) (<-chan struct{}, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.watch(k)
	return w.changed, w.hwm
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
