-- archive_swap.lua: replace a run of one partition's index entries (hot
-- segment chunks) by entries pointing at archive row groups, atomically,
-- fenced by the partition's compaction lease. One partition's slot only.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] time, KEYS[4] released, KEYS[5] the
-- compaction lease (compact_lease.lua)
-- ARGV[1] lease token, ARGV[2] now (ms), ARGV[3] n, the number of entries
-- replaced, ARGV[4] the log cleaner's checkpoint (cleaner.go: the first
-- offset no cleaning pass has covered) or "" to leave it, ARGV[5] its
-- tombstone horizons (written with the checkpoint), then the n replaced
-- members in offset order, then the new members in offset order
-- ("base|records|byteoff|bytelen|maxts|archivekey").
--
-- The log cleaner (a compacted topic) uses the same script to swap archive
-- entries for rewritten ones: the new entries may then leave gaps (offsets
-- of records it removed), which lookup.lua steps over.
--
-- The replaced entries must be exactly the log's entries between the first
-- one's base and the last one's end, all below the high watermark: else
-- the index changed since the compactor read it and nothing is written.
-- Returns {"K", removed bytes, added bytes}; {"D"} when the swap happened
-- already (a retry: the first new member is there, no replaced one is);
-- {"F", holder, token} when the caller's lease is lost (fenced); {"C"} when
-- the entries changed; {"N"} for a deleted or unknown partition.
local meta, logk, timek, released, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function itoa(n) return string.format('%d', n) end
local t = redis.call('TIME')
local nowSrv = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HMGET', lease, 'holder', 'token', 'expires')
if not l[2] or l[2] ~= ARGV[1] or tonumber(l[3]) <= nowSrv then
  return { 'F', l[1] or '', l[2] or '0' }
end
local m = redis.call('HMGET', meta, 's', 'hwm', 'bytes')
if m[1] ~= 'live' then return { 'N' } end
local hwm, bytes = tonumber(m[2] or '0'), tonumber(m[3] or '0')
local now, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local old, new = {}, {}
local cleaned, horizons = ARGV[4], ARGV[5]
for i = 1, n do old[i] = ARGV[5 + i] end
for i = 6 + n, #ARGV do new[#new + 1] = ARGV[i] end
if n == 0 or #new == 0 then return { 'C' } end

local function parse(member)
  local base, records, len, maxts, seg = string.match(member, '^(%d+)|(%d+)|%d+|(%d+)|(%d+)|(.*)$')
  return tonumber(base), tonumber(records), tonumber(len), tonumber(maxts), seg
end

local first = parse(old[1])
local lb, lr = parse(old[n])
local stop = lb + lr
local present = 0
for i = 1, n do
  local b = parse(old[i])
  local s = redis.call('ZSCORE', logk, old[i])
  if s and tonumber(s) == b then present = present + 1 end
end
if present == 0 then
  local nb = parse(new[1])
  local s = redis.call('ZSCORE', logk, new[1])
  if s and tonumber(s) == nb then return { 'D' } end
  return { 'C' }
end
if present ~= n or stop > hwm then return { 'C' } end
if redis.call('ZCOUNT', logk, first, stop - 1) ~= n then return { 'C' } end

-- Neighbours: a segment they point at is not released.
local before = redis.call('ZREVRANGEBYSCORE', logk, '(' .. itoa(first), '-inf', 'LIMIT', 0, 1)[1]
local after = redis.call('ZRANGEBYSCORE', logk, itoa(stop), '+inf', 'LIMIT', 0, 1)[1]
local keep = {}
if before then local _, _, _, _, s = parse(before); keep[s] = true end
if after then local _, _, _, _, s = parse(after); keep[s] = true end

-- The time index: its members in the range go, with the running max
-- before the range found from the lowest of them (scores rise with bases).
local low = nil
for i = 1, n do
  local b = parse(old[i])
  local s = redis.call('ZSCORE', timek, itoa(b))
  if s then
    if low == nil then low = s end
    redis.call('ZREM', timek, itoa(b))
  end
end
local runmax = nil
if low then
  local prev = redis.call('ZREVRANGEBYSCORE', timek, '(' .. low, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if prev[2] then runmax = tonumber(prev[2]) end
else
  runmax = math.huge -- no rise inside the range: none after the swap either
end

local removedBytes, addedBytes = 0, 0
local seen = {}
for i = 1, n do
  local _, _, len, _, seg = parse(old[i])
  redis.call('ZREM', logk, old[i])
  removedBytes = removedBytes + len
  if not keep[seg] and not seen[seg] then
    seen[seg] = true
    redis.call('ZADD', released, 'NX', now, seg)
  end
end
for _, member in ipairs(new) do
  local b, _, len, maxts = parse(member)
  redis.call('ZADD', logk, b, member)
  addedBytes = addedBytes + len
  if runmax == nil or maxts > runmax then
    runmax = maxts
    redis.call('ZADD', timek, maxts, itoa(b))
  end
end
redis.call('HSET', meta, 'bytes', itoa(bytes - removedBytes + addedBytes))
if cleaned ~= '' then
  redis.call('HSET', meta, 'cleaned', cleaned, 'horizons', horizons)
end
return { 'K', removedBytes, addedBytes }
