package coordinator_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stratabroker/strata/coordinator"
	"github.com/stratabroker/strata/internal/testenv"
)

var prefixSeq atomic.Int64

// uniquePrefix keeps tests apart on the shared servers.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("test-%d-%d:", time.Now().UnixNano(), prefixSeq.Add(1))
}

// backend names one place the index runs.
type backend struct {
	name string
	open func(t testing.TB, opts coordinator.Options) *coordinator.Redis
}

// backends are every place the index must run unchanged: embedded miniredis,
// the real redis-server and the three-shard Redis Cluster.
var backends = []backend{
	{"miniredis", func(t testing.TB, opts coordinator.Options) *coordinator.Redis {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return mustRedis(t, redis.NewClient(&redis.Options{Addr: m.Addr()}), opts)
	}},
	{"redis", func(t testing.TB, opts coordinator.Options) *coordinator.Redis {
		return mustRedis(t, redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)}), opts)
	}},
	{"cluster", func(t testing.TB, opts coordinator.Options) *coordinator.Redis {
		return mustRedis(t, redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t)}), opts)
	}},
}

func mustRedis(t testing.TB, c redis.UniversalClient, opts coordinator.Options) *coordinator.Redis {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = uniquePrefix(t)
	}
	r, err := coordinator.NewRedis(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// forEachBackend runs fn as a parallel subtest on every backend.
func forEachBackend(t *testing.T, opts coordinator.Options, fn func(t *testing.T, r *coordinator.Redis)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t, opts))
		})
	}
}
