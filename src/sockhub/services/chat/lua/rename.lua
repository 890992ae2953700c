-- ARGV: floor, member id, new nick, new key, new entry JSON, ts, deadline.
-- Returns {-3} when too late, {-2} when not a member, {-1} when the nick is held,
-- else {old nick}.
if too_late(ARGV[7]) then return {-3} end
local raw = redis.call('HGET', KEYS[4], ARGV[2])
if not raw then return {-2} end
local entry = cjson.decode(raw)
if entry.k ~= ARGV[4] then
  if redis.call('HSETNX', KEYS[5], ARGV[4], ARGV[2]) == 0 then return {-1} end
  redis.call('HDEL', KEYS[5], entry.k)
end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
if entry.n ~= ARGV[3] then
  announce('nick', ARGV[3], ARGV[6], ARGV[2], entry.n)
end
return {entry.n}
