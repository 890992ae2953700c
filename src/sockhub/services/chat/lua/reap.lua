-- ARGV: floor, node id, ts, idle ms. Every member a dead node held leaves, with its event.
local gone = 0
local all = redis.call('HGETALL', KEYS[4])
for i = 1, #all, 2 do
  local entry = cjson.decode(all[i + 1])
  if entry.o == ARGV[2] then
    release(all[i], entry)
    announce('leave', entry.n, ARGV[3], all[i], '')
    gone = gone + 1
  end
end
expire_if_empty(ARGV[4])
return gone
