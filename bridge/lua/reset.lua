-- reset.lua: a global reset, ordered by Redis. KEYS[1] the reset
-- generation, KEYS[2] the resets (sorted set: key -> generation of its
-- last reset), KEYS[3] the change feed (a stream), KEYS[4] the set of
-- gauge keys, KEYS[5] the issuing source's record. ARGV[1] the request id
-- (idempotent per source), the keys to reset in KEYS[6..] (the
-- partitioned layout: every key of one hash slot, so a Redis Cluster
-- routes and checks them) or ARGV[2..].
-- Each key is set to 0 and stamped with one new generation; each source
-- then counts its contribution to it from its total as Redis last
-- accepted it (see push.c). Gauge keys are refused: a gauge is a level
-- each source sets, not a count to clear. Reply {reset, refused}, or
-- {-1, 0} when this request already ran. No arithmetic on values.
local done = redis.call('HGET', KEYS[5], 'reset_done')
if done == ARGV[1] then return {-1, 0} end
local g = nil
local n, skipped = 0, 0
local z, f, m = {}, {}, 0
local function flush()
  if m > 0 then
    redis.call('ZADD', KEYS[2], unpack(z, 1, 2 * m))
    redis.call('XADD', KEYS[3], '*', 's', 'reset', 'k',
      table.concat(f, '\0', 1, m))
    m = 0
  end
end
local function one(k)
  if redis.call('SISMEMBER', KEYS[4], k) == 1 then
    skipped = skipped + 1
  else
    if not g then g = redis.call('INCR', KEYS[1]) end
    redis.call('SET', k, '0')
    n = n + 1
    m = m + 1
    z[2 * m - 1], z[2 * m] = g, k
    f[m] = k
    if m >= 500 then flush() end
  end
end
for i = 6, #KEYS do one(KEYS[i]) end
for i = 2, #ARGV do one(ARGV[i]) end
flush()
redis.call('HSET', KEYS[5], 'reset_done', ARGV[1])
return {n, skipped}
