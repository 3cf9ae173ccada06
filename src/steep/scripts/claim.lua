-- claim: move up to N waiting jobs of one queue into a worker's in-flight list
-- and mark them running, atomically (reliable fetch: a job is always either
-- queued, in exactly one in-flight list, scheduled, or settled).
-- KEYS[1] queued   LIST
-- KEYS[2] inflight LIST  this worker process's jobs of this queue
-- KEYS[3] jobs     HASH
-- KEYS[4] state    HASH
-- KEYS[5] paused   STRING (exists while the queue is paused)
-- ARGV[1] max jobs to take
-- ARGV[2] running marker stored as the state: "running <worker id> <ms>"
-- Returns a flat array: id1, envelope1, id2, envelope2, ...
local out = {}
if redis.call('EXISTS', KEYS[5]) == 1 then
  return out
end
local ids = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not ids then return out end
redis.call('LPUSH', KEYS[2], unpack(ids))
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
    -- an id without an envelope was settled or deleted meanwhile: drop it
    redis.call('LREM', KEYS[2], 1, id)
  end
end
if #state_args > 0 then
  redis.call('HSET', KEYS[4], unpack(state_args))
end
return out
