-- offset_for_time.lua: the first index entry that may hold a record with
-- timestamp >= ts (Kafka ListOffsets by time).
--
-- The time index scores entries by the partition's running max timestamp,
-- which only rises; every record before the first entry whose running max
-- is >= ts has a timestamp < ts, even when producers' timestamps go back.
--
-- KEYS[1] meta, KEYS[2] time, KEYS[3] log; ARGV[1] ts. Entries at or past
-- the high watermark (committed, not yet durable: commit.lua) do not count.
-- Returns {"N"} for a deleted or unknown partition, {"0"} when no entry has
-- a timestamp >= ts, else {"E", member}.
local m = redis.call('HMGET', KEYS[1], 's', 'hwm')
if m[1] ~= 'live' then return { 'N' } end
local base = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf', 'LIMIT', 0, 1)[1]
if not base then return { '0' } end
-- The entry itself, or the next one if retention trimmed it.
local member = redis.call('ZRANGEBYSCORE', KEYS[3], base, '+inf', 'LIMIT', 0, 1)[1]
if not member then return { '0' } end
if tonumber(string.match(member, '^(%d+)|')) >= tonumber(m[2] or '0') then return { '0' } end
return { 'E', member }
