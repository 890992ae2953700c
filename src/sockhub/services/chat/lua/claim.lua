-- KEYS[1] the node leases, KEYS[2] nodes being reaped (node id -> until when the claim
-- holds). ARGV: how long a claim holds, ms. Moves expired leases to KEYS[2] and returns
-- every node whose claim is free: a reaper that dies mid-way leaves it to the next one.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hold = now + tonumber(ARGV[1])
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('ZADD', KEYS[2], 0, node)
end
local free = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, node in ipairs(free) do redis.call('ZADD', KEYS[2], hold, node) end
return free
