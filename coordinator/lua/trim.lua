-- trim.lua: remove index entries from the front of one partition's log and
-- advance its log start offset: DeleteRecords, retention, and the drop of a
-- deleted topic's partition. One partition's slot only.
--
-- KEYS[1] meta, KEYS[2] log, KEYS[3] time, KEYS[4] released, KEYS[5] segs
-- KEYS[6] txn-open, KEYS[7] txn-aborted (issue 11, see txn_commit.lua)
--   released zset: member a segment key, score the time (ms) the partition's
--   last entry pointing at that segment was removed.
-- ARGV[1] mode: "D" delete records, "R" retention, "X" drop (deleted topic)
-- ARGV[2] now (ms), ARGV[3] max entries removed by this call (bounds the
-- script's run time; the caller calls again while "more" is 1), then
--   D: ARGV[4] before offset (-1 = the high watermark)
--   R: ARGV[4] retention.ms (-1 = forever), ARGV[5] retention.bytes
--      (-1 = unlimited), ARGV[6] the caller's now (ms) that retention.ms
--      counts back from
--
-- Returns {"N"} for a deleted or unknown partition (modes D, R),
-- {"R", start, hwm} when a D offset is above the high watermark, else
-- {"K", start, hwm, bytes, entries removed, bytes removed, more}.
-- Entries only partly below the new log start stay: reads below the log
-- start are out of range anyway, and the bytes stay until the whole entry
-- can go (Kafka deletes whole segments the same way).
local meta, logk, timek, released, segs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local mode, now, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local m = redis.call('HMGET', meta, 's', 'start', 'hwm', 'bytes')
if mode ~= 'X' and m[1] ~= 'live' then return { 'N' } end
local function itoa(n) return string.format('%d', n) end
local start, hwm, bytes = tonumber(m[2] or '0'), tonumber(m[3] or '0'), tonumber(m[4] or '0')
local start0 = start

local target = nil
local retMs, retBytes, cutoffNow = -1, -1, now
if mode == 'D' then
  local before = tonumber(ARGV[4])
  if before < 0 then before = hwm end
  if before > hwm then return { 'R', start, hwm } end
  target = math.max(start, before)
elseif mode == 'R' then
  retMs, retBytes, cutoffNow = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
end

local function parse(member)
  local base, records, len, maxts, seg = string.match(member, '^(%d+)|(%d+)|%d+|(%d+)|(%d+)|(.*)$')
  return tonumber(base), tonumber(records), tonumber(len), tonumber(maxts), seg
end

local removed, removedBytes, lastEnd = 0, 0, nil
local segsRemoved = {} -- in order, distinct
local more = 0
local done = false
while not done do
  local page = redis.call('ZRANGE', logk, 0, 31)
  if #page == 0 then break end
  for _, member in ipairs(page) do
    if removed >= limit then more = 1; done = true; break end
    local base, records, len, maxts, seg = parse(member)
    local go
    if mode == 'D' then
      go = base + records <= target
    elseif mode == 'R' then
      -- Only entries below the high watermark: those above it are
      -- committed but not durable yet (advance_hwm.lua), and the log start
      -- must never pass the high watermark.
      go = base + records <= hwm and
        ((retMs >= 0 and maxts < cutoffNow - retMs) or (retBytes >= 0 and bytes - len >= retBytes))
    else
      go = true
    end
    if not go then done = true; break end
    redis.call('ZREM', logk, member)
    removed = removed + 1
    removedBytes = removedBytes + len
    bytes = bytes - len
    lastEnd = base + records
    if segsRemoved[#segsRemoved] ~= seg then segsRemoved[#segsRemoved + 1] = seg end
  end
end

-- A segment is released once no entry of this partition points at it. A
-- segment's entries in one partition are contiguous (one commit appends
-- them all), so only the first remaining entry can still point at the last
-- segment removed.
local first = redis.call('ZRANGE', logk, 0, 0)[1]
local firstBase, firstSeg = nil, nil
if first then
  local b, _, _, _, s = parse(first)
  firstBase, firstSeg = b, s
end
for _, seg in ipairs(segsRemoved) do
  if seg ~= firstSeg then redis.call('ZADD', released, 'NX', now, seg) end
end

if mode == 'D' then
  start = target
elseif lastEnd and lastEnd > start then
  start = lastEnd
end

-- Time index: drop the members of removed entries. When the first remaining
-- entry (or, with none, the next one to come at the log start) has no member
-- of its own, it inherits the highest removed running max, so the scores
-- still rise strictly and ListOffsets still finds it.
local cutoff = firstBase or start
local lastScore = nil
while true do
  local t = redis.call('ZRANGE', timek, 0, 31, 'WITHSCORES')
  if #t == 0 then break end
  local stop = false
  for i = 1, #t, 2 do
    if tonumber(t[i]) >= cutoff then stop = true; break end
    redis.call('ZREM', timek, t[i])
    lastScore = t[i + 1]
  end
  if stop then break end
end
if lastScore and mode ~= 'X' and not redis.call('ZSCORE', timek, itoa(cutoff)) then
  redis.call('ZADD', timek, lastScore, itoa(cutoff))
end

if mode == 'X' then
  if not first then
    -- Everything is gone but the released list, which garbage collection
    -- empties as it deletes the segments.
    redis.call('DEL', meta, logk, timek, segs)
    redis.call('DEL', KEYS[6], KEYS[7]) -- issue 11
  end
  return { 'K', start, hwm, bytes, removed, removedBytes, first and 1 or 0 }
end
if start ~= start0 or removed > 0 then
  redis.call('HSET', meta, 'start', itoa(start), 'bytes', itoa(bytes))
  -- issue 11: aborted transactions wholly below the log start can no longer
  -- overlap a fetch. An entry ends at most span after it starts, so every
  -- one starting before start - span is such.
  local span = tonumber(redis.call('HGET', KEYS[6], 'span') or '0')
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. itoa(start - span))
end
return { 'K', start, hwm, bytes, removed, removedBytes, more }
