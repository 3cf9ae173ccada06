-- enqueue_unique: add unique jobs to one queue, each only if no live job holds its lock
-- (the plain enqueue.lua stays as it is; only unique jobs come here).
-- KEYS[1] queued    LIST
-- KEYS[2] jobs      HASH
-- KEYS[3] state     HASH
-- KEYS[4] scheduled ZSET
-- KEYS[5] prioritized ZSET  where a job with a priority waits (enqueue_prioritized.lua)
-- KEYS[5 + i] lock  STRING of the i-th job: the id of the job holding it
-- ARGV[1] the wake-up token (enqueue_prioritized.lua)
-- ARGV[2..]: per job, (id, envelope, run_at_ms or 0, lock ttl ms, "finished" or "started",
--            priority)
-- A lock whose holder no longer waits or runs is free: its job was settled, deleted or
-- is dead, or (for "started") has already started, and a crash kept it from being
-- released. Returns, per job, the id holding its lock: its own id when it was added,
-- the existing job's id when it is a duplicate. An id already present is left alone,
-- so a call retried after a lost reply adds nothing twice.
local function live(holder, mode)
  if redis.call('HEXISTS', KEYS[2], holder) == 0 then return false end
  local state = redis.call('HGET', KEYS[3], holder)
  if not state then return true end -- queued
  if state == 'dead' then return false end
  if mode == 'started' then return state == 'scheduled' end
  return true -- scheduled, running, or waiting to retry
end

local out = {}
local now_ids = {}
local waiting = false
local n = 0
for i = 2, #ARGV, 6 do
  n = n + 1
  local lock = KEYS[5 + n]
  local id = ARGV[i]
  local holder = redis.call('GET', lock)
  if holder and holder ~= id and live(holder, ARGV[i + 4]) then
    out[n] = holder
  else
    redis.call('SET', lock, id, 'PX', ARGV[i + 3])
    if redis.call('HSETNX', KEYS[2], id, ARGV[i + 1]) == 1 then
      local at = tonumber(ARGV[i + 2])
      if at > 0 then
        redis.call('ZADD', KEYS[4], at, id)
        redis.call('HSET', KEYS[3], id, 'scheduled')
      elseif ARGV[i + 5] ~= '0' then
        redis.call('ZADD', KEYS[5], -tonumber(ARGV[i + 5]), id)
        waiting = true
      else
        now_ids[#now_ids + 1] = id
      end
    end
    out[n] = id
  end
end
if waiting and #now_ids == 0 and redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('LPUSH', KEYS[1], ARGV[1])
end
if #now_ids > 0 then
  redis.call('LPUSH', KEYS[1], unpack(now_ids))
end
return out
