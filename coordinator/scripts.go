package coordinator

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts. Each touches the keys of one slot only, declared in KEYS,
// so it runs unchanged on Redis Cluster (snapshot.lua, embedded only, is the
// one exception).
var (
	//go:embed lua/commit.lua
	commitSrc string
	//go:embed lua/lookup.lua
	lookupSrc string
	//go:embed lua/offset_for_time.lua
	offsetForTimeSrc string
	//go:embed lua/topic_create.lua
	topicCreateSrc string
	//go:embed lua/topic_delete.lua
	topicDeleteSrc string
	//go:embed lua/topic_update.lua
	topicUpdateSrc string
	//go:embed lua/producer_bump.lua
	producerBumpSrc string
	//go:embed lua/producer_init_txn.lua
	producerInitTxnSrc string
	//go:embed lua/snapshot.lua
	snapshotSrc string
	//go:embed lua/trim.lua
	trimSrc string
	//go:embed lua/segment_state.lua
	segmentStateSrc string
	//go:embed lua/advance_hwm.lua
	advanceHWMSrc string
	//go:embed lua/compact_lease.lua
	compactLeaseSrc string
	//go:embed lua/archive_swap.lua
	archiveSwapSrc string

	commitScript          = redis.NewScript(txnCommitSrc + commitSrc) // issue 11: txn_commit.lua defines txn_apply
	lookupScript          = redis.NewScript(lookupSrc)
	offsetForTimeScript   = redis.NewScript(offsetForTimeSrc)
	topicCreateScript     = redis.NewScript(topicCreateSrc)
	topicDeleteScript     = redis.NewScript(topicDeleteSrc)
	topicUpdateScript     = redis.NewScript(topicUpdateSrc)
	producerBumpScript    = redis.NewScript(producerBumpSrc)
	snapshotScript        = redis.NewScript(snapshotSrc)
	trimScript            = redis.NewScript(trimSrc)
	segmentStateScript    = redis.NewScript(segmentStateSrc)
	advanceHWMScript      = redis.NewScript(advanceHWMSrc)
	producerInitTxnScript = redis.NewScript(producerInitTxnSrc)
	compactLeaseScript    = redis.NewScript(compactLeaseSrc)
	archiveSwapScript     = redis.NewScript(archiveSwapSrc)

	// pipelinedScripts are run with EVALSHA inside pipelines, where a cache
	// miss cannot fall back to EVAL on its own; they are loaded on every
	// master when one misses.
	pipelinedScripts = []*redis.Script{commitScript, advanceHWMScript}
)

// run executes a script outside a pipeline: EVALSHA, then EVAL when the
// server's script cache lacks it (after a restart or SCRIPT FLUSH).
func (r *Redis) run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	return s.Run(ctx, r.client, keys, args...)
}

// isNoScript reports whether err is the server's "script not cached" reply.
func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// loadScripts puts the pipelined scripts into the script cache of every
// master, so that the retry of a pipeline that missed finds them.
func (r *Redis) loadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Scripter) error {
		for _, s := range pipelinedScripts {
			if err := s.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("loading script: %w", err)
			}
		}
		return nil
	}
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return load(ctx, c) })
	}
	return load(ctx, r.client)
}

// replyStrings converts a script's array reply of strings.
func replyStrings(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: script reply is %T, not an array", ErrUnavailable, v)
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		switch e := e.(type) {
		case string:
			out[i] = e
		case int64:
			out[i] = fmt.Sprint(e)
		default:
			return nil, fmt.Errorf("%w: script reply element %d is %T", ErrUnavailable, i, e)
		}
	}
	return out, nil
}

// hashFields turns an HGETALL-style flat list into a map.
func hashFields(flat []string) map[string]string {
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		m[flat[i]] = flat[i+1]
	}
	return m
}

// hasBraces reports whether s would break a key's hash tag.
func hasBraces(s string) bool { return strings.ContainsAny(s, "{}") }
