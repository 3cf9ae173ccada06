-- A merge made is recorded once: the run's gate_state goes from waiting (or absent) to
-- testing, with the merge's fields, unless another delivery of prepare_merge did it first.
--
-- KEYS[1] run   <ns>:{pipeline}:run:<id>   (hash)
-- ARGV    field, value, ... (sha, base_sha, gate_head, gate_ref)
--
-- Returns 1 when this call recorded it, 0 when it was recorded already.
local state = redis.call("HGET", KEYS[1], "gate_state")
if state and state ~= "waiting" then
  return 0
end
redis.call("HSET", KEYS[1], "gate_state", "testing", unpack(ARGV))
return 1
