-- topic_create.lua: make a topic visible under its name. The partitions'
-- meta keys are written before this runs, so a visible topic's partitions
-- always accept commits.
--
-- KEYS[1] names hash (name -> id), KEYS[2] the topic's record hash.
-- ARGV[1] name, ARGV[2] id, ARGV[3..] record field/value pairs.
-- Returns 1, or 0 when the name is taken.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
