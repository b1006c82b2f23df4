-- Cancel a running batch: the items not yet started end canceled at once; the driver cancels
-- the jobs already running on its next pass, made due now.
-- KEYS: batch, due
-- ARGV: now_ms, batch_id, stopped_json
-- Returns the batch's status before the call (nil for an unknown batch).
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  return status
end
local next_index = tonumber(redis.call('HGET', KEYS[1], 'next'))
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
redis.call('HINCRBY', KEYS[1], 'canceled', total - next_index)
redis.call('HSET', KEYS[1], 'status', 'canceling', 'next', total,
  'stopped_at', next_index, 'stopped', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return status
