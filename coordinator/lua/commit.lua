-- commit.lua: append one partition's chunk of a segment to the partition's
-- log. Touches only keys of that partition's slot, so it runs unchanged on
-- Redis Cluster; CommitSegment pipelines one call per chunk.
--
-- Offsets it assigns are not visible yet: it advances the log end offset
-- (leo), and advance_hwm.lua moves the high watermark (hwm, what readers
-- see) up to it once the commit is durable (DESIGN.md write path step 6).
--
-- KEYS[1] meta  hash: s ("live"/"deleted"), leo, hwm, start, bytes, mt (running max timestamp)
-- KEYS[2] log   zset: score base offset, member "base|records|byteoff|bytelen|maxts|segkey"
-- KEYS[3] time  zset: member base offset, score running max timestamp (strictly rising)
-- KEYS[4] segs  hash: segment id -> stored result (idempotence)
-- KEYS[5..] producer state strings "epoch;first,last,base;..." (last 5 batches)
-- KEYS[#KEYS-1], KEYS[#KEYS] (issue 11) the partition's open transactions and
-- aborted transactions, always the last two keys: see txn_commit.lua.
-- ARGV[1] segment id, ARGV[2] segment key, ARGV[3] producer state TTL ms,
-- then 8 per batch: byteoff, bytelen, records, maxts, producer key index
-- (0 = not idempotent), epoch, base sequence, transaction flag ("" none,
-- "T<pid>" transactional data, "A<pid>"/"C<pid>" abort/commit marker).
--
-- Returns "T" for a deleted or unknown partition (nothing written), else
-- "leo;r1;r2;...@start" (leo after the commit) with per batch: o<base>
-- appended, d<base> duplicate, F<epoch> fenced by the partition's epoch,
-- S<expected> sequence gap; start is the log start offset now (issue 12:
-- Kafka's Produce answers it), read here because the script holds the
-- partition's meta anyway. segs keeps the reply without "@start": a
-- retry answers the log start of its own time.
local meta, logk, timek, segs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local m = redis.call('HMGET', meta, 's', 'leo', 'bytes', 'mt', 'hwm', 'start')
if m[1] ~= 'live' then return 'T' end
local prev = redis.call('HGET', segs, ARGV[1])
if prev then
  -- Written again so that this call replicates: a WAIT after a retry then
  -- covers the first attempt's writes too, whichever connection it runs on,
  -- also on servers that track a connection's replication offset only from
  -- the writes it made itself (redis-server 7.0 waits for the latest
  -- offset anyway).
  redis.call('HSET', segs, ARGV[1], prev)
  return prev .. '@' .. (m[6] or '0')
end

-- Lua numbers are doubles: string.format('%d') keeps big offsets out of
-- exponent notation, which tostring would use past 1e14.
local function itoa(n) return string.format('%d', n) end

local segkey = ARGV[2]
-- A partition written before leo existed has its end in hwm.
local hwm0 = tonumber(m[2] or m[5] or '0')
local hwm = hwm0
local bytes = tonumber(m[3] or '0')
local mt = m[4] and tonumber(m[4]) or nil

-- Producer states, loaded on first use and written back at the end.
local states = {}
local function state(ki)
  local st = states[ki]
  if st then return st end
  st = { batches = {} }
  local raw = redis.call('GET', KEYS[ki])
  if raw then
    local e, rest = string.match(raw, '^(-?%d+)(.*)$')
    st.epoch = tonumber(e)
    for f, l, o in string.gmatch(rest, ';(%d+),(%d+),(%d+)') do
      st.batches[#st.batches + 1] = { tonumber(f), tonumber(l), tonumber(o) }
    end
  end
  states[ki] = st
  return st
end

-- A run of consecutive appended batches that are contiguous in the segment
-- becomes one index entry.
local run = nil
local function flush()
  if not run then return end
  redis.call('ZADD', logk, run.base, itoa(run.base) .. '|' .. itoa(run.records) .. '|' ..
    itoa(run.off) .. '|' .. itoa(run.len) .. '|' .. itoa(run.maxts) .. '|' .. segkey)
  bytes = bytes + run.len
  -- Only a rise of the running max gets a time entry: scores stay strictly
  -- increasing, so the first entry with score >= ts answers ListOffsets.
  if mt == nil or run.maxts > mt then
    mt = run.maxts
    redis.call('ZADD', timek, mt, itoa(run.base))
  end
  run = nil
end

local out = {}
local n = (#ARGV - 3) / 8
local txns = {} -- issue 11: appended transactional batches, for txn_apply
for i = 0, n - 1 do
  local a = 4 + i * 8
  local off, len, records, maxts = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local ki, epoch, seq = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local code = nil
  local st, last = nil, nil
  -- issue 11: a transaction marker has no sequence (Kafka writes it with -1)
  -- but fences: an older epoch's marker is refused, and a newer epoch's
  -- (the abort after a re-init) fences the older epoch's late batches.
  local marker = string.match(ARGV[a + 7], '^[AC]') ~= nil
  if ki > 0 and marker then
    st = state(ki)
    if st.epoch ~= nil and epoch < st.epoch then code = 'F' .. itoa(st.epoch) end
  elseif ki > 0 then
    st = state(ki)
    last = seq + records - 1
    if last > 2147483647 then last = last - 2147483648 end -- sequences wrap like Kafka's
    if st.epoch ~= nil and epoch < st.epoch then
      code = 'F' .. itoa(st.epoch)
    elseif st.epoch ~= nil and epoch > st.epoch then
      -- A new epoch starts its sequences at 0 (Kafka).
      if seq ~= 0 then code = 'S0' end
    elseif st.epoch ~= nil then
      for _, b in ipairs(st.batches) do
        if b[1] == seq and b[2] == last then code = 'd' .. itoa(b[3]) end
      end
      local nb = #st.batches
      if not code and nb > 0 then
        local expect = st.batches[nb][2] + 1
        if expect > 2147483647 then expect = 0 end
        if seq ~= expect then code = 'S' .. itoa(expect) end
      end
    end
    -- No state at all: a producer new to this partition, or whose state
    -- expired; any sequence is accepted (Kafka since KIP-360).
  end
  if code then
    flush()
  else
    code = 'o' .. itoa(hwm)
    if ARGV[a + 7] ~= '' then txns[#txns + 1] = { ARGV[a + 7], hwm } end -- issue 11
    if st and marker then -- issue 11
      if st.epoch ~= epoch then st.batches = {}; st.epoch = epoch; st.dirty = true end
    elseif st then
      if st.epoch ~= epoch then st.batches = {} end
      st.epoch = epoch
      st.batches[#st.batches + 1] = { seq, last, hwm }
      if #st.batches > 5 then table.remove(st.batches, 1) end
      st.dirty = true
    end
    if run and run.off + run.len == off then
      run.records = run.records + records
      run.len = run.len + len
      if maxts > run.maxts then run.maxts = maxts end
    else
      flush()
      run = { base = hwm, records = records, off = off, len = len, maxts = maxts }
    end
    hwm = hwm + records
  end
  out[#out + 1] = code
end
flush()
txn_apply(txns) -- issue 11: defined in txn_commit.lua, prepended to this script

for ki, st in pairs(states) do
  if st.dirty then
    local parts = { itoa(st.epoch) }
    for _, b in ipairs(st.batches) do
      parts[#parts + 1] = itoa(b[1]) .. ',' .. itoa(b[2]) .. ',' .. itoa(b[3])
    end
    redis.call('SET', KEYS[ki], table.concat(parts, ';'), 'PX', ARGV[3])
  end
end

local res = itoa(hwm)
if #out > 0 then res = res .. ';' .. table.concat(out, ';') end
if hwm ~= hwm0 then
  redis.call('HSET', meta, 'leo', itoa(hwm), 'bytes', itoa(bytes), 'mt', itoa(mt))
end
redis.call('HSET', segs, ARGV[1], res)
return res .. '@' .. (m[6] or '0')
