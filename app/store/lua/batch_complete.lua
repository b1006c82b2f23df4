-- Complete a batch whose every item has ended: status, time, its keys set to expire, off the
-- driver's queue, and its one webhook queued in the same step (so it is neither lost nor sent
-- twice).
-- KEYS: batch, items, results, open, due, webhooks_due
-- ARGV: now_ms, batch_id, retention_s
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'canceling' then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'next')) < tonumber(redis.call('HGET', KEYS[1], 'total'))
  or redis.call('HGET', KEYS[1], 'starting') ~= ''
  or redis.call('SCARD', KEYS[4]) > 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_ms', ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[2])
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
if redis.call('HGET', KEYS[1], 'callback') ~= '' then
  redis.call('ZADD', KEYS[6], ARGV[1], ARGV[2])
end
return 1
