-- ARGV: floor, member id, nick key, entry JSON. Puts back a member Redis forgot (a
-- restart without persistence, or a lease that lapsed), silently; 0 if its nick is taken.
if redis.call('HSETNX', KEYS[5], ARGV[3], ARGV[2]) == 0
  and redis.call('HGET', KEYS[5], ARGV[3]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[4], ARGV[2], ARGV[4])
expire_if_empty(0)
return 1
