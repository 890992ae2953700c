-- Shared by every room script. KEYS[1] the room's counter (a hash: s = the last
-- message's seq, k = events since it), KEYS[2] its stream, KEYS[3] its (shard)
-- channel. ARGV[1] is "S:K", the latest position the calling node has seen, so a
-- counter lost with a Redis restart or a fail-over never goes back.
--
-- A message's position is (seq, 0), an event's (seq of the message before it, k):
-- messages keep consecutive seqs, and every node orders both the same way.
--
-- A room that Redis forgot (no counter, no stream) while the node has seen it was lost
-- with a restart: another node may have had messages accepted that this node never
-- saw, so numbering jumps by 1,000 over what this node knows.
--
-- In a Redis Cluster (__CLUSTER__ is true) the counter also names the master that last
-- numbered in it (w): a master that finds another's name took the slot over (a
-- fail-over, or a slot moved) and may lack that master's latest writes, so numbering
-- jumps by 1,000 over the highest position known, once.
local function took_over(s, k, was)
  if not __CLUSTER__ then return s, k end
  local me = redis.call('CLUSTER', 'MYID')
  if was == me then return s, k end
  redis.call('HSET', KEYS[1], 'w', me)
  if was then return s + 1000, 0 end
  return s, k
end

local function position()
  local c = redis.call('HMGET', KEYS[1], 's', 'k', 'w')
  local s, k = tonumber(c[1]), tonumber(c[2] or '0')
  local fs, fk = string.match(ARGV[1], '^(%d+):(%d+)$')
  fs, fk = tonumber(fs), tonumber(fk)
  if not s then
    s, k = 0, 0
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
    if last[1] then
      s = tonumber(string.match(last[1][1], '^(%d+)'))
    elseif fs > 0 or fk > 0 then
      return fs + 1000, 0
    end
  end
  if fs > s or (fs == s and fk > k) then s, k = fs, fk end
  return took_over(s, k, c[3])
end

-- An event's place: after the room's latest message and the events since it.
local function announce(kind, nick, ts, actor, old)
  local s, k = position()
  k = k + 1
  redis.call('HSET', KEYS[1], 's', string.format('%d', s), 'k', string.format('%d', k))
  redis.call('__PUBLISH__', KEYS[3], string.format('E%d:%d ', s, k)
    .. cjson.encode({kind, nick, tonumber(ts), actor, old}))
  return s, k
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

-- chat_room_idle: a room nobody is in is forgotten (counter and stream expire
-- together) ``ms`` after its last member left; one with members is kept. 0: kept.
local function expire_if_empty(ms)
  if redis.call('HLEN', KEYS[4]) > 0 or tonumber(ms) <= 0 then
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
  else
    redis.call('PEXPIRE', KEYS[1], ms)
    redis.call('PEXPIRE', KEYS[2], ms)
  end
end

-- History accounting. Each stream entry holds, besides t (ts) and d (msgpack [sender,
-- text]), a: the bytes appended to the room before it; the counter holds B, the bytes
-- appended in all (a message costs text + sender + room + 32, docs/limits.md). So
-- what the stream keeps is B minus its oldest entry's a, whatever trimmed it.
local function fields(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end

-- B, or (a counter lost with its stream kept, or kept from before accounting) about
-- it: the last entry's a plus that entry's packed size.
local function appended()
  local b = tonumber(redis.call('HGET', KEYS[1], 'B'))
  if b then return b end
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if not last then return 0 end
  local f = fields(last[2])
  return (tonumber(f.a) or 0) + #(f.d or '')
end

-- When this room was made (µs on Redis's clock, set by its first message): a room
-- forgotten (chat_room_idle) and made again numbers anew, and this tells the two apart.
local function born()
  local c = redis.call('HGET', KEYS[1], 'c')
  if c then return c end
  local t = redis.call('TIME')
  return t[1] .. string.format('%06d', tonumber(t[2]))
end

-- What the stream keeps: messages, bytes, and its oldest message's ts ('' if none).
local function kept(total)
  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if not head then return 0, 0, '' end
  local f = fields(head[2])
  return redis.call('XLEN', KEYS[2]), total - (tonumber(f.a) or 0), f.t
end
