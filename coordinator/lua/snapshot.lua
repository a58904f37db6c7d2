-- snapshot.lua: every key of the embedded index with its type, remaining
-- TTL (ms, -1 = none) and value, read in one script so the snapshot is a
-- single consistent instant. Embedded (miniredis) only: it reads keys it
-- was not given, which Redis Cluster would refuse.
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k)
  if type(t) == 'table' then t = t.ok end
  local v
  if t == 'none' then
    -- Listed, then expired before TYPE looked: nothing to keep.
  elseif t == 'string' then v = redis.call('GET', k)
  elseif t == 'hash' then v = redis.call('HGETALL', k)
  elseif t == 'set' then v = redis.call('SMEMBERS', k)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  else return redis.error_reply('snapshot: key ' .. k .. ' has unsupported type ' .. tostring(t))
  end
  if v then out[#out + 1] = { k, t, redis.call('PTTL', k), v } end
end
return out
