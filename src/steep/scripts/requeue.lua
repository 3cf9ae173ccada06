-- requeue: return a worker's in-flight jobs of one queue to the front of
-- that queue (shutdown with jobs unfinished, a worker process that died, or
-- ids the worker no longer knows about). Idempotent: running it twice, or
-- from two workers at once, moves each job once.
-- KEYS[1] inflight LIST
-- KEYS[2] queued   LIST
-- KEYS[3] state    HASH
-- KEYS[4] jobs     HASH
-- ARGV: the ids to return; none means all of them.
local moved = 0
local function back(id)
  if redis.call('HEXISTS', KEYS[4], id) == 1 then
    -- RPUSH: the consumer end, so returned jobs run before newer ones
    redis.call('RPUSH', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    moved = moved + 1
  end
end
if #ARGV == 0 then
  -- newest first from the left end: each RPUSH lands nearer the consumer
  -- end, so the oldest job ends up first in line, as it was
  local id = redis.call('LPOP', KEYS[1])
  while id do
    back(id)
    id = redis.call('LPOP', KEYS[1])
  end
else
  for _, id in ipairs(ARGV) do
    if redis.call('LREM', KEYS[1], 1, id) > 0 then back(id) end
  end
end
return moved
