package coordinator

// Agents: the registry of live agents, in the {m} slot. A sorted set holds
// id -> expiry (server milliseconds) and a hash holds id -> address. Expiry is
// judged by the server's TIME inside the scripts, never by a caller's clock.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Agents = (*Redis)(nil)

// agentRegisterScript: KEYS[1] expiries, KEYS[2] addresses; ARGV[1] id,
// ARGV[2] addr, ARGV[3] ttl ms.
var agentRegisterScript = redis.NewScript(luaNowMs + `
redis.call('ZADD', KEYS[1], tonumber(now_ms()) + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// agentListScript: KEYS[1] expiries, KEYS[2] addresses. Drops the expired
// agents, then returns {id, addr, remaining ms, ...} for the live ones.
var agentListScript = redis.NewScript(luaNowMs + `
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(dead) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = redis.call('HGET', KEYS[2], live[i]) or ''
  out[#out + 1] = tonumber(live[i + 1]) - tonumber(now)
end
return out
`)

func (r *Redis) agentKeys() []string {
	return []string{r.metaKey("agents"), r.metaKey("agent-addrs")}
}

// RegisterAgent adds the agent, or refreshes it and its address, for ttl from
// the server's now. a.Expires is ignored.
func (r *Redis) RegisterAgent(ctx context.Context, a AgentInfo, ttl time.Duration) error {
	const op = "register agent"
	if a.ID == "" {
		return wrapErr(op, fmt.Errorf("%w: empty agent id", ErrInvalid))
	}
	if ttl < time.Millisecond {
		return wrapErr(op, fmt.Errorf("%w: agent ttl %v is under 1ms", ErrInvalid, ttl))
	}
	if err := agentRegisterScript.Run(ctx, r.client, r.agentKeys(), a.ID, a.Addr, ttl.Milliseconds()).Err(); err != nil {
		return wrapErr(op, err)
	}
	return wrapErr(op, r.written(ctx))
}

// DeregisterAgent removes the agent at once. An agent that is not registered
// (it expired already) is not an error: shutting down must not fail on it.
func (r *Redis) DeregisterAgent(ctx context.Context, id string) error {
	const op = "deregister agent"
	if id == "" {
		return wrapErr(op, fmt.Errorf("%w: empty agent id", ErrInvalid))
	}
	keys := r.agentKeys()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, keys[0], id)
		p.HDel(ctx, keys[1], id)
		return nil
	})
	if err != nil {
		return wrapErr(op, err)
	}
	return wrapErr(op, r.written(ctx))
}

// ListAgents returns the live agents sorted by id, with Expires on the
// caller's clock (server's remaining time added to when the call started). It
// also deletes the expired entries; that clean-up is not persisted on its own
// (no after-write hook), since it is redone by the next list anyway.
func (r *Redis) ListAgents(ctx context.Context) ([]AgentInfo, error) {
	const op = "list agents"
	start := time.Now()
	v, err := agentListScript.Run(ctx, r.client, r.agentKeys()).Slice()
	if err != nil {
		return nil, wrapErr(op, err)
	}
	if len(v)%3 != 0 {
		return nil, wrapErr(op, fmt.Errorf("%w: malformed agent list reply of %d elements", ErrUnavailable, len(v)))
	}
	agents := make([]AgentInfo, 0, len(v)/3)
	for i := 0; i < len(v); i += 3 {
		id, ok1 := v[i].(string)
		addr, ok2 := v[i+1].(string)
		ms, ok3 := v[i+2].(int64)
		if !ok1 || !ok2 || !ok3 {
			return nil, wrapErr(op, fmt.Errorf("%w: malformed agent list entry %v", ErrUnavailable, v[i:i+3]))
		}
		agents = append(agents, AgentInfo{ID: id, Addr: addr, Expires: deadline(start, ms)})
	}
	slices.SortFunc(agents, func(a, b AgentInfo) int { return strings.Compare(a.ID, b.ID) })
	return agents, nil
}
