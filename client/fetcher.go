package client

// One fetcher per owned partition: Fetch long polls from its position into
// the consumer's bounded batch channel, which Poll drains. A fetcher blocks
// while the channel is full, so a slow application bounds what is buffered.
//
// A position belongs to one topic, not to a name (KIP-516): the fetcher
// keeps the topic id its first answer gave and sends it on every Fetch. If
// the topic is deleted, the agent answers NOT_FOUND rather than reading a
// new topic of the same name from the old position; once a topic of the
// name exists again, the fetcher starts it where the reset policy says.

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

type fetcher struct {
	tp TopicPartition
	// topicID is the id of the topic the position belongs to, from the
	// first answer; "" until then.
	topicID string
	cancel  context.CancelFunc
	done    chan struct{}
	// stopped is set by Poll's goroutine when it stops the fetcher: its
	// batches still in the channel are dropped.
	stopped bool
}

// fetchedBatch is one Fetch answer's records.
type fetchedBatch struct {
	f       *fetcher
	records []*stratav1.ConsumedRecord
}

func (f *fetcher) stop() {
	f.stopped = true
	f.cancel()
}

// topicID is the id of the topic the position from belongs to ("" when not
// known yet: the first answer tells it).
func (c *GroupConsumer) startFetcher(tp TopicPartition, from int64, topicID string) *fetcher {
	ctx, cancel := context.WithCancel(c.bgCtx)
	f := &fetcher{tp: tp, topicID: topicID, cancel: cancel, done: make(chan struct{})}
	go c.fetch(ctx, f, from)
	return f
}

func (c *GroupConsumer) fetch(ctx context.Context, f *fetcher, next int64) {
	defer close(f.done)
	failures := 0
	for ctx.Err() == nil {
		resp, err := c.consumer.Fetch(ctx, connect.NewRequest(&stratav1.FetchRequest{
			Topic:          f.tp.Topic,
			Partition:      f.tp.Partition,
			Offset:         next,
			MaxBytes:       c.cfg.MaxBytes,
			MaxWait:        durationpb.New(c.cfg.MaxWait),
			TopicId:        f.topicID,
			IsolationLevel: isolationLevel(c.cfg.ReadCommitted),
		}))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			if connect.CodeOf(err) == connect.CodeNotFound && f.topicID != "" {
				// The topic of this position was deleted (and maybe
				// created again under its name: KIP-516). The position
				// means nothing in a new topic, so the fetcher never moves
				// to it on its own: the group's next heartbeat revokes the
				// old topic's partition (OnLost) and assigns the new
				// one's, which starts where the reset policy says.
				if failures == 1 {
					c.log.Warn("topic deleted under the fetcher; waiting for the group to revoke it", "partition", f.tp, "position", next)
				}
				if !sleep(ctx, backoff(failures)) {
					return
				}
				continue
			}
			if connect.CodeOf(err) == connect.CodeOutOfRange {
				// Retention passed the position, or the topic was made
				// anew: start again where the reset policy says.
				bounds, berr := c.bounds(ctx, []TopicPartition{f.tp})
				if b, ok := bounds[f.tp]; berr == nil && ok {
					reset := b.reset(c.cfg.Reset)
					c.log.Warn("position outside the log; resetting", "partition", f.tp, "position", next,
						"log_start", b.logStart, "high_watermark", b.highWatermark, "reset", c.cfg.Reset, "start", reset)
					if reset != next {
						next = reset
						continue
					}
				}
			}
			if failures == 1 || failures%20 == 0 {
				c.log.Warn("fetch failed; retrying", "partition", f.tp, "offset", next, "err", err, "failures", failures)
			}
			if !sleep(ctx, backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		if f.topicID == "" {
			f.topicID = resp.Msg.GetTopicId()
		}
		recs := resp.Msg.GetRecords()
		// Records below the position (the agent answers whole batches in
		// some paths) were read already.
		for len(recs) > 0 && recs[0].GetOffset() < next {
			recs = recs[1:]
		}
		if len(recs) > 0 {
			select {
			case c.batches <- fetchedBatch{f: f, records: recs}:
			case <-ctx.Done():
				return
			}
			next = recs[len(recs)-1].GetOffset() + 1
		}
		if n := resp.Msg.GetNextOffset(); n > next {
			next = n
		}
		if len(recs) == 0 && resp.Msg.GetNextOffset() <= next && c.cfg.MaxWait == 0 {
			// Nothing new and no long poll: do not spin.
			if !sleep(ctx, 100*time.Millisecond) {
				return
			}
		}
	}
}
