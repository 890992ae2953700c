-- ARGV: floor, keep, ts, deadline (ms on Redis's clock), idle ms, the nick key an
-- unannounced sender must find free in the room ('' for a member's messages), msgpack
-- array header, then one msgpack [sender, text] per message. Returns the first seq;
-- -1 when too late, -2 when a member holds the nick. Every check comes before the
-- first write, so a failing call changes nothing.
if too_late(ARGV[4]) then return -1 end
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[5], ARGV[6]) == 1 then return -2 end
local first = position() + 1
local n = #ARGV - 7
for i = 1, n do
  redis.call('XADD', KEYS[2], string.format('%d-0', first + i - 1), 't', ARGV[3], 'd', ARGV[7 + i])
end
redis.call('HSET', KEYS[1], 's', string.format('%d', first + n - 1), 'k', '0')
-- '~' trims whole stream nodes only (cheap); reads cut the rest to ARGV[2]
redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[2])
-- spoken to from outside with nobody in: forgotten idle ms after this message
if tonumber(ARGV[5]) > 0 and redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('__PUBLISH__', KEYS[3],
  string.format('M%d %s ', first, ARGV[3]) .. table.concat(ARGV, '', 7))
return first
