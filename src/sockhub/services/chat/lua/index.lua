-- KEYS[1] the totals (n, b), KEYS[2] each room's oldest kept ts (a sorted set),
-- KEYS[3] the history index (room -> "c s g n b": the room's state c:s:g, see
-- trim.lua, its kept messages and bytes). ARGV: groups of room, c, s, g, n, b, oldest
-- ts. A group newer (c:s:g) than the room's entry replaces it (nodes write after their
-- scripts returned, not in order); n = 0 removes the entry; n = -1 removes it only if
-- it still is c:s:g (the trimmer found the room forgotten). Returns the totals and
-- how many groups changed the index.
local dn, db, changed = 0, 0, 0
for i = 1, #ARGV, 7 do
  local room = ARGV[i]
  local c, s, g = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local n, b = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local old = redis.call('HGET', KEYS[3], room)
  local pc, ps, pg, pn, pb = 0, 0, 0, 0, 0
  if old then
    local v = {}
    for x in string.gmatch(old, '%d+') do v[#v + 1] = tonumber(x) end
    pc, ps, pg, pn, pb = v[1], v[2], v[3], v[4], v[5]
  end
  local apply
  if n < 0 then
    apply = old and pc == c and ps == s and pg == g
    n, b = 0, 0
  else
    apply = not old or c > pc or (c == pc and (s > ps or (s == ps and g > pg)))
  end
  if apply then
    changed = changed + 1
    dn, db = dn + n - pn, db + b - pb
    if n > 0 then
      redis.call('HSET', KEYS[3], room, string.format('%d %d %d %d %d', c, s, g, n, b))
      redis.call('ZADD', KEYS[2], ARGV[i + 6], room)
    else
      redis.call('HDEL', KEYS[3], room)
      redis.call('ZREM', KEYS[2], room)
    end
  end
end
local n = redis.call('HINCRBY', KEYS[1], 'n', string.format('%d', dn))
local b = redis.call('HINCRBY', KEYS[1], 'b', string.format('%d', db))
return {n, b, changed}
