-- ack: settle jobs of one queue that succeeded.
-- KEYS[1] inflight LIST  the worker's in-flight list
-- KEYS[2] jobs     HASH
-- KEYS[3] state    HASH
-- KEYS[4] stats    HASH  counters
-- KEYS[5] errors   HASH  the last error of a job that succeeded on a retry goes
-- KEYS[6] done     ZSET  index of recent successes that keep a result
-- KEYS[7..] result LIST  one per job in ARGV that keeps its result
-- ARGV[1] day (YYYY-MM-DD) for the daily counter
-- ARGV[2] n, the number of ids; ARGV[3 .. 2+n] ids
-- ARGV[3+n] now (ms); ARGV[4+n] most entries to keep in `done`
-- then, for each result key KEYS[6+k]: ARGV triples (id, outcome JSON, ttl seconds)
local n = tonumber(ARGV[2])
local ids = {}
for i = 1, n do
  local id = ARGV[2 + i]
  ids[i] = id
  redis.call('LREM', KEYS[1], 1, id)
end
for i = 1, n, 500 do
  local chunk = {unpack(ids, i, math.min(i + 499, n))}
  redis.call('HDEL', KEYS[2], unpack(chunk))
  redis.call('HDEL', KEYS[3], unpack(chunk))
  redis.call('HDEL', KEYS[5], unpack(chunk))
end
redis.call('HINCRBY', KEYS[4], 'processed', n)
redis.call('HINCRBY', KEYS[4], 'processed:' .. ARGV[1], n)
if #KEYS > 6 then
  local now = ARGV[3 + n]
  local a = 5 + n
  for k = 7, #KEYS do
    redis.call('DEL', KEYS[k])
    redis.call('RPUSH', KEYS[k], ARGV[a + 1])
    redis.call('EXPIRE', KEYS[k], ARGV[a + 2])
    redis.call('ZADD', KEYS[6], now, ARGV[a])
    a = a + 3
  end
  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -1 - tonumber(ARGV[4 + n]))
end
return n
