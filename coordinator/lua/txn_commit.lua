-- txn_commit.lua (issue 11): a partition's transaction bookkeeping, prepended
-- to commit.lua so it runs in the same script as the append: an acknowledged
-- transactional batch can never be visible without holding back the last
-- stable offset, and a retried commit (answered from segs) applies nothing
-- twice.
--
-- KEYS[#KEYS-1] open hash: producer id -> first offset of its open
--   transaction on this partition; the field "span" holds the longest
--   (last - first) of any aborted transaction, which bounds range queries.
-- KEYS[#KEYS] aborted zset: score first offset, member "first:last:pid",
--   last being the offset of the abort marker (Kafka's AbortedTxn).
--
-- txns: { {flag, base offset}, ... } for the batches the commit appended,
-- flag "T<pid>" (transactional data), "A<pid>" (abort marker, control type
-- 0) or "C<pid>" (commit marker, control type 1).
local function txn_apply(txns)
  if #txns == 0 then return end
  local openk, abortk = KEYS[#KEYS - 1], KEYS[#KEYS]
  for _, t in ipairs(txns) do
    local kind, pid, off = string.sub(t[1], 1, 1), string.sub(t[1], 2), t[2]
    local first = redis.call('HGET', openk, pid)
    if kind == 'T' then
      -- The first transactional batch of a producer with no open
      -- transaction here starts one (Kafka: firstOffset of the txn).
      if not first then redis.call('HSET', openk, pid, string.format('%d', off)) end
    elseif first then
      -- A marker closes the producer's transaction. A marker with nothing
      -- open (a partition the transaction added but never wrote to, or a
      -- rewritten marker) is only a record of the log.
      redis.call('HDEL', openk, pid)
      if kind == 'A' then
        redis.call('ZADD', abortk, first, first .. ':' .. string.format('%d', off) .. ':' .. pid)
        local span = off - tonumber(first)
        if span > tonumber(redis.call('HGET', openk, 'span') or '0') then
          redis.call('HSET', openk, 'span', string.format('%d', span))
        end
      end
    end
  end
end

