-- batch_add: register members of a batch (before they are enqueued).
-- KEYS[1] info    HASH  counters
-- KEYS[2] members HASH  member id -> p (pending), s (succeeded), f (dead)
-- KEYS[3] failed  SET
-- KEYS[4] results HASH
-- ARGV member ids (job ids or child batch ids).
-- A member already known is left alone, so adding again after a crash counts nothing
-- twice. A batch that completed and gets new members (a dead chain step retried by
-- an operator goes on with the chain) stops expiring until it completes again.
-- Returns the number of new members, or -1 when the batch does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local added = 0
for _, id in ipairs(ARGV) do
  if redis.call('HSETNX', KEYS[2], id, 'p') == 1 then
    added = added + 1
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', added)
  redis.call('HINCRBY', KEYS[1], 'pending', added)
  for i = 1, 4 do
    redis.call('PERSIST', KEYS[i])
  end
end
return added
