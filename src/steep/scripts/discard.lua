-- discard: drop a claimed job without running it (it expired before it could
-- start); counted, and its outcome kept for a waiting caller.
-- KEYS[1] inflight LIST
-- KEYS[2] jobs     HASH
-- KEYS[3] state    HASH
-- KEYS[4] errors   HASH
-- KEYS[5] stats    HASH
-- KEYS[6] result   LIST
-- ARGV[1] id
-- ARGV[2] counter name (e.g. "expired")
-- ARGV[3] day (YYYY-MM-DD)
-- ARGV[4] outcome JSON for a waiting caller, or "" when the job keeps no result
-- ARGV[5] result ttl seconds
local id = ARGV[1]
if redis.call('LREM', KEYS[1], 1, id) == 0 then
  return 0
end
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HDEL', KEYS[4], id)
redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
redis.call('HINCRBY', KEYS[5], ARGV[2] .. ':' .. ARGV[3], 1)
if ARGV[4] ~= '' then
  redis.call('DEL', KEYS[6])
  redis.call('RPUSH', KEYS[6], ARGV[4])
  redis.call('EXPIRE', KEYS[6], ARGV[5])
end
return 1
