-- batch_sent: clear what the caller of batch_record has done from the batch's outbox.
-- KEYS[1] info HASH
-- ARGV[1] the outbox JSON array as returned by batch_record and now done
-- Entries appended meanwhile (by another completion) stay for their own caller.
-- Returns the number of entries left.
local stored = redis.call('HGET', KEYS[1], 'outbox')
if not stored then
  return 0
end
if stored == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'outbox')
  return 0
end
local box, done = cjson.decode(stored), cjson.decode(ARGV[1])
local left = {}
for i = #done + 1, #box do
  left[#left + 1] = box[i]
end
if #left == 0 then
  redis.call('HDEL', KEYS[1], 'outbox')
else
  redis.call('HSET', KEYS[1], 'outbox', cjson.encode(left))
end
return #left
