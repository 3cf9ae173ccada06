-- retry_dead: give dead jobs of one queue another run: back onto the queue.
-- KEYS[1] dead   ZSET
-- KEYS[2] queued LIST
-- KEYS[3] state  HASH
-- KEYS[4] errors HASH
-- ARGV ids. The last error is forgotten (a success would leave it behind forever).
-- Returns the number moved.
local moved = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('RPUSH', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    moved = moved + 1
  end
end
return moved
