-- park: set aside a claimed iterable job that an operator interrupted: it waits in
-- the scheduled set (due far in the future, never promoted) in state `interrupted`
-- until resumed. No attempt is spent; its envelope and saved cursor stay.
-- KEYS[1] inflight  LIST
-- KEYS[2] state     HASH
-- KEYS[3] scheduled ZSET
-- ARGV[1] id
-- ARGV[2] due time (ms)
local id = ARGV[1]
if redis.call('LREM', KEYS[1], 1, id) == 0 then
  return 0 -- no longer ours (returned or settled by someone else)
end
redis.call('ZADD', KEYS[3], ARGV[2], id)
redis.call('HSET', KEYS[2], id, 'interrupted')
return 1
