package coordinator

// Agents: the registry of live agents, in the {m} slot. A sorted set holds
// id -> expiry (server milliseconds) and a hash holds id -> address. Expiry is
// judged by the server's TIME inside the scripts, never by a caller's clock.
// A third hash, agent-kafka, holds id -> the Kafka listener's details (JSON
// of kafkaFields), written only by agents that have them: the first two keys
// keep their encoding, so agents of an older version list and register as
// before, and their entries read back with no Kafka listener.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var _ Agents = (*Redis)(nil)

// agentRegisterScript: KEYS[1] expiries, KEYS[2] addresses, KEYS[3] Kafka
// details; ARGV[1] id, ARGV[2] addr, ARGV[3] ttl ms, ARGV[4] Kafka details
// ("" for none).
var agentRegisterScript = redis.NewScript(luaNowMs + `
redis.call('ZADD', KEYS[1], tonumber(now_ms()) + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
else
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 1
`)

// agentListScript: KEYS[1] expiries, KEYS[2] addresses, KEYS[3] Kafka
// details. Drops the expired agents, then returns {id, addr, remaining ms,
// kafka details, ...} for the live ones.
var agentListScript = redis.NewScript(luaNowMs + `
local now = now_ms()
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(dead) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = redis.call('HGET', KEYS[2], live[i]) or ''
  out[#out + 1] = tonumber(live[i + 1]) - tonumber(now)
  out[#out + 1] = redis.call('HGET', KEYS[3], live[i]) or ''
end
return out
`)

func (r *Redis) agentKeys() []string {
	return []string{r.metaKey("agents"), r.metaKey("agent-addrs"), r.metaKey("agent-kafka")}
}

// kafkaFields is the stored form of an agent's Kafka listener.
type kafkaFields struct {
	Addr   string `json:"addr"`
	NodeID int32  `json:"node"`
	Zone   string `json:"zone,omitempty"`
}

func encodeKafka(a AgentInfo) (string, error) {
	if a.KafkaAddr == "" && a.Zone == "" {
		return "", nil
	}
	b, err := json.Marshal(kafkaFields{Addr: a.KafkaAddr, NodeID: a.NodeID, Zone: a.Zone})
	return string(b), err
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
	kafka, err := encodeKafka(a)
	if err != nil {
		return wrapErr(op, fmt.Errorf("%w: %v", ErrInvalid, err))
	}
	if err := agentRegisterScript.Run(ctx, r.client, r.agentKeys(), a.ID, a.Addr, ttl.Milliseconds(), kafka).Err(); err != nil {
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
		p.HDel(ctx, keys[2], id)
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
	if len(v)%4 != 0 {
		return nil, wrapErr(op, fmt.Errorf("%w: malformed agent list reply of %d elements", ErrUnavailable, len(v)))
	}
	agents := make([]AgentInfo, 0, len(v)/4)
	for i := 0; i < len(v); i += 4 {
		id, ok1 := v[i].(string)
		addr, ok2 := v[i+1].(string)
		ms, ok3 := v[i+2].(int64)
		kafka, ok4 := v[i+3].(string)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, wrapErr(op, fmt.Errorf("%w: malformed agent list entry %v", ErrUnavailable, v[i:i+4]))
		}
		a := AgentInfo{ID: id, Addr: addr, Expires: deadline(start, ms)}
		if kafka != "" {
			var f kafkaFields
			if err := json.Unmarshal([]byte(kafka), &f); err != nil {
				return nil, wrapErr(op, fmt.Errorf("%w: agent %s's Kafka listener %q: %v", ErrUnavailable, id, kafka, err))
			}
			a.KafkaAddr, a.NodeID, a.Zone = f.Addr, f.NodeID, f.Zone
		}
		agents = append(agents, a)
	}
	slices.SortFunc(agents, func(a, b AgentInfo) int { return strings.Compare(a.ID, b.ID) })
	return agents, nil
}

// clusterIDScript: KEYS[1] the cluster id; ARGV[1] a fresh id, stored if
// none is. Returns the stored id.
var clusterIDScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`)

// ClusterID returns the deployment's cluster id, the same for every agent of
// the index and never changed: the first caller stores fresh (a random UUID's
// string); every later caller reads it back. Kafka clients see it as the
// cluster id (Metadata v2+, DescribeCluster).
func (r *Redis) ClusterID(ctx context.Context, fresh string) (string, error) {
	const op = "cluster id"
	if fresh == "" {
		return "", wrapErr(op, fmt.Errorf("%w: empty cluster id", ErrInvalid))
	}
	id, err := clusterIDScript.Run(ctx, r.client, []string{r.metaKey("cluster-id")}, fresh).Text()
	if err != nil {
		return "", wrapErr(op, err)
	}
	if id == fresh {
		if err := r.written(ctx); err != nil {
			return "", wrapErr(op, err)
		}
	}
	return id, nil
}
