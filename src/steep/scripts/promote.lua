-- promote: queue the scheduled and retrying jobs of one queue that are due.
-- Atomic, so however many workers call it, each job is moved exactly once.
-- KEYS[1] scheduled ZSET
-- KEYS[2] queued    LIST
-- KEYS[3] state     HASH
-- KEYS[4] prioritized ZSET (optional) where a job with a priority goes (claim.lua)
-- KEYS[5] jobs        HASH (with KEYS[4])
-- ARGV[1] now (ms)
-- ARGV[2] most jobs to move in one call
-- ARGV[3] the wake-up token (with KEYS[4]; see enqueue_prioritized.lua)
-- Returns {moved, due time of the next scheduled job in ms or -1}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('HDEL', KEYS[3], unpack(due))
  local plain = due
  if KEYS[4] then
    plain = {}
    local woken = false
    local envelopes = redis.call('HMGET', KEYS[5], unpack(due))
    for i, id in ipairs(due) do
      local envelope = envelopes[i]
      local priority = 0
      -- a plain find first: only an envelope that mentions a priority is decoded
      if envelope and string.find(envelope, '"priority":', 1, true) then
        local ok, job = pcall(cjson.decode, envelope)
        if ok and type(job.priority) == 'number' then priority = math.floor(job.priority) end
      end
      if priority ~= 0 then
        redis.call('ZADD', KEYS[4], -priority, id)
        woken = true
      else
        plain[#plain + 1] = id
      end
    end
    if woken and redis.call('LLEN', KEYS[2]) == 0 and #plain == 0 then
      redis.call('LPUSH', KEYS[2], ARGV[3])
    end
  end
  if #plain > 0 then redis.call('LPUSH', KEYS[2], unpack(plain)) end
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt == 0 then return {#due, -1} end
return {#due, math.floor(tonumber(nxt[2]))}
