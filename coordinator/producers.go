package coordinator

// Producers. Ids come from the counter {m}:producer-ids; each producer's
// current epoch lives in its own slot, {p:<id>}. The commit script cannot
// read that slot on Redis Cluster, so it fences with the epoch each
// partition last saw from the producer (prod:<pid> in the partition's slot):
// a partition learns a new epoch when the producer first writes to it with
// that epoch, and from then on refuses the older ones. That is Kafka's
// behaviour too: a bump fences a zombie on a partition as soon as the new
// incarnation has written there.

import (
	"context"
	"fmt"
	"strconv"
)

func (r *Redis) producerKey(id int64) string {
	return r.opts.Prefix + "{p:" + strconv.FormatInt(id, 10) + "}"
}

// InitProducer allocates a new producer id with epoch 0.
func (r *Redis) InitProducer(ctx context.Context) (int64, int16, error) {
	id, err := r.client.Incr(ctx, r.metaKey("producer-ids")).Result()
	if err != nil {
		return 0, 0, wrapErr("init producer", err)
	}
	if err := r.client.Set(ctx, r.producerKey(id), 0, 0).Err(); err != nil {
		return 0, 0, wrapErr("init producer", err)
	}
	return id, 0, r.written(ctx)
}

// BumpEpoch raises the producer's epoch. When the int16 epoch space is used
// up the producer must InitProducer again (ErrFenced), as Kafka clients do.
func (r *Redis) BumpEpoch(ctx context.Context, id int64) (int16, error) {
	e, err := r.run(ctx, producerBumpScript, []string{r.producerKey(id)}).Int64()
	if err != nil {
		return 0, wrapErr(fmt.Sprintf("bump epoch of producer %d", id), err)
	}
	switch e {
	case -1:
		return 0, fmt.Errorf("bump epoch: %w: producer %d", ErrNotFound, id)
	case -2:
		return 0, fmt.Errorf("bump epoch: %w: producer %d used up its epochs; initialize a new producer id", ErrFenced, id)
	}
	return int16(e), r.written(ctx)
}
