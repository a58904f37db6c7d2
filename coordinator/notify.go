package coordinator

// Watermark notifications. advance_hwm.lua PUBLISHes "topicID:partition:hwm"
// on <prefix>{m}:watermarks whenever a partition's high watermark rises,
// which happens only once the commit behind it is durable (see log.go), so
// a notification never names an offset a crash could take back. Plain (not sharded) PUBLISH reaches subscribers on every node of
// a Redis Cluster, so one subscription per agent sees every commit.
//
// Delivery is at most once: a message published while the connection is
// down is lost (go-redis reconnects and resubscribes by itself). Waiters
// must bound their waits (a fetch's max wait) and re-read the watermark.

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// SubscribeWatermarks calls fn, from one goroutine, for every notification
// until ctx ends. It returns once the server confirmed the subscription.
func (r *Redis) SubscribeWatermarks(ctx context.Context, fn func(Watermark)) error {
	ps := r.client.Subscribe(ctx, r.watermarkChannel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return wrapErr("subscribe watermarks", err)
	}
	ch := ps.Channel()
	go func() {
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				if w, err := parseWatermark(msg.Payload); err == nil {
					fn(w)
				}
			}
		}
	}()
	return nil
}

// parseWatermark decodes "topicID:partition:hwm".
func parseWatermark(s string) (Watermark, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return Watermark{}, fmt.Errorf("%w: watermark message %q", ErrInvalid, s)
	}
	id, err := uuid.Parse(f[0])
	if err != nil {
		return Watermark{}, fmt.Errorf("%w: watermark message %q", ErrInvalid, s)
	}
	p, err1 := strconv.ParseInt(f[1], 10, 32)
	hwm, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return Watermark{}, fmt.Errorf("%w: watermark message %q", ErrInvalid, s)
	}
	return Watermark{TopicID: id, Partition: int32(p), HighWatermark: hwm}, nil
}
