-- txn_aborted.lua (issue 11): the aborted transactions of one partition that
-- overlap the offsets [from, to] (Kafka FetchResponse AbortedTransactions).
--
-- KEYS[1] open hash (its "span" field: the longest aborted transaction),
-- KEYS[2] aborted zset (score first offset, member "first:last:pid").
-- ARGV[1] from, ARGV[2] to, ARGV[3] max entries.
-- Returns the members with first <= to and last >= from, by first offset.
local from, to, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local span = tonumber(redis.call('HGET', KEYS[1], 'span') or '0')
-- No aborted transaction starting before from - span can reach from.
local lo = from - span
local out = {}
local cursor = string.format('%d', lo)
while #out < max do
  local page = redis.call('ZRANGEBYSCORE', KEYS[2], cursor, ARGV[2], 'LIMIT', 0, 64)
  if #page == 0 then break end
  for _, m in ipairs(page) do
    local first, last = string.match(m, '^(%d+):(%d+):')
    if tonumber(last) >= from and #out < max then out[#out + 1] = m end
    cursor = '(' .. first
  end
  if #page < 64 then break end
end
return out
