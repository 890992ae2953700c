-- KEYS[1] the node leases (node id -> expiry, ms of Redis's clock). ARGV: node id,
-- lease ms, 1 to register. Returns 0 when the node is not (any more) registered and
-- ARGV[3] is 0: it was reaped or Redis forgot it, and must register anew.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '0' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
