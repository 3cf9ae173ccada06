-- fail: settle one job whose attempt failed: schedule its retry, or bury it.
-- KEYS[1] inflight  LIST
-- KEYS[2] jobs      HASH
-- KEYS[3] state     HASH
-- KEYS[4] scheduled ZSET
-- KEYS[5] dead      ZSET
-- KEYS[6] errors    HASH
-- KEYS[7] stats     HASH
-- KEYS[8] result    LIST  (the outcome a waiting caller reads; used when burying)
-- ARGV[1] id
-- ARGV[2] envelope with its attempt count raised
-- ARGV[3] error JSON
-- ARGV[4] "retry" or "dead"
-- ARGV[5] retry: due time (ms); dead: time of death (ms)
-- ARGV[6] day (YYYY-MM-DD)
-- ARGV[7] dead: oldest time of death to keep (ms)
-- ARGV[8] dead: most dead jobs to keep in this queue
-- ARGV[9] dead: outcome JSON for a waiting caller, or "" when the job keeps no result
-- ARGV[10] dead: result ttl seconds
local id = ARGV[1]
redis.call('LREM', KEYS[1], 1, id)
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('HSET', KEYS[6], id, ARGV[3])
redis.call('HINCRBY', KEYS[7], 'failed', 1)
redis.call('HINCRBY', KEYS[7], 'failed:' .. ARGV[6], 1)
if ARGV[4] == 'retry' then
  redis.call('ZADD', KEYS[4], ARGV[5], id)
  redis.call('HSET', KEYS[3], id, 'retrying')
  return 1
end
redis.call('ZADD', KEYS[5], ARGV[5], id)
redis.call('HSET', KEYS[3], id, 'dead')
if ARGV[9] ~= '' then
  redis.call('DEL', KEYS[8])
  redis.call('RPUSH', KEYS[8], ARGV[9])
  redis.call('EXPIRE', KEYS[8], ARGV[10])
end
-- keep the dead set bounded in age and size
local function bury(victims)
  for i = 1, #victims, 500 do
    local chunk = {unpack(victims, i, math.min(i + 499, #victims))}
    redis.call('ZREM', KEYS[5], unpack(chunk))
    redis.call('HDEL', KEYS[2], unpack(chunk))
    redis.call('HDEL', KEYS[3], unpack(chunk))
    redis.call('HDEL', KEYS[6], unpack(chunk))
  end
end
bury(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[7], 'LIMIT', 0, 1000))
local excess = redis.call('ZCARD', KEYS[5]) - tonumber(ARGV[8])
if excess > 0 then
  bury(redis.call('ZRANGE', KEYS[5], 0, excess - 1))
end
return 0
