-- segment_state.lua: does one partition's index still point at a segment?
-- One partition's slot only; garbage collection asks every partition named
-- in the segment's footer.
--
-- KEYS[1] meta, KEYS[2] segs, KEYS[3] released; ARGV[1] segment id,
-- ARGV[2] segment key.
-- Returns {"G"} when the partition is gone (a dropped deleted topic),
-- {"F", ms} when its last entry pointing at the segment was removed at ms,
-- {"U"} when a commit appended the segment and its entries are still there,
-- {"0"} when no commit ever appended it here.
if redis.call('EXISTS', KEYS[1]) == 0 then return { 'G' } end
local at = redis.call('ZSCORE', KEYS[3], ARGV[2])
if at then return { 'F', at } end
local res = redis.call('HGET', KEYS[2], ARGV[1])
-- A stored commit result is "hwm;r1;r2;..." where "o<base>" is an appended
-- batch; duplicates and rejected batches appended nothing.
if res and string.find(res, ';o%d') then return { 'U' } end
return { '0' }
