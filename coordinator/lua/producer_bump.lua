-- producer_bump.lua: raise a producer's epoch.
--
-- KEYS[1] the producer's key (its own slot). Returns the new epoch, -1 for an
-- unknown producer, -2 when the epoch space (int16) is used up.
local e = redis.call('GET', KEYS[1])
if not e then return -1 end
if tonumber(e) >= 32767 then return -2 end
return redis.call('INCR', KEYS[1])
