-- batch_record: record members' final outcomes and, when the batch is closed and no
-- member is pending, decide (once) which callbacks fire.
-- KEYS[1] info    HASH  counters, times, callbacks, parent, ttl, outbox
-- KEYS[2] members HASH  member id -> p / s / f
-- KEYS[3] failed  SET   dead member ids
-- KEYS[4] results HASH  position -> JSON value
-- ARGV[1] now (ms)
-- ARGV[2] '1' closes the batch (its total is final), '0' does not
-- ARGV[3..] quadruples: member id, outcome ('s' succeeded, 'f' dead), position or '',
--           value JSON or ''
-- Idempotent: a member is counted once (s is final; f can only become s, when an
-- operator retries a dead member and it succeeds). What must happen after a
-- completion (enqueue a callback, tell the parent batch) is appended to the `outbox`
-- field in the same call; the caller does it and clears it (batch_sent). A caller
-- that dies first leaves the outbox behind; the member then runs again and its
-- record call returns the outbox again.
-- Returns the outbox JSON array, or '' when nothing is left to do.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return ''
end
local now = ARGV[1]
for i = 3, #ARGV, 4 do
  local id, outcome, pos, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local cur = redis.call('HGET', KEYS[2], id)
  if cur then
    if outcome == 's' and cur ~= 's' then
      redis.call('HSET', KEYS[2], id, 's')
      redis.call('HINCRBY', KEYS[1], 'succeeded', 1)
      if cur == 'p' then
        redis.call('HINCRBY', KEYS[1], 'pending', -1)
      else
        redis.call('HINCRBY', KEYS[1], 'failed', -1)
        redis.call('SREM', KEYS[3], id)
      end
      if pos ~= '' then
        redis.call('HSET', KEYS[4], pos, value)
      end
    elseif outcome == 'f' and cur == 'p' then
      redis.call('HSET', KEYS[2], id, 'f')
      redis.call('HINCRBY', KEYS[1], 'failed', 1)
      redis.call('HINCRBY', KEYS[1], 'pending', -1)
      redis.call('SADD', KEYS[3], id)
    end
  end
end
if ARGV[2] == '1' then
  redis.call('HSETNX', KEYS[1], 'closed_at', now)
end
local f = redis.call('HMGET', KEYS[1], 'closed_at', 'pending', 'failed', 'complete_at',
  'success_at', 'parent', 'ttl', 'outbox', 'on_complete', 'on_success')
local closed, pending, failed, complete_at, success_at = f[1], f[2], f[3], f[4], f[5]
local parent, ttl, outbox, on_complete, on_success = f[6], f[7], f[8], f[9], f[10]
if closed and tonumber(pending or '0') == 0 then
  local ok = tonumber(failed or '0') == 0
  local fresh = {}
  local tell_parent = nil
  if not complete_at then
    redis.call('HSET', KEYS[1], 'complete_at', now)
    if on_complete then
      fresh[#fresh + 1] = {cb = 'complete'}
    end
    tell_parent = ok and 's' or 'f'
  end
  if ok and not success_at then
    redis.call('HSET', KEYS[1], 'success_at', now)
    if on_success then
      fresh[#fresh + 1] = {cb = 'success'}
    end
    -- also when it completed with dead members before and now they all succeeded
    tell_parent = 's'
  end
  -- the parent hears last, once this batch's callbacks are enqueued
  if parent and tell_parent then
    fresh[#fresh + 1] = {parent = parent, outcome = tell_parent}
  end
  if #fresh > 0 then
    local box = {}
    if outbox then
      box = cjson.decode(outbox)
    end
    for _, entry in ipairs(fresh) do
      box[#box + 1] = entry
    end
    outbox = cjson.encode(box)
    redis.call('HSET', KEYS[1], 'outbox', outbox)
  end
  if ttl then
    for k = 1, 4 do
      redis.call('EXPIRE', KEYS[k], ttl)
    end
  end
end
return outbox or ''
