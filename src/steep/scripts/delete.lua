-- delete: remove jobs of one queue that no worker holds, from wherever they wait.
-- KEYS[1] jobs      HASH
-- KEYS[2] state     HASH
-- KEYS[3] queued    LIST
-- KEYS[4] scheduled ZSET
-- KEYS[5] dead      ZSET
-- KEYS[6] errors    HASH
-- KEYS[7] prioritized ZSET (optional): queued jobs that have a priority wait there
-- ARGV[1] only jobs in this state: "queued", "scheduled", "retrying", "dead", or "" for any
-- ARGV[2..] ids
-- A running job is never deleted (cancel it instead). Returns the number deleted.
local only = ARGV[1]
local deleted = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    local state = redis.call('HGET', KEYS[2], id)
    local word = state or 'queued'
    -- 'failed' is the word earlier releases wrote for 'retrying' (read for one release)
    if word == 'failed' then word = 'retrying' end
    local running = string.sub(word, 1, 7) == 'running'
    local gone = false
    if not running and (only == '' or only == word) then
      if word == 'queued' then
        -- 0 removed: a blocking fetch took it a moment ago; leave it to the worker
        gone = redis.call('LREM', KEYS[3], 1, id) > 0
        if not gone and KEYS[7] then gone = redis.call('ZREM', KEYS[7], id) > 0 end
      elseif word == 'dead' then
        gone = redis.call('ZREM', KEYS[5], id) > 0
      else
        gone = redis.call('ZREM', KEYS[4], id) > 0
      end
    end
    if gone then
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[6], id)
      deleted = deleted + 1
    end
  end
end
return deleted
