// Package coordinator is Strata's metadata index: topics, offsets, index
// entries pointing into objects, producer state, consumer-group storage,
// leases and the live-agent registry. Its interfaces are split by concern
// (Topics, Log, Producers, Notifier, Leases, Agents, Groups, Lifecycle,
// Transactions); one implementation on Redis (go-redis v9 and Lua scripts)
// runs unchanged on embedded miniredis, a single redis-server and Redis
// Cluster.
//
// On the embedded index (OpenEmbedded) key TTLs move in ticks of 100 ms or
// more, not per command: a key expires up to one tick early or late (ticks
// stretch on a large index, to about 10 s at a million keys; see
// embedded.go). Only producer and transactional-id state has TTLs, of
// days. Leases, agents and group members are unaffected: their expiry is
// compared with the server's TIME inside the scripts.
//
// It must not import objectlog, agent, or Connect.
package coordinator
