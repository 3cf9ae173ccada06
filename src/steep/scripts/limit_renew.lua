-- limit_renew: extend the leases of jobs that are still running.
-- A lease already removed (it expired and another holder took the slot) is not
-- brought back: that would put the limiter over its limit.
-- KEYS[1] leases ZSET lease id -> expiry (ms)
-- ARGV[1] lease length (ms)
-- ARGV[2...] lease ids
-- Returns the number of leases that were no longer held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local lost = 0
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i]) == 0
     and not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    lost = lost + 1
  end
end
if lost < #ARGV - 1 then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return lost
