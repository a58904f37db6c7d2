package client

// One fetch loop per consumer reads every owned partition with one
// ConsumerService.FetchBatches long poll (Kafka's Fetch of many
// partitions), decodes the record batches it answers here (control
// batches, and under read_committed aborted transactions, dropped) and
// hands each partition's records to the consumer's bounded batch channel,
// which Poll drains. The loop blocks while the channel is full, so a slow
// application bounds what is buffered. A fetcher is one partition's place
// in the loop: its position, its topic id, its failures.
//
// A partition's error is its own: it backs off (or resets, for an offset
// out of range) while the others go on being fetched.
//
// A position belongs to one topic, not to a name (KIP-516): the fetcher
// keeps the topic id its first answer gave and sends it on every fetch. If
// the topic is deleted, the agent answers NOT_FOUND rather than reading a
// new topic of the same name from the old position; once a topic of the
// name exists again, the fetcher starts it where the reset policy says.

import (
	"context"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

type fetcher struct {
	tp  TopicPartition
	ctx context.Context
	// cancel ends the fetcher: the loop drops it at its next round.
	cancel context.CancelFunc
	// done is closed by stop. Records of a stopped fetcher still in the
	// channel are dropped by Poll (stopped), so nothing waits for the loop.
	done chan struct{}
	// stopped is set by Poll's goroutine when it stops the fetcher: its
	// batches still in the channel are dropped.
	stopped bool

	// The fetch loop's only.
	// topicID is the id of the topic the position belongs to, from the
	// first answer; "" until then.
	topicID  string
	next     int64 // the position: the next offset to fetch
	failures int
	retryAt  time.Time
}

// fetchedBatch is one fetch's records of one partition.
type fetchedBatch struct {
	f       *fetcher
	records []Record
}

func (f *fetcher) stop() {
	if f.stopped {
		return
	}
	f.stopped = true
	f.cancel()
	close(f.done)
}

// fetchLoop is the consumer's one fetch loop and the fetchers it serves.
type fetchLoop struct {
	mu       sync.Mutex
	fetchers []*fetcher
	started  bool
	// changed (cap 1) tells the loop the fetchers changed: a fetch in
	// flight is cut short, so a new partition is read at once.
	changed chan struct{}
}

// topicID is the id of the topic the position from belongs to ("" when not
// known yet: the first answer tells it).
func (c *GroupConsumer) startFetcher(tp TopicPartition, from int64, topicID string) *fetcher {
	ctx, cancel := context.WithCancel(c.bgCtx)
	f := &fetcher{tp: tp, ctx: ctx, topicID: topicID, next: from, cancel: cancel, done: make(chan struct{})}
	l := &c.fetches
	l.mu.Lock()
	l.fetchers = append(l.fetchers, f)
	if !l.started {
		l.started = true
		l.changed = make(chan struct{}, 1)
		go c.fetch(c.bgCtx, l)
	}
	l.mu.Unlock()
	context.AfterFunc(ctx, l.signal) // stopped: fetch no more of it
	l.signal()
	return f
}

func (l *fetchLoop) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// live returns the fetchers not stopped, dropping the others.
func (l *fetchLoop) live() []*fetcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.fetchers[:0]
	for _, f := range l.fetchers {
		if f.ctx.Err() == nil {
			kept = append(kept, f)
		}
	}
	clear(l.fetchers[len(kept):])
	l.fetchers = kept
	return append([]*fetcher(nil), kept...)
}

// fetch is the fetch loop: one FetchBatches of every partition not backing
// off, until the consumer closes.
func (c *GroupConsumer) fetch(ctx context.Context, l *fetchLoop) {
	for ctx.Err() == nil {
		now := time.Now()
		wait := time.Minute
		var ready []*fetcher
		for _, f := range l.live() {
			if f.retryAt.After(now) {
				wait = min(wait, f.retryAt.Sub(now))
				continue
			}
			ready = append(ready, f)
		}
		if len(ready) == 0 {
			if !c.waitChange(ctx, l, wait) {
				return
			}
			continue
		}
		req := &stratav1.FetchBatchesRequest{
			MaxWait:        durationpb.New(c.cfg.MaxWait),
			MinBytes:       1,
			MaxBytes:       c.cfg.MaxBytes,
			IsolationLevel: isolationLevel(c.cfg.ReadCommitted),
		}
		for _, f := range ready {
			req.Partitions = append(req.Partitions, &stratav1.FetchBatchesPartition{
				Topic: f.tp.Topic, Partition: f.tp.Partition, Offset: f.next, TopicId: f.topicID,
			})
		}
		// A change of the fetchers (a partition assigned or stopped)
		// cuts the long poll short: the next round asks for the new set.
		call, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-l.changed:
				cancel()
			case <-call.Done():
			}
		}()
		resp, err := c.consumer.FetchBatches(call, connect.NewRequest(req))
		cut := call.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if cut {
				continue
			}
			for _, f := range ready {
				c.fetchFailed(ctx, f, err)
			}
			continue
		}
		results := resp.Msg.GetPartitions()
		if len(results) != len(ready) {
			c.log.Warn("fetch answered another number of partitions than asked; retrying", "asked", len(ready), "answered", len(results))
			continue
		}
		got := false
		for i, f := range ready {
			if !c.fetched(ctx, f, results[i]) {
				return
			}
			got = got || len(results[i].GetRecordBatches()) > 0
		}
		if !got && c.cfg.MaxWait == 0 && !cut {
			// Nothing new and no long poll: do not spin.
			if !c.waitChange(ctx, l, 100*time.Millisecond) {
				return
			}
		}
	}
}

// waitChange waits for d or a change of the fetchers; false when ctx ended.
func (c *GroupConsumer) waitChange(ctx context.Context, l *fetchLoop, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.changed:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// fetched takes one partition's answer: its records go to Poll and its
// position moves past them (and past control batches and aborted ones),
// or its error is handled. False when ctx ended.
func (c *GroupConsumer) fetched(ctx context.Context, f *fetcher, res *stratav1.FetchBatchesPartitionResult) bool {
	if f.ctx.Err() != nil {
		return true // stopped meanwhile
	}
	if e := res.GetError(); e != nil {
		c.fetchFailed(ctx, f, partitionError(e))
		return true
	}
	recs, next, err := decodeFetched(res, f.next, c.cfg.ReadCommitted)
	if err != nil {
		c.fetchFailed(ctx, f, connect.NewError(connect.CodeDataLoss, err))
		return true
	}
	f.failures = 0
	if f.topicID == "" {
		f.topicID = res.GetTopicId()
	}
	if len(recs) > 0 {
		select {
		case c.batches <- fetchedBatch{f: f, records: recs}:
		case <-f.ctx.Done():
			return true
		case <-ctx.Done():
			return false
		}
		next = max(next, recs[len(recs)-1].Offset+1)
	}
	f.next = max(f.next, next)
	return true
}

// fetchFailed handles a partition's failed fetch: it backs off, or, when
// the position is outside the log, resets it by the reset policy.
func (c *GroupConsumer) fetchFailed(ctx context.Context, f *fetcher, err error) {
	f.failures++
	f.retryAt = time.Now().Add(backoff(f.failures))
	if connect.CodeOf(err) == connect.CodeNotFound && f.topicID != "" {
		// The topic of this position was deleted (and maybe created
		// again under its name: KIP-516). The position means nothing in
		// a new topic, so the fetcher never moves to it on its own: the
		// group's next heartbeat revokes the old topic's partition
		// (OnLost) and assigns the new one's, which starts where the
		// reset policy says.
		if f.failures == 1 {
			c.log.Warn("topic deleted under the fetcher; waiting for the group to revoke it", "partition", f.tp, "position", f.next)
		}
		return
	}
	if connect.CodeOf(err) == connect.CodeOutOfRange {
		// Retention passed the position, or the topic was made anew:
		// start again where the reset policy says.
		bounds, berr := c.bounds(ctx, []TopicPartition{f.tp})
		if b, ok := bounds[f.tp]; berr == nil && ok {
			reset := b.reset(c.cfg.Reset)
			c.log.Warn("position outside the log; resetting", "partition", f.tp, "position", f.next,
				"log_start", b.logStart, "high_watermark", b.highWatermark, "reset", c.cfg.Reset, "start", reset)
			if reset != f.next {
				f.next, f.retryAt = reset, time.Time{}
				return
			}
		}
	}
	if f.failures == 1 || f.failures%20 == 0 {
		c.log.Warn("fetch failed; retrying", "partition", f.tp, "offset", f.next, "err", err, "failures", f.failures)
	}
}
