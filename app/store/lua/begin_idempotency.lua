-- Start a request under an idempotency key, or say why it must not run: the key was used
-- with another request (mismatch), an attempt of it is still running (in_flight), or it has
-- a stored response (replay).
-- The record binds the key to the request's fingerprint and to `bound`, the id the request
-- makes its object under (a job's, a batch's, a file's; '' for a request that makes none):
-- the caller's proposal when the key is new, the record's own on every later attempt, so
-- however many attempts run, the object is made once. An attempt holds the key (its
-- `attempt` token) until it ends or `locked_until` passes on the Redis clock (its process
-- died, or outran lock_ms); a later attempt of the same request then takes the key over and
-- is told `retried` ('1'): an earlier attempt's outcome is unknown, its object may exist.
-- A record without `locked_until` (begun before it was kept) holds the key until it expires.
-- The record is kept ttl_ms from its last attempt (lock_ms is shorter).
-- Returns {'began', bound, retried} | {'mismatch'} | {'in_flight'} |
--         {'replay', status, headers, body}.
-- KEYS: record
-- ARGV: fingerprint, lock_ms, ttl_ms, attempt, bound
--#include clock
local row = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'status', 'headers', 'body',
  'bound', 'locked_until')
local locked_until = now_ms() + tonumber(ARGV[2])
if not row[1] then
  redis.call('HSET', KEYS[1], 'state', 'in_flight', 'fingerprint', ARGV[1], 'bound', ARGV[5],
    'attempt', ARGV[4], 'locked_until', locked_until)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'began', ARGV[5], '0'}
end
if row[2] ~= ARGV[1] then
  return {'mismatch'}
end
if row[1] == 'done' then
  return {'replay', row[3], row[4], row[5]}
end
if row[1] == 'in_flight' and (not row[7] or tonumber(row[7]) > now_ms()) then
  return {'in_flight'}
end
-- released by an attempt that ended without a response, or its lock lapsed: taken over
local bound = row[6] or ARGV[5]
redis.call('HSET', KEYS[1], 'state', 'in_flight', 'bound', bound, 'attempt', ARGV[4],
  'locked_until', locked_until, 'tried', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'began', bound, '1'}
