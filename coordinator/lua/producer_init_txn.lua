-- producer_init_txn.lua: bind a transactional id to a producer id and raise
-- its epoch (Kafka's InitProducerId with a transactional.id).
--
-- KEYS[1] the transactional id's hash (its own slot): pid, epoch,
-- timeout (ms), state. ARGV[1] a fresh producer id to bind, or "0" for
-- none; ARGV[2] the transaction timeout in ms; ARGV[3] the key's TTL in ms.
--
-- Returns "pid:epoch"; or "N" when a fresh id is needed (the id is unbound,
-- or its epochs are used up) and ARGV[1] is "0": the caller allocates one
-- from the id counter, in another slot, and calls again.
local h = redis.call('HMGET', KEYS[1], 'pid', 'epoch')
local pid, epoch
if h[1] and tonumber(h[2]) < 32767 then
  pid = h[1]
  epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
elseif ARGV[1] ~= '0' then
  pid = ARGV[1]
  epoch = 0
  redis.call('HSET', KEYS[1], 'pid', pid, 'epoch', 0)
else
  return 'N'
end
-- state is a placeholder for transactions ("empty": none open).
redis.call('HSET', KEYS[1], 'timeout', ARGV[2], 'state', 'empty')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return pid .. ':' .. epoch
