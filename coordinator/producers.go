package coordinator

// Producers. Ids come from the counter {m}:producer-ids; each producer's
// current epoch lives in its own slot, {p:<id>}, and each transactional id
// in {x:<transactional id>}, a hash (pid, epoch, timeout, state), so both
// work on Redis Cluster. The commit script cannot read those slots on
// Redis Cluster, so it fences with the epoch each partition last saw from
// the producer (prod:<pid> in the partition's slot): a partition learns a
// new epoch when the producer first writes to it with that epoch, and from
// then on refuses the older ones. That is Kafka's behaviour too: a bump
// fences a zombie on a partition as soon as the new incarnation has written
// there.
//
// Expiry: {p:<id>} and {x:<tid>} expire ProducerIDExpiry after their last
// init or bump (Kafka's transactional.id.expiration.ms, 7 days); a
// partition's prod:<pid> expires producerStateTTL after the producer's last
// write there.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProducerIDExpiry is how long a producer id or transactional id is kept
// after its last InitProducer, BumpEpoch or InitTransactionalProducer.
const ProducerIDExpiry = 7 * 24 * time.Hour

// maxTransactionalIDBytes bounds transactional ids (Kafka bounds them by
// its string encoding only; 255 keeps keys small).
const maxTransactionalIDBytes = 255

func (r *Redis) producerKey(id int64) string {
	return r.opts.Prefix + "{p:" + strconv.FormatInt(id, 10) + "}"
}

func (r *Redis) transactionalKey(tid string) string {
	return r.opts.Prefix + "{x:" + tid + "}"
}

// InitProducer allocates a new producer id with epoch 0.
func (r *Redis) InitProducer(ctx context.Context) (int64, int16, error) {
	id, err := r.client.Incr(ctx, r.metaKey("producer-ids")).Result()
	if err != nil {
		return 0, 0, wrapErr("init producer", err)
	}
	if err := r.client.Set(ctx, r.producerKey(id), 0, ProducerIDExpiry).Err(); err != nil {
		return 0, 0, wrapErr("init producer", err)
	}
	return id, 0, wrapErr("init producer", r.durable(ctx))
}

// BumpEpoch raises the producer's epoch. When the int16 epoch space is used
// up the producer must InitProducer again (ErrFenced), as Kafka clients do.
func (r *Redis) BumpEpoch(ctx context.Context, id int64) (int16, error) {
	e, err := r.run(ctx, producerBumpScript, []string{r.producerKey(id)}, ProducerIDExpiry.Milliseconds()).Int64()
	if err != nil {
		return 0, wrapErr(fmt.Sprintf("bump epoch of producer %d", id), err)
	}
	switch e {
	case -1:
		return 0, fmt.Errorf("bump epoch: %w: producer %d", ErrNotFound, id)
	case -2:
		return 0, fmt.Errorf("bump epoch: %w: producer %d used up its epochs; initialize a new producer id", ErrFenced, id)
	}
	return int16(e), wrapErr(fmt.Sprintf("bump epoch of producer %d", id), r.durable(ctx))
}

// InitTransactionalProducer implements Producers.
func (r *Redis) InitTransactionalProducer(ctx context.Context, tid string, timeout time.Duration) (int64, int16, error) {
	return r.initTransactionalProducer(ctx, tid, timeout, "", 0, 0)
}

// BumpTransactionalProducer implements Producers.
func (r *Redis) BumpTransactionalProducer(ctx context.Context, tid string, timeout time.Duration, producerID int64, epoch int16) (int64, int16, error) {
	return r.initTransactionalProducer(ctx, tid, timeout, "pair", producerID, epoch)
}

// FenceTransactionalProducer implements Producers.
func (r *Redis) FenceTransactionalProducer(ctx context.Context, tid string, timeout time.Duration) (int64, int16, error) {
	return r.initTransactionalProducer(ctx, tid, timeout, "fence", 0, 0)
}

// initTransactionalProducer runs producer_init_txn.lua with mode ("",
// "fence" or "pair" with the holder's producer id and epoch).
func (r *Redis) initTransactionalProducer(ctx context.Context, tid string, timeout time.Duration, mode string, holderID int64, holderEpoch int16) (int64, int16, error) {
	if tid == "" || len(tid) > maxTransactionalIDBytes || hasBraces(tid) {
		return 0, 0, fmt.Errorf("%w: transactional id %q: want 1 to %d bytes without braces", ErrInvalid, tid, maxTransactionalIDBytes)
	}
	key := r.transactionalKey(tid)
	fresh := int64(0)
	// Two rounds at most: the second has a fresh id to bind.
	for range 2 {
		res, err := r.run(ctx, producerInitTxnScript, []string{key}, fresh, timeout.Milliseconds(), ProducerIDExpiry.Milliseconds(), mode, holderID, holderEpoch).Text()
		if err != nil {
			return 0, 0, wrapErr(fmt.Sprintf("init transactional producer %q", tid), err)
		}
		retry := false
		switch {
		case strings.HasPrefix(res, "F:"):
			return 0, 0, fmt.Errorf("init transactional producer %q: %w: producer %d epoch %d is neither its current producer (%s) nor the one its last bump replaced",
				tid, ErrFenced, holderID, holderEpoch, strings.TrimPrefix(res, "F:"))
		case strings.HasPrefix(res, "R:"):
			res, retry = strings.TrimPrefix(res, "R:"), true
		}
		if res == "N" {
			// Another caller may bind an id meanwhile; then this one
			// is left unused, which is harmless.
			if fresh, err = r.client.Incr(ctx, r.metaKey("producer-ids")).Result(); err != nil {
				return 0, 0, wrapErr(fmt.Sprintf("init transactional producer %q", tid), err)
			}
			continue
		}
		pidText, epochText, ok := strings.Cut(res, ":")
		pid, err1 := strconv.ParseInt(pidText, 10, 64)
		epoch, err2 := strconv.ParseInt(epochText, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("%w: init transactional producer %q: reply %q", ErrUnavailable, tid, res)
		}
		if retry {
			return pid, int16(epoch), nil
		}
		return pid, int16(epoch), wrapErr(fmt.Sprintf("init transactional producer %q", tid), r.durable(ctx))
	}
	return 0, 0, fmt.Errorf("%w: init transactional producer %q: no id bound after allocating one", ErrUnavailable, tid)
}
