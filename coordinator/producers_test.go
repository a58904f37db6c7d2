package coordinator_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratabroker/strata/coordinator"
)

// TestTransactionalProducer: a transactional id keeps its producer id and
// every init raises the epoch, which fences the older epoch on a partition
// once the new one has written there.
func TestTransactionalProducer(t *testing.T) {
	prefix := uniquePrefix(t)
	forEachBackend(t, coordinator.Options{Prefix: prefix}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		tp := createTopic(t, r, "t", 1)
		pid, e0, err := r.InitTransactionalProducer(ctx, "orders-app", time.Minute)
		if err != nil || pid < 1 || e0 != 0 {
			t.Fatalf("first init: %d %d %v", pid, e0, err)
		}
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, e0, 0)))[0], 0)

		pid2, e1, err := r.InitTransactionalProducer(ctx, "orders-app", time.Minute)
		if err != nil || pid2 != pid || e1 != 1 {
			t.Fatalf("second init: %d %d %v, want %d 1", pid2, e1, err, pid)
		}
		other, _, err := r.InitTransactionalProducer(ctx, "billing-app", time.Minute)
		if err != nil || other == pid {
			t.Fatalf("another transactional id got %d (%v), same as %d", other, err, pid)
		}
		wantOffsets(t, commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, e1, 0)))[0], 2)
		res := commit(t, r, segment(tp.ID, 0, idem(0, 10, 2, pid, e0, 2)))[0].Batches[0]
		wantErr(t, res.Err, coordinator.ErrFenced)

		// The keys expire when idle (refreshed by every init).
		ttl, err := r.Client().PTTL(ctx, prefix+"{x:orders-app}").Result()
		if err != nil || ttl <= 0 || ttl > coordinator.ProducerIDExpiry {
			t.Fatalf("transactional id TTL %v (%v), want (0, %v]", ttl, err, coordinator.ProducerIDExpiry)
		}

		for _, bad := range []string{"", "a{b}", strings.Repeat("x", 256)} {
			_, _, err := r.InitTransactionalProducer(ctx, bad, time.Minute)
			wantErr(t, err, coordinator.ErrInvalid)
		}
	})
}

// TestProducerIDExpiry: producer ids carry the documented TTL, refreshed by
// a bump, and an expired id cannot be bumped.
func TestProducerIDExpiry(t *testing.T) {
	prefix := uniquePrefix(t)
	forEachBackend(t, coordinator.Options{Prefix: prefix}, func(t *testing.T, r *coordinator.Redis) {
		ctx := t.Context()
		pid, _, err := r.InitProducer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		key := prefix + "{p:" + strconv.FormatInt(pid, 10) + "}"
		if ttl, err := r.Client().PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > coordinator.ProducerIDExpiry {
			t.Fatalf("producer id TTL %v (%v)", ttl, err)
		}
		if err := r.Client().PExpire(ctx, key, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if e, err := r.BumpEpoch(ctx, pid); err != nil || e != 1 {
			t.Fatalf("bump: %d %v", e, err)
		}
		if ttl, _ := r.Client().PTTL(ctx, key).Result(); ttl <= time.Hour {
			t.Fatalf("the bump did not refresh the TTL: %v", ttl)
		}
		// Expired: the key is gone.
		if err := r.Client().Del(ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
		_, err = r.BumpEpoch(ctx, pid)
		wantErr(t, err, coordinator.ErrNotFound)
	})
}
