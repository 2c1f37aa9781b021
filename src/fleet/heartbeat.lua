-- tollgate fleet heartbeat (src/fleet.rs documents the contract).
-- KEYS[1] user ZSET; ARGV[1] now ms; ARGV[2] cutoff ms (scores <= cutoff are
-- expired); ARGV[3] liveness ms; ARGV[4] session id.
-- Refreshes a session that is still held; never resurrects an expired or
-- ended one. Reply: 1 held (refreshed), 0 not held.
local score = redis.call('ZSCORE', KEYS[1], ARGV[4])
if not score then
  return 0
end
if tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[4])
  return 0
end
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
