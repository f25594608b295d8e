-- feed.lua: record that keys changed, in the change feed, inside the
-- push's MULTI. KEYS[1] the feed (sorted set: key -> version), KEYS[2]
-- the feed's version counter; ARGV: the keys that changed. One new
-- version per call, so a reader that read up to version v reads exactly
-- what changed since with ZRANGEBYSCORE (v +inf. No arithmetic on totals.
local v = redis.call('INCR', KEYS[2])
local t, n = {}, 0
for i = 1, #ARGV do
  t[n + 1] = v
  t[n + 2] = ARGV[i]
  n = n + 2
  if n >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(t, 1, n))
    n = 0
  end
end
if n > 0 then redis.call('ZADD', KEYS[1], unpack(t, 1, n)) end
return v
