-- limit_concurrency: take a slot of a concurrency limiter for one lease, or refuse.
-- Times are the server's (TIME), so every machine's workers share one clock.
-- KEYS[1] leases ZSET lease id -> expiry (ms)
-- KEYS[2] stats  HASH admitted, refused
-- ARGV[1] lease id (a job's id: a job run again after its worker died takes over
--         its own lease instead of waiting for it to expire)
-- ARGV[2] limit
-- ARGV[3] lease length (ms)
-- Returns {1, slots in use} when admitted, {0, slots in use} when refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
-- leases of holders that died (or stopped renewing) free their slots here
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local used = redis.call('ZCARD', KEYS[1])
local own = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not own and used >= tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[2], 'refused', 1)
  return {0, used}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
-- the key outlives its longest lease by nothing: an idle limiter leaves no key
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('HINCRBY', KEYS[2], 'admitted', 1)
if own then return {1, used} end
return {1, used + 1}
