-- Take the next item of a running batch to start it as a job, or hand back the item a driver
-- took but did not record (it died between taking and recording: resume with the same job
-- id, so an item never becomes two jobs).
-- KEYS: batch, items
-- ARGV: job_id (for a newly taken item)
-- Returns {index, job_id, item_json, resumed (0|1)} or nil when nothing is to start.
local starting = redis.call('HGET', KEYS[1], 'starting')
if starting and starting ~= '' then
  local sep = string.find(starting, ':', 1, true)
  local index = tonumber(string.sub(starting, 1, sep - 1))
  return {index, string.sub(starting, sep + 1), redis.call('LINDEX', KEYS[2], index), 1}
end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return nil
end
local index = tonumber(redis.call('HGET', KEYS[1], 'next'))
if index >= tonumber(redis.call('HGET', KEYS[1], 'total')) then
  return nil
end
redis.call('HSET', KEYS[1], 'next', index + 1, 'starting', index .. ':' .. ARGV[1])
return {index, ARGV[1], redis.call('LINDEX', KEYS[2], index), 0}
