-- clear: drop up to N waiting jobs of one queue (called until it returns 0, so
-- a huge queue never blocks the server for long).
-- KEYS[1] queued LIST
-- KEYS[2] jobs   HASH
-- KEYS[3] state  HASH
-- KEYS[4] prioritized ZSET (optional): queued jobs that have a priority wait there
-- ARGV[1] most jobs to drop in this call
-- Returns the number dropped.
local ids = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not ids and KEYS[4] then
  local popped = redis.call('ZPOPMIN', KEYS[4], tonumber(ARGV[1]))
  if #popped > 0 then
    ids = {}
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  end
end
if not ids then return 0 end
redis.call('HDEL', KEYS[2], unpack(ids))
redis.call('HDEL', KEYS[3], unpack(ids))
return #ids
