-- tollgate fleet heartbeat (src/fleet.rs documents the contract).
-- KEYS[1] user ZSET (member = session id as decimal text, score = last-seen ms)
-- ARGV[1] cutoff ms (scores <= cutoff are expired)   ARGV[2] liveness ms
-- ARGV[3] ended-key prefix (the key is prefix .. sid .. '}')
-- ARGV[4], ARGV[5], ...: pairs of session id, last-seen ms on the calling edge
-- Each session the edge still serves: ended (marker present) -> dropped from
-- the set and reported; else live (last-seen > cutoff) -> ZADD GT: raised,
-- never lowered, and added back when Redis lost it (restart, failover).
-- Reply: {re-added count, ended sid...}, all as text.
local key = KEYS[1]
local cutoff = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
local added = 0
local reply = {'0'}
local live = false
for i = 4, #ARGV - 1, 2 do
  local sid = ARGV[i]
  if redis.call('EXISTS', ARGV[3] .. sid .. '}') == 1 then
    redis.call('ZREM', key, sid)
    reply[#reply + 1] = sid
  elseif tonumber(ARGV[i + 1]) > cutoff then
    added = added + redis.call('ZADD', key, 'GT', ARGV[i + 1], sid)
    live = true
  end
end
if live then
  redis.call('PEXPIRE', key, ARGV[2])
end
reply[1] = tostring(added)
return reply
