// Package coordinator is Strata's metadata index: topics, offsets, index
// entries pointing into objects, producer state, consumer-group storage,
// leases and the live-agent registry. Its interfaces are split by concern
// (Topics, Log, Producers, Notifier, Leases, Agents, Groups, Lifecycle,
// Transactions); one implementation on Redis (go-redis v9 and Lua scripts)
// runs unchanged on embedded miniredis, a single redis-server and Redis
// Cluster.
//
// It must not import objectlog, agent, or Connect.
package coordinator
