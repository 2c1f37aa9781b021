-- tollgate fleet admission (src/fleet.rs documents the contract).
-- KEYS[1] user ZSET (member = session id as decimal text, score = last-seen ms)
-- KEYS[2] the ended marker of ARGV[5]
-- ARGV[1] now ms          ARGV[2] cutoff ms (scores <= cutoff are expired)
-- ARGV[3] liveness ms     ARGV[4] max sessions (0 = unlimited)
-- ARGV[5] session id      ARGV[6] '1' = evict oldest, '0' = reject
-- ARGV[7] ended-key prefix (the key is prefix .. sid .. '}')
-- ARGV[8] ended marker ms  ARGV[9] the ended channel (each evicted sid is
--                           published there, so every edge ends it at once)
-- ARGV[10] '1' = an entry request (fresh credentials), '0' = a capability
-- Reply: {'R'} refreshed, {'A'} admitted, {'J'} rejected,
--        {'E', sid...} admitted after ending the listed sessions,
--        {'K'} the session was ended (a capability request; nothing written).
local key = KEYS[1]
local sid = ARGV[5]
if ARGV[10] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then
  return {'K'}
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
if redis.call('ZSCORE', key, sid) then
  redis.call('ZADD', key, 'GT', ARGV[1], sid)
  redis.call('PEXPIRE', key, ARGV[3])
  return {'R'}
end
local max = tonumber(ARGV[4])
local n = redis.call('ZCARD', key)
local reply = {'A'}
if max > 0 and n >= max then
  if ARGV[6] ~= '1' then
    return {'J'}
  end
  reply = {'E'}
  local victims = redis.call('ZRANGE', key, 0, n - max)
  for _, v in ipairs(victims) do
    redis.call('ZREM', key, v)
    redis.call('SET', ARGV[7] .. v .. '}', '1', 'PX', ARGV[8])
    redis.call('PUBLISH', ARGV[9], v)
    reply[#reply + 1] = v
  end
end
redis.call('ZADD', key, ARGV[1], sid)
redis.call('PEXPIRE', key, ARGV[3])
redis.call('DEL', KEYS[2])
return reply
