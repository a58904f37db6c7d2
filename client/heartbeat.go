package client

// The heartbeat goroutine: it keeps the session alive and records what the
// group answers; Poll applies it. It heartbeats every heartbeat_interval
// after the last answer, sooner while partitions wait for their old owner
// (so hand-overs settle quickly) and at once when Poll released partitions.

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	stratav1 "github.com/stratabroker/strata/proto/gen/strata/v1"
)

// pendingInterval is the heartbeat interval while the answer had pending
// partitions: they are ours as soon as their owner releases them.
const pendingInterval = 150 * time.Millisecond

// defaultCallTimeout bounds a heartbeat before the session timeout is known.
const defaultCallTimeout = 10 * time.Second

func (c *GroupConsumer) heartbeatLoop() {
	defer close(c.hbDone)
	failures := 0
	for {
		c.mu.Lock()
		wait := c.interval
		if c.hasPending {
			wait = pendingInterval
		}
		if failures > 0 {
			wait = min(backoff(failures), max(c.interval, 100*time.Millisecond))
		}
		c.mu.Unlock()
		if wait <= 0 {
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-c.bgCtx.Done():
			t.Stop()
			return
		case <-c.kick:
		case <-t.C:
		}
		t.Stop()
		c.mu.Lock()
		if !c.lost && !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
			c.lost = true
			c.gen++
			signal(c.wake)
		}
		lost := c.lost
		c.mu.Unlock()
		if lost {
			// Poll must give the partitions up before the member joins
			// again; it kicks once it has.
			failures = 0
			continue
		}
		applied, err := c.heartbeat(c.bgCtx)
		switch {
		case c.bgCtx.Err() != nil:
			return
		case err == nil:
			failures = 0
		case !applied:
			// A loss overtook it: the answer was stale.
		case isFenced(err):
			c.log.Warn("the group ended the member's session; giving up every partition and joining again", "member", c.MemberID(), "err", err)
			c.mu.Lock()
			c.lost = true
			c.gen++
			c.mu.Unlock()
			signal(c.wake)
			failures = 0
		case retryable(err):
			failures++
			c.log.Warn("heartbeat failed; retrying", "err", err, "failures", failures)
		default:
			c.log.Error("heartbeat refused; the consumer stops", "err", err)
			c.mu.Lock()
			c.fatal = fmt.Errorf("heartbeat: %w", err)
			c.mu.Unlock()
			signal(c.wake)
			return
		}
	}
}

// heartbeat sends one heartbeat and records its answer. applied is false
// when the answer was discarded because a loss happened meanwhile.
func (c *GroupConsumer) heartbeat(ctx context.Context) (applied bool, err error) {
	select {
	case c.groupCalls <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-c.groupCalls }()

	c.mu.Lock()
	req := &stratav1.HeartbeatRequest{
		Group:       c.cfg.Group,
		MemberId:    c.memberID,
		MemberEpoch: c.epoch,
		Topics:      c.cfg.Topics,
		TopicRegex:  c.cfg.TopicRegex,
	}
	if c.cfg.SessionTimeout > 0 {
		req.SessionTimeout = durationpb.New(c.cfg.SessionTimeout)
	}
	owned := map[TopicPartition]bool{}
	for tp := range c.assigned {
		if at, ok := c.dropped[tp]; !ok || at != c.answers {
			owned[tp] = true
		}
	}
	for tp := range c.owned {
		owned[tp] = true
	}
	req.Owned = toTopicPartitions(sortedParts(owned))
	gen := c.gen
	timeout := c.session
	c.mu.Unlock()
	if timeout <= 0 {
		timeout = defaultCallTimeout
	}

	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	resp, err := c.group.Heartbeat(callCtx, connect.NewRequest(req))

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return false, err
	}
	if err != nil {
		return true, err
	}
	m := resp.Msg
	if c.memberID != "" && m.GetMemberId() != c.memberID {
		c.log.Warn("the agent answered another member id", "sent", c.memberID, "answered", m.GetMemberId())
	}
	c.memberID = m.GetMemberId()
	c.epoch = m.GetMemberEpoch()
	c.assigned = fromTopicPartitions(m.GetAssigned())
	c.hasPending = len(m.GetPending()) > 0
	c.answers++
	for tp, at := range c.dropped {
		if at != c.answers {
			delete(c.dropped, tp)
		}
	}
	if req.MemberEpoch == 0 {
		c.joins++
	}
	if d := m.GetSessionTimeout(); d != nil && d.AsDuration() > 0 {
		c.session = d.AsDuration()
	}
	if d := m.GetHeartbeatInterval(); d != nil && d.AsDuration() > 0 {
		c.interval = d.AsDuration()
	} else if c.session > 0 {
		c.interval = c.session / 3
	}
	if c.session > 0 {
		// Measured from the send: the agent's clock started later, so the
		// member gives up before the agent hands its partitions to others.
		c.deadline = sent.Add(c.session)
	}
	signal(c.wake)
	return true, nil
}
