-- topic_update.lua: compare-and-set on a topic's record. Config updates and
-- partition increases both go through it.
--
-- KEYS[1] names hash, KEYS[2] record.
-- ARGV[1] name, ARGV[2] id the caller resolved, ARGV[3] expected partition
-- count ("" = any), ARGV[4..] field/value pairs to set.
-- Returns {0} when the name no longer maps to a live id, {-1} when the
-- partition count changed, else {1, field, value, ...} (the record after).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return { 0 } end
if redis.call('HEXISTS', KEYS[2], 'deleted') == 1 then return { 0 } end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'partitions') ~= ARGV[3] then return { -1 } end
if #ARGV > 3 then redis.call('HSET', KEYS[2], unpack(ARGV, 4)) end
local out = redis.call('HGETALL', KEYS[2])
table.insert(out, 1, 1)
return out
