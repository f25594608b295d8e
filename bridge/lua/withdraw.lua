-- withdraw.lua: take a source's gauges out of the sums. KEYS[1] its
-- gauge hash (key -> value it contributes), KEYS[2] its record, KEYS[3]
-- the change feed (a stream), KEYS[4] its counter hash, KEYS[5] the live
-- sources (sorted set: source -> lease end; absent in the partitioned
-- layout, where the keys are one hash slot's: the caller checked the
-- lease and removes the source after every slot). ARGV[1] the source, ARGV[2]
-- the mode, ARGV[3] a time in ms (Redis' clock):
--   stop     its own bridge stops cleanly: withdraw now, end the lease
--   expired  its lease ended before ARGV[3]: withdraw its gauges
--   retire   its segment was recreated and its lease ended before
--            ARGV[3]: withdraw its gauges and drop its bookkeeping (its
--            counts stay in the keys)
-- The value is negated as a string: no arithmetic on values. Bumps the
-- source's sequence, so its bridge (if it comes back) reads its
-- bookkeeping again. Reply: the new sequence (0 after retire), or -1 when
-- the lease has not ended.
if ARGV[2] ~= 'stop' then
  local e = redis.call('HGET', KEYS[2], 'owner_exp')
  if e and tonumber(e) >= tonumber(ARGV[3]) then return -1 end
end
local g = redis.call('HGETALL', KEYS[1])
local f, m = {}, 0
for i = 1, #g, 2 do
  local val = g[i + 1]
  if val ~= '0' then
    local neg
    if string.sub(val, 1, 1) == '-' then
      neg = string.sub(val, 2)
    else
      neg = '-' .. val
    end
    redis.pcall('INCRBY', g[i], neg)
    m = m + 1
    f[m] = g[i]
    if m >= 500 then
      redis.call('XADD', KEYS[3], '*', 's', ARGV[1], 'k',
        table.concat(f, '\0', 1, m))
      m = 0
    end
  end
end
if m > 0 then
  redis.call('XADD', KEYS[3], '*', 's', ARGV[1], 'k',
    table.concat(f, '\0', 1, m))
end
redis.call('DEL', KEYS[1])
if KEYS[5] then redis.call('ZREM', KEYS[5], ARGV[1]) end
if ARGV[2] == 'retire' then
  redis.call('DEL', KEYS[2], KEYS[4])
  return 0
end
if ARGV[2] == 'stop' then
  redis.call('HSET', KEYS[2], 'owner_exp', '0')
end
return redis.call('HINCRBY', KEYS[2], 'seq', 1)
