-- Give a run its verdict, once: a run that has one already keeps it (a cancel racing a
-- last step, a deadline racing a verdict).
--
-- KEYS[1] run hash            <ns>:{pipeline}:run:<id>
-- KEYS[2] lane's active runs  <ns>:{pipeline}:project:<p>:active:<lane> (set)
-- ARGV[1] run id   ARGV[2] state (passed|failed|cancelled|error)   ARGV[3] reason
-- ARGV[4] finished (seconds, as text)
--
-- Returns 1 if this call gave the verdict, 0 if the run had one.
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return 0
end
if state == "passed" or state == "failed" or state == "cancelled" or state == "error" then
  return 0
end
redis.call("HSET", KEYS[1], "state", ARGV[2], "finished", ARGV[4])
if ARGV[3] ~= "" then
  redis.call("HSET", KEYS[1], "reason", ARGV[3])
end
redis.call("SREM", KEYS[2], ARGV[1])
return 1
