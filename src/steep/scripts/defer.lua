-- defer: put a claimed job back in the scheduled set without running it and
-- without spending an attempt (a rate limit said "not now").
-- KEYS[1] inflight  LIST
-- KEYS[2] jobs      HASH
-- KEYS[3] state     HASH
-- KEYS[4] scheduled ZSET
-- ARGV[1] id
-- ARGV[2] envelope (its deferral count raised)
-- ARGV[3] due time (ms)
local id = ARGV[1]
if redis.call('LREM', KEYS[1], 1, id) == 0 then
  return 0 -- no longer ours (returned or settled by someone else)
end
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], id)
redis.call('HSET', KEYS[3], id, 'scheduled')
return 1
