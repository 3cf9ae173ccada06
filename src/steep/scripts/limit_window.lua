-- limit_window: admit one more call in a sliding window, or say when a slot frees.
-- The log holds one entry per admission of the last period (sliding log): exact,
-- and an admission can be given back (ZREM) when the job does not run after all.
-- Times are the server's (TIME), so every machine's workers share one clock.
-- KEYS[1] log   ZSET admission id -> admission time (ms)
-- KEYS[2] stats HASH admitted, refused
-- ARGV[1] admission id (unique)
-- ARGV[2] limit
-- ARGV[3] period (ms)
-- Returns {1, admissions in the window} when admitted,
--         {0, ms until the oldest admission leaves the window} when refused.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[3])
-- the window is (now - period, now]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local used = redis.call('ZCARD', KEYS[1])
if used < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], period)
  redis.call('HINCRBY', KEYS[2], 'admitted', 1)
  return {1, used + 1}
end
redis.call('HINCRBY', KEYS[2], 'refused', 1)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + period - now)}
