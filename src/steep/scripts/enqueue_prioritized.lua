-- enqueue_prioritized: add jobs that have a priority to one queue (jobs without one use
-- enqueue.lua, which stays as it is).
-- KEYS[1] queued      LIST
-- KEYS[2] jobs        HASH
-- KEYS[3] state       HASH
-- KEYS[4] scheduled   ZSET
-- KEYS[5] prioritized ZSET  id -> -priority; claim.lua takes priority > 0 before
--                           `queued` and priority < 0 after it, ties in id order
-- ARGV[1] the wake-up token
-- ARGV[2..]: quadruples (id, envelope, run_at_ms or 0, priority)
-- An idle worker blocks on `queued` alone (BLMOVE), so a job added to `prioritized`
-- while `queued` is empty also pushes the token there: the blocked worker takes it,
-- its claim drops it (no envelope) and takes the job. At most one token waits, since
-- it is only pushed onto an empty list. An id that already exists is left alone.
-- Returns the number of jobs added.
local added = 0
local waiting = false
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  if redis.call('HSETNX', KEYS[2], id, ARGV[i + 1]) == 1 then
    added = added + 1
    local at = tonumber(ARGV[i + 2])
    if at > 0 then
      redis.call('ZADD', KEYS[4], at, id)
      redis.call('HSET', KEYS[3], id, 'scheduled')
    else
      redis.call('ZADD', KEYS[5], -tonumber(ARGV[i + 3]), id)
      waiting = true
    end
  end
end
if waiting and redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
return added
