-- run_now: queue scheduled or retrying jobs of one queue at once, ahead of the line.
-- KEYS[1] scheduled ZSET
-- KEYS[2] queued    LIST
-- KEYS[3] state     HASH
-- ARGV ids. Returns the number moved.
local moved = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    -- RPUSH: the consumer end, so it is the next job taken
    redis.call('RPUSH', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    moved = moved + 1
  end
end
return moved
