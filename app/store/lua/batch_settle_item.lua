-- Record what became of the item being started: its job (now running), or why it never
-- became one. With stop = 1 (the tenant ran out of credits), every item not yet started
-- ends failed with the same problem. A cancel that came meanwhile already counted the items
-- not yet started; the job of this one is canceled by the driver like any other.
-- KEYS: batch, results, open
-- ARGV: index, job_id, outcome ('job' | 'failed' | 'untake'), error_json, stop (0|1)
local starting = ARGV[1] .. ':' .. ARGV[2]
if redis.call('HGET', KEYS[1], 'starting') ~= starting then
  return 0
end
redis.call('HSET', KEYS[1], 'starting', '')
if ARGV[3] == 'untake' then
  -- not now (the tenant's job slots are full): the item is taken again on a later pass
  if redis.call('HGET', KEYS[1], 'status') == 'running' then
    redis.call('HSET', KEYS[1], 'next', ARGV[1])
  else
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
    redis.call('HINCRBY', KEYS[1], 'canceled', 1)
  end
  return 1
end
if ARGV[3] == 'job' then
  redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({job_id = ARGV[2]}))
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'running', 1)
  return 1
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HINCRBY', KEYS[1], 'failed', 1)
if ARGV[5] == '1' and redis.call('HGET', KEYS[1], 'status') == 'running' then
  local next_index = tonumber(redis.call('HGET', KEYS[1], 'next'))
  local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
  redis.call('HINCRBY', KEYS[1], 'failed', total - next_index)
  redis.call('HSET', KEYS[1], 'next', total, 'stopped_at', next_index, 'stopped', ARGV[4])
end
return 1
