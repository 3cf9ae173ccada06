-- promote: queue the scheduled and retrying jobs of one queue that are due.
-- Atomic, so however many workers call it, each job is moved exactly once.
-- KEYS[1] scheduled ZSET
-- KEYS[2] queued    LIST
-- KEYS[3] state     HASH
-- ARGV[1] now (ms)
-- ARGV[2] most jobs to move in one call
-- Returns {moved, due time of the next scheduled job in ms or -1}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('LPUSH', KEYS[2], unpack(due))
  redis.call('HDEL', KEYS[3], unpack(due))
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, math.floor(tonumber(nxt[2]))}
