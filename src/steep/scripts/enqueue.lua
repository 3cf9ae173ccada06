-- enqueue: add jobs to one queue, now or at a later time.
-- KEYS[1] queued    LIST  job ids waiting (LPUSH in, RPOP out)
-- KEYS[2] jobs      HASH  id -> envelope JSON
-- KEYS[3] state     HASH  id -> state word (absent = queued)
-- KEYS[4] scheduled ZSET  id -> due time (ms)
-- ARGV: triples (id, envelope, run_at_ms); run_at_ms = 0 queues the job now.
-- An id that already exists is left alone, so a call retried after a lost
-- reply never adds a job twice. Returns the number of jobs added.
local now_ids = {}
local added = 0
for i = 1, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HSETNX', KEYS[2], id, ARGV[i + 1]) == 1 then
    added = added + 1
    local at = tonumber(ARGV[i + 2])
    if at > 0 then
      redis.call('ZADD', KEYS[4], at, id)
      redis.call('HSET', KEYS[3], id, 'scheduled')
    else
      now_ids[#now_ids + 1] = id
      if #now_ids == 500 then
        redis.call('LPUSH', KEYS[1], unpack(now_ids))
        now_ids = {}
      end
    end
  end
end
if #now_ids > 0 then
  redis.call('LPUSH', KEYS[1], unpack(now_ids))
end
return added
