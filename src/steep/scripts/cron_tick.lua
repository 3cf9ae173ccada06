-- cron_tick: enqueue the due ticks of one cron entry, each exactly once.
-- KEYS[1] cron   HASH  the entry's state: last (ms of the newest tick handled), paused,
--                      last_id and last_at (its newest job and when it was enqueued)
-- KEYS[2] queued LIST  job ids waiting (LPUSH in)
-- KEYS[3] jobs   HASH  id -> envelope JSON
-- ARGV[1] now (ms)
-- ARGV[2] skip_to (ms): the newest tick that was missed and is not run (0 = none)
-- ARGV[3..] triples (tick ms, job id, envelope), ticks ascending
-- A tick is enqueued only if it is newer than `last`, and `last` moves to it in the same
-- call: however many workers call this for the same tick, one enqueues it. A new entry
-- (no `last` yet) enqueues only its newest tick. While paused, ticks move `last` and
-- enqueue nothing, so a resume does not run them. Returns the ids enqueued.
local raw = redis.call('HGET', KEYS[1], 'last')
local skip_to = tonumber(ARGV[2])
local newest = skip_to
if #ARGV >= 5 then
  newest = math.max(newest, tonumber(ARGV[#ARGV - 2]))
end
local last
if raw then
  last = tonumber(raw)
elseif #ARGV >= 5 then
  last = tonumber(ARGV[#ARGV - 2]) - 1
else
  last = skip_to
end
local added = {}
if redis.call('HEXISTS', KEYS[1], 'paused') == 1 then
  last = math.max(last, newest)
else
  for i = 3, #ARGV, 3 do
    local tick = tonumber(ARGV[i])
    if tick > last then
      last = tick
      local id = ARGV[i + 1]
      if redis.call('HSETNX', KEYS[3], id, ARGV[i + 2]) == 1 then
        redis.call('LPUSH', KEYS[2], id)
        added[#added + 1] = id
      end
    end
  end
  last = math.max(last, skip_to)
  if #added > 0 then
    redis.call('HSET', KEYS[1], 'last_id', added[#added], 'last_at', ARGV[1])
  end
end
redis.call('HSET', KEYS[1], 'last', string.format('%d', last))
return added
