-- batch_create: make a batch's record once (a job that creates a batch and runs again
-- after a crash gets the same batch back, its counters untouched).
-- KEYS[1] info HASH  the batch (fields: docs/batches.md)
-- ARGV: field, value pairs
-- Returns 1 if made, 0 if it already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
