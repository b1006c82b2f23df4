-- Store the response of a request that began under an idempotency key, for ttl_ms. Refuses
-- (returns 0) when the key now belongs to another request or already has a response. Stores
-- it whichever attempt of the request answered it, also one whose lock has lapsed: the
-- request did run, so a retry must replay.
-- KEYS: record
-- ARGV: fingerprint, status, headers, body, ttl_ms
local row = redis.call('HMGET', KEYS[1], 'state', 'fingerprint')
if row[1] and (row[2] ~= ARGV[1] or row[1] == 'done') then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'fingerprint', ARGV[1], 'status', ARGV[2],
  'headers', ARGV[3], 'body', ARGV[4])
redis.call('HDEL', KEYS[1], 'attempt', 'locked_until', 'tried')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
