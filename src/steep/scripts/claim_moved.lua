-- claim_moved: claim the job a blocking BLMOVE just moved into a worker's in-flight
-- list. Sent in the same pipeline as the BLMOVE, so the server runs it the moment the
-- BLMOVE returns: an idle worker gets the envelope with no second round trip.
-- KEYS[1] queued   LIST
-- KEYS[2] inflight LIST  this worker process's jobs of this queue
-- KEYS[3] jobs     HASH
-- KEYS[4] state    HASH
-- KEYS[5] paused   STRING
-- ARGV[1] running marker prefix "running <worker id>" (the script adds the time)
-- Every job this worker runs is marked running, so an unmarked id near the head of
-- its in-flight list is one a BLMOVE moved (usually the head itself; when the BLMOVE
-- timed out there is none). Returns a flat array: id1, envelope1, ...
local out = {}
local moved = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, 15)) do
  if not redis.call('HGET', KEYS[4], id) then moved[#moved + 1] = id end
end
if #moved == 0 then return out end
if redis.call('EXISTS', KEYS[5]) == 1 then
  -- the queue was paused while this worker was blocked on it: give them back
  for _, id in ipairs(moved) do
    redis.call('LREM', KEYS[2], 1, id)
    redis.call('RPUSH', KEYS[1], id)
  end
  return out
end
local t = redis.call('TIME')
local marker = ARGV[1] .. ' ' .. (t[1] * 1000 + math.floor(t[2] / 1000))
for _, id in ipairs(moved) do
  local envelope = redis.call('HGET', KEYS[3], id)
  if envelope then
    out[#out + 1] = id
    out[#out + 1] = envelope
    redis.call('HSET', KEYS[4], id, marker)
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
return out
