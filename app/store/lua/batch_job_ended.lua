-- Count a batch's job that reached a terminal status, once.
-- KEYS: batch, open
-- ARGV: job_id, status ('succeeded' | 'failed' | 'canceled')
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'running', -1)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return 1
