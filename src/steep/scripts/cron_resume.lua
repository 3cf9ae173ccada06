-- cron_resume: let a paused cron entry tick again, from now on.
-- KEYS[1] cron HASH the entry's state (see cron_tick.lua)
-- ARGV[1] now (ms)
-- `last` moves to now first, so the ticks that fell while the entry was paused are
-- never enqueued (a late worker would otherwise take them for missed ticks).
-- Returns 1 if the entry was paused.
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if tonumber(ARGV[1]) > last then
  redis.call('HSET', KEYS[1], 'last', ARGV[1])
end
return redis.call('HDEL', KEYS[1], 'paused')
