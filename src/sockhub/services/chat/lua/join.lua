-- ARGV: floor, member id, nick, nick key, entry JSON, ts, since (-1: none), count,
-- deadline. Returns {-3} when too late, {-1} when the nick is held, else
-- {seq, k, entries, history} (the join event's position).
if too_late(ARGV[9]) then return {-3} end
if redis.call('HSETNX', KEYS[5], ARGV[4], ARGV[2]) == 0 then return {-1} end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
local seq, k = announce('join', ARGV[3], ARGV[6], ARGV[2], '')
expire_if_empty(0)
local since, count = tonumber(ARGV[7]), tonumber(ARGV[8])
local history = {}
if since >= 0 then
  history = redis.call('XRANGE', KEYS[2], string.format('(%d-0', since), string.format('%d', seq))
elseif count > 0 then
  history = redis.call('XREVRANGE', KEYS[2], string.format('%d', seq), '-', 'COUNT', count)
end
return {seq, k, redis.call('HVALS', KEYS[4]), history}
