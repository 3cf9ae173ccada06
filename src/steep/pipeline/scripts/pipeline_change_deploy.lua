-- Change a deploy's record only if it is still exactly as it was read: the approval, a
-- rejection, an expiry, a newer deploy superseding it, its step taking it over, each wins
-- once, and the others read it again and see what happened (an approve delivered twice
-- deploys once). With a step to wake, its wake count is raised in the same call, so one
-- change wakes the step once.
--
-- KEYS[1] deploy record   <ns>:{pipeline}:deploy:<id>     (JSON)
-- KEYS[2] run hash        <ns>:{pipeline}:run:<run id>, or the deploy record again
-- ARGV[1] the record as it was read   ARGV[2] the new record
-- ARGV[3] the run hash field counting the step's wakes (`woken:<step>`), or ""
--
-- Returns {1, wake count (0 without a step)} if changed, {0, 0} if the record had changed.
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
  return {0, 0}
end
redis.call("SET", KEYS[1], ARGV[2])
local woken = 0
if ARGV[3] ~= "" then
  woken = redis.call("HINCRBY", KEYS[2], ARGV[3], 1)
end
return {1, woken}
