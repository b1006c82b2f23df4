-- An attempt under an idempotency key ended without a response. Only the attempt holding the
-- key acts (a later one may have taken it over); a stored response is never touched.
-- 'forget': the request was refused before it made anything, and no earlier attempt ended
-- without a known outcome: the record is removed, the key free for any request. Otherwise
-- ('release', or an earlier attempt's outcome unknown) the record stays bound to its request
-- and its id, and the key is released: the next attempt runs at once, told it is retried.
-- Returns 1 when it acted, else 0.
-- KEYS: record
-- ARGV: attempt, 'forget' | 'release'
local row = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'tried')
if row[1] ~= 'in_flight' or row[2] ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'forget' and row[3] ~= '1' then
  return redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'state', 'open', 'tried', '1')
redis.call('HDEL', KEYS[1], 'attempt', 'locked_until')
return 1
