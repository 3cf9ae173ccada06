-- edit: replace a waiting job's envelope (its arguments) and optionally its run
-- time, in one step, so a worker either claims the old job or the new one,
-- never a mix. Refused once a worker holds the job.
-- KEYS[1] jobs      HASH
-- KEYS[2] state     HASH
-- KEYS[3] queued    LIST
-- KEYS[4] scheduled ZSET
-- KEYS[5] prioritized ZSET (optional): queued jobs that have a priority wait there
-- ARGV[1] id
-- ARGV[2] the envelope it must still have (compare-and-set; "" skips the check)
-- ARGV[3] new envelope
-- ARGV[4] new run time in ms; "" keeps it, "0" queues it now
-- Returns "ok", or why not: "missing", "changed", "running", "dead", "claiming"
local id = ARGV[1]
local current = redis.call('HGET', KEYS[1], id)
if not current then return 'missing' end
if ARGV[2] ~= '' and current ~= ARGV[2] then return 'changed' end
local state = redis.call('HGET', KEYS[2], id)
if state and string.sub(state, 1, 7) == 'running' then return 'running' end
if state == 'dead' then return 'dead' end
local at = ARGV[4]
if at ~= '' then
  if state then
    -- scheduled or waiting to retry
    if at == '0' then
      redis.call('ZREM', KEYS[4], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('RPUSH', KEYS[3], id)
    else
      redis.call('ZADD', KEYS[4], at, id)
    end
  elseif at ~= '0' then
    -- queued: unless a worker's blocking fetch has just taken it (not yet marked running)
    if redis.call('LREM', KEYS[3], 1, id) == 0
      and not (KEYS[5] and redis.call('ZREM', KEYS[5], id) == 1) then
      return 'claiming'
    end
    redis.call('ZADD', KEYS[4], at, id)
    redis.call('HSET', KEYS[2], id, 'scheduled')
  end
end
redis.call('HSET', KEYS[1], id, ARGV[3])
return 'ok'
