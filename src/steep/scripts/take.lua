-- take: remove one waiting job from its queue and return its envelope, the
-- second half of a move to another queue (the copy there is made first, so a
-- crash in between leaves the job in both queues, never in neither).
-- KEYS[1] jobs      HASH
-- KEYS[2] state     HASH
-- KEYS[3] queued    LIST
-- KEYS[4] scheduled ZSET
-- KEYS[5] errors    HASH
-- KEYS[6] prioritized ZSET (optional): queued jobs that have a priority wait there
-- ARGV[1] id
-- ARGV[2] the envelope it must still have
-- Returns "ok", or why not: "missing", "changed", "running", "dead", "claiming"
local id = ARGV[1]
local current = redis.call('HGET', KEYS[1], id)
if not current then return 'missing' end
if current ~= ARGV[2] then return 'changed' end
local state = redis.call('HGET', KEYS[2], id)
if state and string.sub(state, 1, 7) == 'running' then return 'running' end
if state == 'dead' then return 'dead' end
if state then
  redis.call('ZREM', KEYS[4], id)
elseif redis.call('LREM', KEYS[3], 1, id) == 0
  and not (KEYS[6] and redis.call('ZREM', KEYS[6], id) == 1) then
  return 'claiming'
end
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[5], id)
return 'ok'
