-- claim: move up to N waiting jobs of one queue into a worker's in-flight list
-- and mark them running, atomically (reliable fetch: a job is always either
-- queued, in exactly one in-flight list, scheduled, or settled).
-- KEYS[1] queued   LIST
-- KEYS[2] inflight LIST  this worker process's jobs of this queue
-- KEYS[3] jobs     HASH
-- KEYS[4] state    HASH
-- KEYS[5] paused   STRING (exists while the queue is paused)
-- KEYS[6] prioritized ZSET  id -> -priority of jobs enqueued with a priority (optional):
--         priority > 0 are taken before `queued`, priority < 0 after it; within a
--         priority, in id order (steep's ids sort by creation time)
-- ARGV[1] max jobs to take
-- ARGV[2] running marker stored as the state: "running <worker id> <ms>"
-- Returns a flat array: id1, envelope1, id2, envelope2, ... (an empty envelope: the id
-- had none, and was dropped)
local out = {}
if redis.call('EXISTS', KEYS[5]) == 1 then
  return out
end
local ids = {}
local want = tonumber(ARGV[1])
local prioritized = KEYS[6] and redis.call('EXISTS', KEYS[6]) == 1
local function take_prioritized(low, high)
  local top = redis.call('ZRANGEBYSCORE', KEYS[6], low, high, 'LIMIT', 0, want)
  if #top > 0 then
    redis.call('ZREM', KEYS[6], unpack(top))
    redis.call('LPUSH', KEYS[2], unpack(top))
    for _, id in ipairs(top) do ids[#ids + 1] = id end
    want = want - #top
  end
end
if want > 0 and prioritized then take_prioritized('-inf', '(0') end
if want > 0 then
  local popped = redis.call('RPOP', KEYS[1], want)
  if popped then
    redis.call('LPUSH', KEYS[2], unpack(popped))
    for _, id in ipairs(popped) do ids[#ids + 1] = id end
    want = want - #popped
  end
end
if want > 0 and prioritized then take_prioritized('(0', '+inf') end
if #ids == 0 then return out end
local envelopes = redis.call('HMGET', KEYS[3], unpack(ids))
local marker = ARGV[2]
local state_args = {}
for i, id in ipairs(ids) do
  local envelope = envelopes[i]
  if envelope then
    out[#out + 1] = id
    out[#out + 1] = envelope
    state_args[#state_args + 1] = id
    state_args[#state_args + 1] = marker
  else
    -- an id without an envelope was settled or deleted meanwhile: drop it, and hand it
    -- over with an empty envelope so the worker says so (a wake-up token, which has a
    -- space and is never a job id, is dropped quietly)
    redis.call('LREM', KEYS[2], 1, id)
    if not string.find(id, ' ', 1, true) then
      out[#out + 1] = id
      out[#out + 1] = ''
    end
  end
end
if #state_args > 0 then
  redis.call('HSET', KEYS[4], unpack(state_args))
end
return out
