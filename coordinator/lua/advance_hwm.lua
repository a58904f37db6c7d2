-- advance_hwm.lua: make a partition's committed offsets visible. It runs
-- only after the commit that reached ARGV[1] is durable (WAIT answered, or
-- the embedded index's snapshot written): readers (lookup.lua,
-- PartitionState, the notification) never see an offset that a crash or a
-- failover could take back (DESIGN.md write path step 6). A durable commit
-- makes everything committed before it on this server durable too, so the
-- high watermark may rise to any log end offset the commit returned. It
-- only rises: commits finishing out of order never lower it.
--
-- KEYS[1] meta (see commit.lua); ARGV[1] the log end offset the durable
-- commit returned, or -1 for the current one (a server on which an executed
-- write is durable: appendfsync always sends no reply before its fsync),
-- ARGV[2] watermark channel, ARGV[3] "topicID:partition".
-- Returns the high watermark after the call, -1 for a deleted or unknown
-- partition.
local m = redis.call('HMGET', KEYS[1], 's', 'hwm', 'leo')
if m[1] ~= 'live' then return -1 end
local hwm = tonumber(m[2] or '0')
-- Never past what this server committed (a guard: the commit that returned
-- ARGV[1] ran here).
local leo = tonumber(m[3] or m[2] or '0')
local target = tonumber(ARGV[1])
if target < 0 or target > leo then target = leo end
if target <= hwm then return hwm end
local s = string.format('%d', target)
redis.call('HSET', KEYS[1], 'hwm', s)
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ':' .. s)
return target
