-- ARGV: floor, member id, ts, idle ms. Returns 1, or 0 when not a member.
local raw = redis.call('HGET', KEYS[4], ARGV[2])
if not raw then return 0 end
local entry = cjson.decode(raw)
release(ARGV[2], entry)
announce('leave', entry.n, ARGV[3], ARGV[2], '')
expire_if_empty(ARGV[4])
return 1
