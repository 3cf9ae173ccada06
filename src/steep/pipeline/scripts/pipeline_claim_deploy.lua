-- One deploy of an environment at a time, and at most one waiting behind it: the newest.
-- A deploy asks for the claim when it starts and again while it waits (every second);
-- of two deploys waiting, the older (lower number) is superseded, marked so it learns it
-- on its next call, and ends without touching anything.
--
-- KEYS[1] holder       <ns>:{pipeline}:project:<p>:env:<e>:deploying   (string, TTL)
-- KEYS[2] waiter       <ns>:{pipeline}:project:<p>:env:<e>:next        (string, TTL)
-- KEYS[3] superseded   <ns>:{pipeline}:project:<p>:env:<e>:superseded  (hash id -> by)
-- ARGV[1] deploy id (`<project>-<env>-<number>`)   ARGV[2] hold TTL (s)
-- ARGV[3] wait TTL (s): a waiter that stops asking loses its place
-- ARGV[4] superseded marks TTL (s)
-- ARGV[5] "leave": the deploy ends without deploying; it lets go of the claim or its place
--
-- Returns {"claimed", replaced waiter or ""}, {"waiting", holder, replaced waiter or ""},
-- {"superseded", the newer deploy}, or {"left"}.
local me = ARGV[1]
if ARGV[5] == "leave" then
  if redis.call("GET", KEYS[1]) == me then
    redis.call("DEL", KEYS[1])
  end
  if redis.call("GET", KEYS[2]) == me then
    redis.call("DEL", KEYS[2])
  end
  return {"left"}
end
local by = redis.call("HGET", KEYS[3], me)
if by then
  return {"superseded", by}
end
local function number(id)
  return tonumber(string.match(id, "(%d+)$")) or 0
end
local holder = redis.call("GET", KEYS[1])
if holder == me then
  redis.call("SET", KEYS[1], me, "EX", tonumber(ARGV[2]))
  return {"claimed", ""}
end
local waiter = redis.call("GET", KEYS[2])
local replaced = ""
if waiter and waiter ~= me then
  if number(waiter) > number(me) then
    redis.call("HSET", KEYS[3], me, waiter)
    redis.call("EXPIRE", KEYS[3], tonumber(ARGV[4]))
    return {"superseded", waiter}
  end
  redis.call("HSET", KEYS[3], waiter, me)
  redis.call("EXPIRE", KEYS[3], tonumber(ARGV[4]))
  replaced = waiter
end
if not holder then
  redis.call("SET", KEYS[1], me, "EX", tonumber(ARGV[2]))
  redis.call("DEL", KEYS[2])
  return {"claimed", replaced}
end
redis.call("SET", KEYS[2], me, "EX", tonumber(ARGV[3]))
return {"waiting", holder, replaced}
