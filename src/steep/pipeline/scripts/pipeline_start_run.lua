-- Mark a queued run running with its plan and its steps, unless it has a verdict already
-- (cancelled while it waited).
--
-- KEYS[1] run hash   <ns>:{pipeline}:run:<id>
-- ARGV[1] started (seconds, as text)   ARGV[2] plan JSON   ARGV[3..] step field, step JSON...
--
-- Returns 1 if the run is running now, 0 if it has a verdict.
local state = redis.call("HGET", KEYS[1], "state")
if state ~= "queued" and state ~= "running" then
  return 0
end
if state == "queued" then
  redis.call("HSET", KEYS[1], "state", "running", "started", ARGV[1], "plan", ARGV[2])
  for i = 3, #ARGV, 2 do
    redis.call("HSET", KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
