-- topic_delete.lua: remove a topic's name (the visibility point) and mark
-- its record deleted. The record stays, listed in the deleted set, so
-- garbage collection can find the partitions' data.
--
-- KEYS[1] names hash, KEYS[2] record, KEYS[3] deleted-topics set.
-- ARGV[1] name, ARGV[2] id the caller resolved, ARGV[3] now (ms).
-- Returns the partition count, or -1 when the name no longer maps to id.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'deleted', ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
return tonumber(redis.call('HGET', KEYS[2], 'partitions'))
