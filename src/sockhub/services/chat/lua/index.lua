-- KEYS[1] the totals (n, b), KEYS[2] each room's oldest kept ts (a sorted set),
-- KEYS[3] the history index (room -> "s g n b": the room's state s:g, its kept
-- messages and bytes). ARGV: groups of room, s, g, n, b, oldest ts. A group newer (s:g) than
-- the room's entry replaces it (nodes write after their scripts returned, not in
-- order); n = 0 removes the entry; n = -1 removes it only if it still is s:g (the
-- trimmer found the room forgotten). Returns the totals.
local dn, db = 0, 0
for i = 1, #ARGV, 6 do
  local room = ARGV[i]
  local s, g, n, b = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
    tonumber(ARGV[i + 4])
  local old = redis.call('HGET', KEYS[3], room)
  local ps, pg, pn, pb = 0, 0, 0, 0
  if old then
    local a, c, d, e = string.match(old, '^(%d+) (%d+) (%d+) (%d+)$')
    ps, pg, pn, pb = tonumber(a), tonumber(c), tonumber(d), tonumber(e)
  end
  local apply
  if n < 0 then
    apply = old and ps == s and pg == g
    n, b = 0, 0
  else
    apply = not old or s > ps or (s == ps and g > pg)
  end
  if apply then
    dn, db = dn + n - pn, db + b - pb
    if n > 0 then
      redis.call('HSET', KEYS[3], room, string.format('%d %d %d %d', s, g, n, b))
      redis.call('ZADD', KEYS[2], ARGV[i + 5], room)
    else
      redis.call('HDEL', KEYS[3], room)
      redis.call('ZREM', KEYS[2], room)
    end
  end
end
local n = redis.call('HINCRBY', KEYS[1], 'n', string.format('%d', dn))
local b = redis.call('HINCRBY', KEYS[1], 'b', string.format('%d', db))
return {n, b}
