-- compact_lease.lua: the compaction lease of one partition, kept under the
-- partition's own hash tag so that archive_swap.lua can check it in the
-- same script (a script touches one slot only).
--
-- KEYS[1] lease hash {t:<id>:<p>}:compact (holder, token, expires)
-- ARGV[1] mode: "A" acquire, "R" renew, "X" release; ARGV[2] holder,
-- ARGV[3] token (R, X), ARGV[4] ttl ms (A, R).
--
-- Tokens: the server's clock in µs-ish units (ms x 1000), or the last
-- token + 1 when that is larger, so a token handed out after the hash was
-- released (deleted) is still above every earlier one.
-- Returns {1, token, ttl} when taken or renewed, {0, holder, token,
-- remaining ms} when another token holds it, {2} when ours is gone or
-- expired (R), {1} released (X).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token', 'expires')
local mode = ARGV[1]
local held = cur[3] and tonumber(cur[3]) > now
if mode == 'A' then
  if held then return { 0, cur[1], tonumber(cur[2]), tonumber(cur[3]) - now } end
  local token = now * 1000
  if cur[2] and tonumber(cur[2]) + 1 > token then token = tonumber(cur[2]) + 1 end
  local ttl = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'token', string.format('%d', token), 'expires', string.format('%d', now + ttl))
  return { 1, token, ttl }
end
if not cur[2] or tonumber(cur[2]) ~= tonumber(ARGV[3]) then
  if mode == 'X' then return { 1 } end
  if held then return { 0, cur[1], tonumber(cur[2]), tonumber(cur[3]) - now } end
  return { 2 }
end
if mode == 'X' then
  -- The token stays, so the next one is higher even within one millisecond.
  redis.call('HSET', KEYS[1], 'expires', '0')
  return { 1 }
end
if not held then return { 2 } end
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires', string.format('%d', now + ttl))
return { 1, tonumber(cur[2]), ttl }
