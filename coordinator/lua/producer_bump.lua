-- producer_bump.lua: raise a producer's epoch.
--
-- KEYS[1] the producer's key (its own slot). ARGV[1] the key's TTL in ms,
-- refreshed by the bump. Returns the new epoch, -1 for an unknown (or
-- expired) producer, -2 when the epoch space (int16) is used up.
local e = redis.call('GET', KEYS[1])
if not e then return -1 end
if tonumber(e) >= 32767 then return -2 end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
