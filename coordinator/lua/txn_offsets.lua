-- txn_offsets.lua (issues 11, 13): a transaction's offsets in one group's
-- slot {g:<group>}; prepended with luaNowMs.
--
-- KEYS[1] pending hash of one producer id: "~epoch" -> its epoch, and
--   "<partition>:<topic>" -> "[@<topic id>:][#<leader epoch>:]<offset>:
--   <commit ms>:<metadata>" (the committed-offset format of groups.go)
-- KEYS[2] the group's committed offsets hash
-- KEYS[3] the group's members (lease expiry by id), KEYS[4] their epochs
-- KEYS[5] the group's set of producer ids with a pending hash (what
--   OffsetFetch's RequireStable looks at, KIP-447)
-- ARGV[1] op: "stage" (TxnOffsetCommit) | "commit" | "abort" (EndTxn's
--   outcome), ARGV[2] epoch, ARGV[3] producer id; stage: ARGV[4] "1" to
--   check the member (KIP-447), ARGV[5] member id, ARGV[6] its epoch
--   (a classic group's generation, a consumer group's member epoch), then
--   per partition field, prefix ("@<id>:" and "#<epoch>:" or ""), offset,
--   commit ms ("" = server now), metadata.
--
-- Returns {0} done, {1, epoch} fenced by a newer epoch's pending offsets,
-- and, the member checked in the same step as the staging: {2} not in the
-- group, {3, epoch} at another epoch, {4, remaining ms} lease expired.
-- commit and abort are idempotent: the pending hash is gone after either.
local op, epoch = ARGV[1], tonumber(ARGV[2])
if op == 'stage' then
  local cur = redis.call('HGET', KEYS[1], '~epoch')
  if cur and tonumber(cur) > epoch then return { 1, tonumber(cur) } end
  local now = now_ms()
  if ARGV[4] == '1' then
    local exp = redis.call('ZSCORE', KEYS[3], ARGV[5])
    if not exp then return { 2 } end
    local me = tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '-1')
    if me ~= tonumber(ARGV[6]) then return { 3, me } end
    if tonumber(exp) <= tonumber(now) then return { 4, tonumber(exp) - tonumber(now) } end
  end
  -- Leftovers of an older epoch belong to a transaction that was aborted.
  if cur and tonumber(cur) < epoch then redis.call('DEL', KEYS[1]) end
  redis.call('HSET', KEYS[1], '~epoch', ARGV[2])
  redis.call('SADD', KEYS[5], ARGV[3])
  for i = 7, #ARGV, 5 do
    local ts = ARGV[i + 3]
    if ts == '' then ts = now end
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ARGV[i + 2] .. ':' .. ts .. ':' .. ARGV[i + 4])
  end
  return { 0 }
end
if op == 'commit' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i] ~= '~epoch' then redis.call('HSET', KEYS[2], all[i], all[i + 1]) end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[5], ARGV[3])
return { 0 }
