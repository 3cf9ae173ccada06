-- Create a run, unless this commit of this lane was built already; supersede the
-- lane's older unfinished runs.
--
-- KEYS[1] run hash            <ns>:{pipeline}:run:<id>
-- KEYS[2] all runs            <ns>:{pipeline}:runs                      (zset)
-- KEYS[3] project runs        <ns>:{pipeline}:project:<p>:runs          (zset)
-- KEYS[4] lane's active runs  <ns>:{pipeline}:project:<p>:active:<lane> (set)
-- KEYS[5] lane's latest       <ns>:{pipeline}:project:<p>:latest        (hash)
-- KEYS[6] built marker        <ns>:{pipeline}:project:<p>:built:<lane>:<sha>, or the run
--                             hash again when the run is not de-duplicated (by hand)
-- ARGV[1] run id   ARGV[2] meta JSON   ARGV[3] created (ms)   ARGV[4] lane
-- ARGV[5] "1": de-duplicate by KEYS[6]   ARGV[6] built marker TTL (s)
-- ARGV[7] "1": return the lane's older active runs (the caller cancels those of another
--         commit; each leaves the set with its verdict, pipeline_finish_run.lua)
--
-- Returns {0, existing run id} when de-duplicated, else {1, older active ids...}.
if ARGV[5] == "1" then
  local existing = redis.call("GET", KEYS[6])
  if existing then
    return {0, existing}
  end
  redis.call("SET", KEYS[6], ARGV[1], "EX", tonumber(ARGV[6]))
end
redis.call("HSET", KEYS[1], "meta", ARGV[2], "state", "queued")
redis.call("ZADD", KEYS[2], tonumber(ARGV[3]), ARGV[1])
redis.call("ZADD", KEYS[3], tonumber(ARGV[3]), ARGV[1])
redis.call("HSET", KEYS[5], ARGV[4], ARGV[1])
local result = {1}
if ARGV[7] == "1" then
  for _, older in ipairs(redis.call("SMEMBERS", KEYS[4])) do
    table.insert(result, older)
  end
end
redis.call("SADD", KEYS[4], ARGV[1])
return result
