-- Start a request under an idempotency key, or say why it must not run: the key was used
-- with another request (mismatch), its first request is still running (in_flight), or it has
-- a stored response (replay). An in-flight record expires after lock_ms, in case its process
-- died. Returns {'began'} | {'mismatch'} | {'in_flight'} | {'replay', status, headers, body}.
-- KEYS: record
-- ARGV: fingerprint, lock_ms
local row = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'status', 'headers', 'body')
if not row[1] then
  redis.call('HSET', KEYS[1], 'state', 'in_flight', 'fingerprint', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'began'}
end
if row[2] ~= ARGV[1] then
  return {'mismatch'}
end
if row[1] ~= 'done' then
  return {'in_flight'}
end
return {'replay', row[3], row[4], row[5]}
