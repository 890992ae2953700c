-- ARGV: floor, keep, ts, deadline (ms on Redis's clock), idle ms, the nick key an
-- unannounced sender must find free in the room ('' for a member's messages), each
-- message's cost (space-separated), msgpack array header, then one msgpack [sender,
-- text] per message. Returns {first seq, kept messages, kept bytes, oldest kept ts,
-- when the room was made};
-- {-1} when too late, {-2} when a member holds the nick. Every check comes before the
-- first write, so a failing call changes nothing.
if too_late(ARGV[4]) then return {-1} end
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[5], ARGV[6]) == 1 then return {-2} end
local first = position() + 1
local total = appended()
local made = born()
local n = 0
for cost in string.gmatch(ARGV[7], '%d+') do
  n = n + 1
  redis.call('XADD', KEYS[2], string.format('%d-0', first + n - 1), 't', ARGV[3],
    'd', ARGV[8 + n], 'a', string.format('%d', total))
  total = total + tonumber(cost)
end
redis.call('HSET', KEYS[1], 's', string.format('%d', first + n - 1), 'k', '0', 'g', '0',
  'B', string.format('%d', total), 'c', made)
-- exact: reads never see more than keep (a partly trimmed stream node only marks
-- its entries deleted, so this costs little more than '~')
redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[2])
-- spoken to from outside with nobody in: forgotten idle ms after this message
if tonumber(ARGV[5]) > 0 and redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('__PUBLISH__', KEYS[3],
  string.format('M%d %s ', first, ARGV[3]) .. table.concat(ARGV, '', 8))
local count, bytes, head = kept(total)
return {first, count, bytes, head, made}
