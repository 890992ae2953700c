-- Shared by every room script. KEYS[1] the room's seq counter, KEYS[2] its stream,
-- KEYS[3] its (shard) channel; ARGV[1] the highest seq the calling node has seen, so a
-- counter lost with a Redis restart or a fail-over never hands out a seq again.
local function first_free()
  local cur = tonumber(redis.call('GET', KEYS[1]))
  if not cur then
    cur = 0
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
    if last[1] then cur = tonumber(string.match(last[1][1], '^(%d+)')) end
  end
  local floor = tonumber(ARGV[1])
  if floor > cur then cur = floor end
  return cur + 1
end

local function take_seq()
  local seq = first_free()
  redis.call('SET', KEYS[1], string.format('%d', seq))
  return seq
end

-- An event takes a seq too, so every node delivers messages and events in one order.
local function announce(seq, kind, nick, ts, actor, old)
  redis.call('__PUBLISH__', KEYS[3],
    string.format('E%d ', seq) .. cjson.encode({kind, nick, tonumber(ts), actor, old}))
end

-- KEYS[4] the room's members (member id -> JSON entry), KEYS[5] its nicks (key -> id).
local function release(id, entry)
  redis.call('HDEL', KEYS[4], id)
  if redis.call('HGET', KEYS[5], entry.k) == id then redis.call('HDEL', KEYS[5], entry.k) end
end

-- The caller gives up at its deadline (ms on Redis's clock) and tells its client that
-- nothing was done; a script that only starts later (Redis stalled) must do nothing.
local function too_late(deadline)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline)
end
