-- requeue: return a worker's in-flight jobs of one queue to the front of
-- that queue (shutdown with jobs unfinished, a worker process that died, or
-- ids the worker no longer knows about). Idempotent: running it twice, or
-- from two workers at once, moves each job once.
-- KEYS[1] inflight LIST
-- KEYS[2] queued   LIST
-- KEYS[3] state    HASH
-- KEYS[4] jobs     HASH
-- KEYS[5] prioritized ZSET (optional): a job with a priority goes back there (claim.lua)
-- ARGV: the ids to return; none means all of them.
local moved = 0
local function priority_of(envelope)
  if not (KEYS[5] and string.find(envelope, '"priority":', 1, true)) then return 0 end
  local ok, job = pcall(cjson.decode, envelope)
  if ok and type(job.priority) == 'number' then return math.floor(job.priority) end
  return 0
end
local function back(id)
  local envelope = redis.call('HGET', KEYS[4], id)
  if envelope then
    local priority = priority_of(envelope)
    if priority ~= 0 then
      -- its id is older than newer jobs of its priority, so it runs before them
      redis.call('ZADD', KEYS[5], -priority, id)
    else
      -- RPUSH: the consumer end, so returned jobs run before newer ones
      redis.call('RPUSH', KEYS[2], id)
    end
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
