-- lookup.lua: the index entry holding an offset and the entries after it
-- while their bytes add up to at most maxBytes (at least one). One script so
-- the bounds and the entries come from the same instant.
--
-- KEYS[1] meta, KEYS[2] log; ARGV[1] offset, ARGV[2] max bytes, ARGV[3] max
-- entries (bounds the script's run time, which blocks the server).
-- Returns {"N"} for a deleted or unknown partition, {"R", start, hwm} when
-- the offset is out of range, else {"K", start, hwm, bytes, member...}.
local m = redis.call('HMGET', KEYS[1], 's', 'start', 'hwm', 'bytes')
if m[1] ~= 'live' then return { 'N' } end
local start, hwm, bytes = tonumber(m[2] or '0'), tonumber(m[3] or '0'), tonumber(m[4] or '0')
local offset, maxBytes, maxEntries = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if offset < start or offset > hwm then return { 'R', start, hwm } end
local out = { 'K', start, hwm, bytes }
if offset == hwm then return out end

local function parse(member)
  local base, records, len = string.match(member, '^(%d+)|(%d+)|%d+|(%d+)|')
  return tonumber(base), tonumber(records), tonumber(len)
end

-- The entry at or before offset holds it unless a hole (trimmed data)
-- separates them; then the first entry after offset is the answer.
local from = '-inf'
local first = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'LIMIT', 0, 1)[1]
local total = 0
if first then
  local base, records, len = parse(first)
  if base + records > offset then
    out[#out + 1] = first
    total = len
    from = '(' .. string.format('%d', base)
  else
    from = '(' .. ARGV[1]
  end
end
while true do
  local page = redis.call('ZRANGEBYSCORE', KEYS[2], from, '+inf', 'LIMIT', 0, 32)
  if #page == 0 then return out end
  for _, member in ipairs(page) do
    local base, _, len = parse(member)
    -- Entries at or past hwm are committed but not durable yet (commit.lua).
    if base >= hwm then return out end
    if #out > 4 and (total + len > maxBytes or #out - 4 >= maxEntries) then return out end
    out[#out + 1] = member
    total = total + len
    from = '(' .. string.format('%d', base)
  end
end
