-- KEYS[1] the history index (see index.lua). ARGV: cursor, count. The next rooms of
-- the trimmer's sweep, with their entries: HSCAN's {cursor, {room, entry, ...}}.
return redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
