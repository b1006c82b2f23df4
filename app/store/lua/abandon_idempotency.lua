-- Forget an in-flight idempotency record (its request failed before storing anything), so
-- the client may retry with the same key. A stored response is never removed.
-- KEYS: record
if redis.call('HGET', KEYS[1], 'state') == 'in_flight' then
  return redis.call('DEL', KEYS[1])
end
return 0
