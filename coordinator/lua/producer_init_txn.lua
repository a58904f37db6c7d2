-- producer_init_txn.lua: bind a transactional id to a producer id and raise
-- its epoch (Kafka's InitProducerId with a transactional.id).
--
-- KEYS[1] the transactional id's hash (its own slot): pid, epoch,
-- timeout (ms), state, and last: the epoch the latest bump replaced when
-- that bump was the holder's own (KIP-360) or the timeout fence (KIP-588),
-- so that the holder's retry finds it. ARGV[1] a fresh producer id to
-- bind, or "0" for none; ARGV[2] the transaction timeout in ms; ARGV[3]
-- the key's TTL in ms; ARGV[4] whose bump: "" a new producer (fences
-- every holder: last is forgotten), "fence" the timeout reaper's (last
-- kept), "pair" the holder of ARGV[5] producer id and ARGV[6] epoch
-- (KIP-360: only the current pair bumps; the pair the latest fence or
-- holder's bump replaced gets the current one back, a retry).
--
-- Returns "pid:epoch"; "R:pid:epoch" for a holder's retry (nothing
-- changed); "F:pid:epoch" for a pair that is neither (the current one
-- after the colon); or "N" when a fresh id is needed (the id is unbound,
-- or its epochs are used up) and ARGV[1] is "0": the caller allocates one
-- from the id counter, in another slot, and calls again.
local h = redis.call('HMGET', KEYS[1], 'pid', 'epoch', 'last')
local mode = ARGV[4] or ''
if mode == 'pair' and h[1] then
  if h[1] ~= ARGV[5] then return 'F:' .. h[1] .. ':' .. h[2] end
  if tonumber(ARGV[6]) ~= tonumber(h[2]) then
    if h[3] and tonumber(ARGV[6]) == tonumber(h[3]) then
      redis.call('PEXPIRE', KEYS[1], ARGV[3])
      return 'R:' .. h[1] .. ':' .. h[2]
    end
    return 'F:' .. h[1] .. ':' .. h[2]
  end
end
local pid, epoch
if h[1] and tonumber(h[2]) < 32767 then
  pid = h[1]
  epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
  if mode == '' then
    redis.call('HDEL', KEYS[1], 'last')
  else
    redis.call('HSET', KEYS[1], 'last', h[2])
  end
elseif ARGV[1] ~= '0' then
  pid = ARGV[1]
  epoch = 0
  redis.call('HSET', KEYS[1], 'pid', pid, 'epoch', 0)
  redis.call('HDEL', KEYS[1], 'last')
else
  return 'N'
end
-- state is a placeholder for transactions ("empty": none open).
redis.call('HSET', KEYS[1], 'timeout', ARGV[2], 'state', 'empty')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return pid .. ':' .. epoch
