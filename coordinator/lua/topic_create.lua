-- topic_create.lua: make a topic visible under its name. The partitions'
-- meta keys are written before this runs, so a visible topic's partitions
-- always accept commits.
--
-- KEYS[1] names hash (name -> id), KEYS[2] the topic's record hash.
-- ARGV[1] name, ARGV[2] id, ARGV[3..] record field/value pairs.
-- Returns 1, 0 when the name is taken, or "C<name>" when the name collides
-- with an existing topic's in Kafka's metric names, where '.' and '_' are
-- the same (Kafka's Topic.hasCollision: "col.a" and "col_a"; issue 12).
-- The collision check reads the names hash in this script, so it is atomic
-- with the create; it walks the names only for a name holding '.' or '_'
-- (creates are rare, and a name without either cannot collide).
local name = ARGV[1]
if redis.call('HEXISTS', KEYS[1], name) == 1 then return 0 end
if string.find(name, '[._]') then
  local metric = string.gsub(name, '%.', '_')
  for _, other in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.gsub(other, '%.', '_') == metric then return 'C' .. other end
  end
end
redis.call('HSET', KEYS[1], name, ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
