-- txn_offsets.lua (issue 11): a transaction's offsets in one group's slot
-- {g:<group>}; prepended with luaNowMs.
--
-- KEYS[1] pending hash of one producer id: "~epoch" -> its epoch, and
--   "<partition>:<topic>" -> "@<topic id>:<offset>:<commit ms>:<metadata>"
--   (the committed-offset format of groups.go)
-- KEYS[2] the group's committed offsets hash
-- ARGV[1] op: "stage" (TxnOffsetCommit) | "commit" | "abort" (EndTxn's
--   outcome), ARGV[2] epoch; stage: then per partition field, topic id
--   prefix ("@<id>:" or ""), offset, commit ms ("" = server now), metadata.
--
-- Returns {0} done, {1, epoch} fenced by a newer epoch's pending offsets.
-- commit and abort are idempotent: the pending hash is gone after either.
local op, epoch = ARGV[1], tonumber(ARGV[2])
if op == 'stage' then
  local cur = redis.call('HGET', KEYS[1], '~epoch')
  if cur and tonumber(cur) > epoch then return { 1, tonumber(cur) } end
  -- Leftovers of an older epoch belong to a transaction that was aborted.
  if cur and tonumber(cur) < epoch then redis.call('DEL', KEYS[1]) end
  local now = now_ms()
  redis.call('HSET', KEYS[1], '~epoch', ARGV[2])
  for i = 3, #ARGV, 5 do
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
return { 0 }
