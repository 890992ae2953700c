-- The history trimmer's cut in one room (redis_totals.py). ARGV: messages and bytes
-- to remove (it stops once both are reached), the newest ts it may remove ('': no
-- bound), deadline, most entries to remove. Removes the room's oldest messages;
-- returns {'ok', c, s, g, kept messages, kept bytes, oldest kept ts} (c:s:g orders the
-- room's states: when it was made, its last message's seq, the trims since it),
-- {'gone'} when the room was forgotten (chat_room_idle), {'late'} when too late.
if redis.call('EXISTS', KEYS[1], KEYS[2]) == 0 then return {'gone'} end
if too_late(ARGV[4]) then return {'late'} end
local need_n, need_b, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])
local newest = ARGV[3] == '' and math.huge or tonumber(ARGV[3])
local total = appended()
local removed, base, cut, start = 0, nil, nil, '-'
while not cut do
  local chunk = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 128)
  for i = 1, #chunk do
    local f = fields(chunk[i][2])
    local a = tonumber(f.a) or 0
    base = base or a
    if tonumber(f.t) > newest or removed >= cap
      or (removed >= need_n and a - base >= need_b) then
      cut = chunk[i][1]
      break
    end
    removed = removed + 1
  end
  if cut or #chunk < 128 then break end
  start = '(' .. chunk[#chunk][1]
end
if cut and removed > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', cut)
elseif removed > 0 then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', 0)
end
local c = redis.call('HMGET', KEYS[1], 'c', 's')
local g = 0
if removed > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  g = redis.call('HINCRBY', KEYS[1], 'g', 1)
else
  g = tonumber(redis.call('HGET', KEYS[1], 'g') or '0')
end
local count, bytes, head = kept(total)
return {'ok', c[1] or '0', c[2] or '0', g, count, bytes, head}
