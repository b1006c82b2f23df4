-- Store a new batch, running, with its items, and make it due for a driver at once. Refused
-- (0, nothing written) when a batch with the id exists: an earlier attempt of the same request
-- made it, under the id its Idempotency-Key bound. Returns 1 when created.
-- KEYS: batch, items, batches_due
-- ARGV: batch_id, tenant, operation, status, metadata (JSON), callback ('' = none), now_ms,
--       then each item's body (JSON)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'tenant', ARGV[2], 'operation', ARGV[3], 'status', ARGV[4],
  'total', #ARGV - 7, 'next', 0, 'starting', '', 'running', 0, 'succeeded', 0, 'failed', 0,
  'canceled', 0, 'metadata', ARGV[5], 'callback', ARGV[6], 'created_ms', ARGV[7])
for start = 8, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, start, math.min(start + 999, #ARGV)))
end
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
return 1
