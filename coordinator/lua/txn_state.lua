-- txn_state.lua (issue 11): one transactional id's state machine (KIP-98).
-- Prepended with luaNowMs; all keys in the id's slot {x:<transactional id>}.
--
-- KEYS[1] txn hash: pid, epoch, state, dpid (producer id of the open
--   transaction's data), timeout (ms), start (ms, server clock; 0 = none),
--   updated (ms)
-- KEYS[2] partitions set: "<topic id>:<partition>"
-- KEYS[3] groups set: group ids whose offsets the transaction commits
-- ARGV[1] op: init | add | offsets | end | complete | describe
-- ARGV[2] producer id, ARGV[3] epoch, ARGV[4] the keys' TTL in ms (renewed
-- by every write: the transactional id's expiry, as producers.go's), then
-- per op: init: ARGV[5] timeout ms; add: partitions...; offsets: groups...;
-- end: ARGV[5] "1" commit / "0" abort.
--
-- Returns {"N"} unknown id, {"F", pid, epoch} fenced (the stored producer),
-- {"C", state} a commit or abort is still being completed (Kafka
-- CONCURRENT_TRANSACTIONS), {"S", state} the op is invalid in this state
-- (INVALID_TXN_STATE), else {"K", started, state, pid, epoch, dpid, timeout,
-- start, updated, now, #partitions, partitions..., groups...}; started is 1
-- when this call began a transaction.
local now = now_ms() -- a string: HSET keeps it exact
local txk, partk, grpk = KEYS[1], KEYS[2], KEYS[3]
local op, pid, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3])
local h = redis.call('HMGET', txk, 'pid', 'epoch', 'state')
local started = 0

local function reply()
  if op ~= 'describe' then
    for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ARGV[4]) end
  end
  local t = redis.call('HMGET', txk, 'state', 'pid', 'epoch', 'dpid', 'timeout', 'start', 'updated')
  local parts = redis.call('SMEMBERS', partk)
  local out = { 'K', tostring(started), t[1], t[2], t[3], t[4] or '-1', t[5], t[6] or '0', t[7], tostring(now),
    tostring(#parts) }
  for _, p in ipairs(parts) do out[#out + 1] = p end
  for _, g in ipairs(redis.call('SMEMBERS', grpk)) do out[#out + 1] = g end
  return out
end

if op == 'describe' then
  if not h[1] then return { 'N' } end
  return reply()
end

if op == 'init' then
  if h[1] == pid and epoch < tonumber(h[2]) then return { 'F', h[1], h[2] } end
  if h[1] == pid and epoch == tonumber(h[2]) then return reply() end -- a retried init
  -- A new incarnation (a higher epoch, or a new producer id once the old
  -- one's epochs ran out) fences the old one; its open transaction is
  -- aborted (Kafka aborts it when InitProducerId bumps the epoch). A commit
  -- or abort already prepared keeps its outcome.
  local state = h[3] or 'Empty'
  if state == 'Ongoing' then state = 'PrepareAbort' end
  redis.call('HSET', txk, 'pid', pid, 'epoch', ARGV[3], 'state', state, 'timeout', ARGV[5], 'updated', now)
  return reply()
end

if not h[1] then return { 'N' } end
if h[1] ~= pid or epoch ~= tonumber(h[2]) then return { 'F', h[1], h[2] } end
local state = h[3]

if op == 'add' or op == 'offsets' then
  if state == 'PrepareCommit' or state == 'PrepareAbort' then return { 'C', state } end
  if state ~= 'Ongoing' then
    redis.call('DEL', partk, grpk)
    redis.call('HSET', txk, 'state', 'Ongoing', 'start', now, 'dpid', pid)
    started = 1
  end
  local set = partk
  if op == 'offsets' then set = grpk end
  for i = 5, #ARGV do redis.call('SADD', set, ARGV[i]) end
  redis.call('HSET', txk, 'updated', now)
  return reply()
end

if op == 'end' then
  local prep, done = 'PrepareAbort', 'CompleteAbort'
  if ARGV[5] == '1' then prep, done = 'PrepareCommit', 'CompleteCommit' end
  if state == 'Ongoing' then
    redis.call('HSET', txk, 'state', prep, 'updated', now)
    return reply()
  end
  if state == prep or state == done then return reply() end -- a retried EndTxn
  return { 'S', state }
end

if op == 'complete' then
  local done
  if state == 'PrepareCommit' then done = 'CompleteCommit'
  elseif state == 'PrepareAbort' then done = 'CompleteAbort'
  elseif state == 'CompleteCommit' or state == 'CompleteAbort' then return reply() -- a retry
  else return { 'S', state } end
  redis.call('DEL', partk, grpk)
  redis.call('HSET', txk, 'state', done, 'start', '0', 'updated', now)
  return reply()
end

return redis.error_reply('txn_state: unknown op ' .. tostring(op))
