package agent

// ConsumerService.Subscribe in the core (DESIGN.md, "Read path" 5): the
// fetch loop kept open over the front-end's server stream, for a set of
// partitions of one topic. Each message takes records from the partitions
// with data round-robin, up to max_bytes; when every partition is caught
// up the stream waits on the hub (one channel per topic) and re-reads the
// watermarks every watermarkRecheck, because notifications can be lost
// while the index connection is down. Following all partitions includes
// those added later: the topic's metadata is re-read as often as the topic
// cache allows (TopicCacheTTL, the staleness an operator already accepts
// for it), and a new partition followed from "latest" is read from its
// start (its records are all newer than the stream).
//
// A partition whose position falls below the log start (retention) jumps
// to the log start. Transient index or store failures (those the
// front-end's SubscribeStream.Transient names: Connect's Unavailable) are
// retried with backoff for up to streamRetryFor before the stream fails
// with the last.
//
// A stream follows one topic id (KIP-516): when the topic is deleted,
// created again or not, the stream ends with a not-found error
// (ErrUnknownTopicID or ErrUnknownTopicOrPartition) naming the topic,
// since its positions mean nothing in a new topic. A stream idle for its
// keep-alive interval gets a message with no records and keep_alive set,
// so proxies that cut idle connections leave it open.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratabroker/strata/coordinator"
	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

const (
	// minTopicRefresh keeps a stream from re-reading topic metadata in a
	// tight loop when the topic cache is off (TopicCacheTTL 0).
	minTopicRefresh = 100 * time.Millisecond
	// streamRetryFor bounds how long a stream rides out transient failures.
	streamRetryFor = 30 * time.Second
	// minKeepAlive is the shortest keep-alive interval a stream may ask
	// for: keep-alives are for idle timeouts of tens of seconds, not a
	// clock to drive an agent's work with.
	minKeepAlive = time.Second
)

// errStreamBroken marks a failed send, after which a stream must end.
var errStreamBroken = errors.New("stream broken")

// SubscribeStream is where a subscription's messages go: the front-end's
// stream.
type SubscribeStream struct {
	// Started, if not nil, is called once every start position is fixed,
	// before any record is sent (the Connect front-end sends the response
	// headers then: a client that waits for them knows that whatever it
	// produces from then on reaches the stream, even from "latest"). Its
	// error ends the subscription, returned as it is.
	Started func() error
	// Send sends one message; its error ends the subscription.
	Send func(*stratav1.SubscribeResponse) error
	// Transient reports whether a failed read is one clients retry (the
	// front-end's error table says which): the subscription rides those
	// out, retrying with backoff for up to 30s, and ends with any other.
	// Nil: it ends with every failure.
	Transient func(error) bool
}

// Subscribe is ConsumerService.Subscribe in the core: it validates req,
// fixes every partition's start position, and sends records to out as they
// are committed, until ctx ends, out.Send fails, or a read fails for good.
// Errors: ErrInvalid, ErrUnknownTopicOrPartition, ErrUnknownTopicID (the
// topic was deleted under the stream), ErrClosed (the agent is shutting
// down: resume on another agent), the failure that ended it, or ctx's.
func (a *Agent) Subscribe(ctx context.Context, req *stratav1.SubscribeRequest, out SubscribeStream) error {
	s, err := a.newSubscription(ctx, req)
	if errors.Is(err, coordinator.ErrNotFound) && !errors.Is(err, errUnknownTopicOrPartition) {
		// The index knows no partition of the cached topic: it may have been
		// deleted and its name given to a new topic. Once more, afresh.
		a.topics.invalidate(req.GetTopic())
		s, err = a.newSubscription(ctx, req)
	}
	if err != nil {
		return err
	}
	if out.Started != nil {
		if err := out.Started(); err != nil {
			return err
		}
	}
	s.transient = out.Transient
	err = s.run(ctx, out.Send)
	if err != nil && ctx.Err() != nil && a.shuttingDown() {
		// The agent ended the stream, not the client: ErrClosed tells the
		// client to resume on another agent.
		err = errClosed
	}
	return err
}

// subscription is the state of one Subscribe stream.
type subscription struct {
	a        *Agent
	req      *stratav1.SubscribeRequest
	topic    coordinator.Topic
	all      bool  // following every partition, present and future
	maxBytes int64 // for the records of one message (readBudget)
	// keepAlive is the idle time after which a keep-alive goes; 0: never.
	keepAlive time.Duration
	lastSent  time.Time
	started   bool // run has begun: records may have been sent
	follows   []*follow
	rr        int // where the next message starts taking records
	// wake is the hub's channel for the topic, taken by step before it
	// looked at the watermarks, so a rise after the look closes it.
	wake <-chan struct{}
	// transient is SubscribeStream.Transient.
	transient func(error) bool
}

// follow is one partition of a subscription.
type follow struct {
	key  partitionKey
	next int64
	// indexHWM is the watermark the index last reported; hubSeen is the
	// hub's when the partition was last read, so the hub's news counts
	// once.
	indexHWM int64
	hubSeen  int64
}

func (a *Agent) newSubscription(ctx context.Context, m *stratav1.SubscribeRequest) (*subscription, error) {
	maxBytes, err := a.readBudget(m.GetMaxBytes())
	if err != nil {
		return nil, err
	}
	if err := checkIsolation(m.GetIsolationLevel()); err != nil {
		return nil, err
	}
	if ts, ok := m.GetStart().(*stratav1.SubscribeRequest_Timestamp); ok {
		if err := ts.Timestamp.CheckValid(); err != nil {
			return nil, invalidf("timestamp: %v", err)
		}
	}
	if m.GetTopic() == "" {
		return nil, invalidf("topic name is empty")
	}
	wantID, err := parseTopicID(m.GetTopicId())
	if err != nil {
		return nil, err
	}
	keepAlive := a.cfg.SubscribeKeepAlive
	if d := m.GetKeepAliveInterval(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, invalidf("keep_alive_interval: %v", err)
		}
		keepAlive = d.AsDuration()
		if keepAlive < 0 || (keepAlive > 0 && keepAlive < minKeepAlive) {
			return nil, invalidf("keep_alive_interval %s must be 0 (off) or at least %s", keepAlive, minKeepAlive)
		}
	}
	s := &subscription{a: a, req: m, all: len(m.GetPartitions()) == 0, maxBytes: maxBytes, keepAlive: keepAlive}
	var partitions []int32
	if s.all {
		if s.topic, err = a.readTopic(ctx, m.GetTopic(), 0, wantID); err != nil {
			return nil, err
		}
		for p := range s.topic.Config.Partitions {
			partitions = append(partitions, p)
		}
	} else {
		for _, p := range m.GetPartitions() {
			if s.topic, err = a.readTopic(ctx, m.GetTopic(), p, wantID); err != nil {
				return nil, err
			}
		}
		partitions = slices.Compact(slices.Sorted(slices.Values(m.GetPartitions())))
	}
	for p := range m.GetPartitionOffsets() {
		switch {
		case !s.all && !slices.Contains(partitions, p):
			return nil, invalidf("partition_offsets names partition %d, which partitions %v leaves out", p, partitions)
		case p < 0 || p >= s.topic.Config.Partitions:
			// Maybe created since the topic was cached.
			if _, err := a.partitionTopic(ctx, m.GetTopic(), p); err != nil {
				return nil, fmt.Errorf("partition_offsets: %w", err)
			}
		}
	}
	for _, p := range partitions {
		if err := s.add(ctx, p, false); err != nil {
			return nil, s.gone(ctx, err)
		}
	}
	return s, nil
}

// add starts following partition p. Every record of a partition created
// after the stream opened is newer than the stream, so from "latest" such
// a partition starts at its log start; the other starts apply as asked.
func (s *subscription) add(ctx context.Context, p int32, created bool) error {
	key := partitionKey{s.topic.ID, p}
	// Watch the partition before reading its state, so that a commit in
	// between reaches the stream's first step through the hub.
	s.a.hub.changed(key)
	st, err := s.a.index.PartitionState(ctx, s.topic.ID, p)
	if err != nil {
		return err
	}
	if s.req.GetIsolationLevel() == stratav1.IsolationLevel_ISOLATION_LEVEL_READ_COMMITTED {
		// Its end is the last stable offset (read_committed.go): "latest"
		// starts there, before the open transactions, as in Kafka.
		st.HighWatermark = st.LastStableOffset
	}
	f := &follow{key: key, indexHWM: st.HighWatermark, hubSeen: -1}
	start := s.req.GetStart()
	if off, ok := s.req.GetPartitionOffsets()[p]; ok {
		start = &stratav1.SubscribeRequest_Offset{Offset: off}
	}
	switch start := start.(type) {
	case *stratav1.SubscribeRequest_Earliest:
		f.next = st.LogStartOffset
	case *stratav1.SubscribeRequest_Offset:
		f.next = min(max(start.Offset, st.LogStartOffset), st.HighWatermark)
	case *stratav1.SubscribeRequest_Timestamp:
		if f.next, err = s.a.offsetForTime(ctx, s.topic, p, millisCeil(start.Timestamp), st); err != nil {
			return err
		}
	default: // latest, or no start
		f.next = st.HighWatermark
		if created {
			f.next = st.LogStartOffset
		}
	}
	s.follows = append(s.follows, f)
	return nil
}

// offsetForTime is the offset of the partition's first record with a
// timestamp at or after ts (ms), or, if none has one, the high watermark
// the search reached.
// The index names the entry holding it; the entry is scanned for the exact
// record (recordAtOrAfter, in list_offsets.go).
func (a *Agent) offsetForTime(ctx context.Context, topic coordinator.Topic, p int32, ts int64, st coordinator.PartitionState) (int64, error) {
	r, _, err := a.recordAtOrAfter(ctx, topic, p, ts, st)
	if err != nil {
		return 0, err
	}
	return r.offset, nil
}

// run sends records until ctx ends or a failure outlasts streamRetryFor,
// and a keep-alive whenever the stream was idle for s.keepAlive.
func (s *subscription) run(ctx context.Context, sendMsg func(*stratav1.SubscribeResponse) error) error {
	topicID := s.topic.ID.String()
	s.started = true
	s.lastSent = time.Now()
	send := func(m *stratav1.SubscribeResponse) error {
		m.TopicId = topicID
		if err := sendMsg(m); err != nil {
			return err
		}
		s.lastSent = time.Now()
		return nil
	}
	var lastRecheck, lastRefresh = time.Now(), time.Now()
	var failingSince time.Time
	backoff := 50 * time.Millisecond
	for {
		again, err := s.step(ctx, send, &lastRecheck, &lastRefresh)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, errStreamBroken) || s.transient == nil || !s.transient(err) {
				return err
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > streamRetryFor {
				return err
			}
			s.a.log.Warn("subscription read failed, retrying", "topic", s.topic.Name, "err", err)
			if s.keepAlive > 0 && time.Since(s.lastSent) >= s.keepAlive {
				// The stream is alive, only waiting: say so to proxies.
				if err := send(&stratav1.SubscribeResponse{KeepAlive: true}); err != nil {
					return fmt.Errorf("%w: %w", errStreamBroken, err)
				}
			}
			if err := sleepCtx(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		failingSince, backoff = time.Time{}, 50*time.Millisecond
		if again {
			continue
		}
		if s.keepAlive > 0 && time.Since(s.lastSent) >= s.keepAlive {
			if err := send(&stratav1.SubscribeResponse{KeepAlive: true}); err != nil {
				return fmt.Errorf("%w: %w", errStreamBroken, err)
			}
			continue
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
}

// step refreshes what is due, then sends one message if any partition has
// records. It reports whether to go on at once rather than wait: it sent
// something, or moved a position (control records, retention) and the
// partition may have more.
func (s *subscription) step(ctx context.Context, send func(*stratav1.SubscribeResponse) error, lastRecheck, lastRefresh *time.Time) (bool, error) {
	if s.all && time.Since(*lastRefresh) >= max(s.a.cfg.TopicCacheTTL, minTopicRefresh) {
		if err := s.refresh(ctx); err != nil {
			return false, err
		}
		*lastRefresh = time.Now()
	}
	if time.Since(*lastRecheck) >= watermarkRecheck {
		if err := s.recheck(ctx); err != nil {
			return false, err
		}
		*lastRecheck = time.Now()
	}
	// The hub's channel before its watermarks (see wait).
	s.wake = s.a.hub.topicChanged(s.topic.ID)
	n := len(s.follows)
	var ready []int // indexes into follows, from rr on
	hubNow := make([]int64, n)
	for j := range n {
		i := (s.rr + j) % n
		f := s.follows[i]
		_, hwm := s.a.hub.changed(f.key)
		hubNow[i] = hwm
		if f.indexHWM > f.next || (hwm > f.hubSeen && hwm > f.next) {
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return false, nil
	}
	var out []*stratav1.ConsumedRecord
	var size int64
	moved := false
	s.rr = (ready[0] + 1) % n
	for _, i := range ready {
		f := s.follows[i]
		recs, next, st, err := s.a.readIsolated(ctx, s.req.GetIsolationLevel(), s.topic, f.key.partition, f.next, s.maxBytes-size, len(out) == 0)
		if errors.Is(err, coordinator.ErrNotFound) {
			// The topic is gone: its records read so far are not worth
			// sending before the stream ends.
			return false, s.gone(ctx, err)
		}
		if errors.Is(err, coordinator.ErrOffsetOutOfRange) {
			s.reposition(f, st)
			moved = true
			continue
		}
		if err != nil {
			// The hub's news stays unread (hubSeen unchanged), so the
			// retry reads this partition again.
			if len(out) > 0 {
				break // send what was read; the next step meets the error
			}
			return false, err
		}
		f.hubSeen = hubNow[i]
		moved = moved || next != f.next
		f.next, f.indexHWM = next, st.HighWatermark
		out = append(out, recs...)
		for _, r := range recs {
			size += encodedSize(r)
		}
		if len(recs) == 0 && next < st.HighWatermark {
			// Its next record does not fit this message: it goes first in
			// the next one.
			s.rr = i
			break
		}
		if size >= s.maxBytes {
			break
		}
	}
	if len(out) == 0 {
		return moved, nil
	}
	if err := send(&stratav1.SubscribeResponse{Records: out}); err != nil {
		// The positions moved past records the client may never have got:
		// the stream cannot go on, whatever the error's code.
		return false, fmt.Errorf("%w: %w", errStreamBroken, err)
	}
	metricFetchedRecords.Add(float64(len(out)))
	return true, nil
}

// reposition moves a partition's position back into its bounds after a
// read found it outside them.
func (s *subscription) reposition(f *follow, st coordinator.PartitionState) {
	f.indexHWM = st.HighWatermark
	switch {
	case f.next < st.LogStartOffset:
		// Retention removed records the stream had not read yet.
		s.a.log.Info("subscription skips records removed by retention", "topic", s.topic.Name,
			"partition", f.key.partition, "from", f.next, "to", st.LogStartOffset)
		f.next = st.LogStartOffset
	case f.next > st.HighWatermark:
		// Only an index that lost acknowledged commits gets here.
		s.a.log.Warn("subscription position above the high watermark", "topic", s.topic.Name,
			"partition", f.key.partition, "position", f.next, "high_watermark", st.HighWatermark)
		f.next = st.HighWatermark
	}
}

// wait blocks until a watermark of the topic rises, the next recheck,
// topic refresh or keep-alive is due, or ctx ends.
func (s *subscription) wait(ctx context.Context) error {
	d := watermarkRecheck
	if s.all {
		d = min(d, max(s.a.cfg.TopicCacheTTL, minTopicRefresh))
	}
	if s.keepAlive > 0 {
		d = min(d, max(s.keepAlive-time.Since(s.lastSent), 0))
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waitAbove(wctx, s.wake)
	return ctx.Err()
}

// recheck re-reads every followed partition's watermark from the index,
// covering notifications the hub never got.
func (s *subscription) recheck(ctx context.Context) error {
	for _, f := range s.follows {
		st, err := s.a.index.PartitionState(ctx, s.topic.ID, f.key.partition)
		if err != nil {
			return s.gone(ctx, err)
		}
		f.indexHWM = st.HighWatermark
	}
	return nil
}

// refresh follows partitions added to the topic since the last look.
func (s *subscription) refresh(ctx context.Context) error {
	t, err := s.a.topics.get(ctx, s.topic.Name)
	if err != nil {
		return s.gone(ctx, err)
	}
	if t.ID != s.topic.ID {
		return s.gone(ctx, fmt.Errorf("%w: the topic has another id", coordinator.ErrNotFound))
	}
	for p := int32(len(s.follows)); p < t.Config.Partitions; p++ {
		if err := s.add(ctx, p, true); err != nil {
			return err
		}
	}
	return nil
}

// gone says, by name, which topic went away when the index no longer
// knows a partition of the stream's topic id: the topic was deleted, and
// maybe created again, which the stream must not follow. The index's
// message, which names the id, is left out.
func (s *subscription) gone(ctx context.Context, err error) error {
	if !errors.Is(err, coordinator.ErrNotFound) {
		return err
	}
	s.a.topics.invalidate(s.topic.Name)
	now, terr := s.a.topics.get(ctx, s.topic.Name)
	if terr == nil && now.ID == s.topic.ID {
		// The topic lives: the index lacks one of its partitions.
		return fmt.Errorf("%w: topic %q: a partition the stream follows is unknown to the index", coordinator.ErrNotFound, s.topic.Name)
	}
	s.a.hub.forgetTopic(s.topic.ID)
	recreated := terr == nil
	if s.started {
		return errTopicDeletedWhile(s.topic.Name, recreated, "the stream followed it")
	}
	return errTopicDeleted(s.topic.Name, recreated)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
