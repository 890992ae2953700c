-- KEYS[1] who trims (a lease), KEYS[2] the totals, KEYS[3] the oldest kept ts per room,
-- KEYS[4] the index (see index.lua). ARGV: node id, lease ms, window, most messages,
-- most bytes. Returns {} when another node holds the lease; else takes or keeps it and
-- returns {n, b} when the totals are within the limits, or {n, b, the window + 1
-- oldest rooms with their ts (flat), the index entry of each of the window's}.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local c = redis.call('HMGET', KEYS[2], 'n', 'b')
local n, b = tonumber(c[1] or '0'), tonumber(c[2] or '0')
if n <= tonumber(ARGV[4]) and b <= tonumber(ARGV[5]) then return {n, b} end
local w = tonumber(ARGV[3])
local heads = redis.call('ZRANGE', KEYS[3], 0, w, 'WITHSCORES')
local entries = {}
for i = 1, math.min(#heads, 2 * w), 2 do
  entries[#entries + 1] = redis.call('HGET', KEYS[4], heads[i]) or ''
end
return {n, b, heads, entries}
