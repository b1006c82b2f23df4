-- Hand due jobs to a worker under a lease. Jobs whose lease expired (their worker died) are
-- first put back on the due-queue, so they are resumed exactly where their record says.
-- A finished job is handed out only when it is `awaiting` the answer to a submission its
-- worker had under way when it was canceled (cancel_under_way.lua): that worker died, and the
-- one that claims the job settles it.
-- Returns id, version, body and the time it was due (ms) of each job handed out.
-- KEYS: due, leases
-- ARGV: now_ms, lease_expiry_ms, limit, token, job_key_prefix
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', ARGV[5] .. id, 'lease')
  redis.call('ZADD', KEYS[1], now, id)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[5] .. id
  local row = redis.call('HMGET', key, 'body', 'version', 'status', 'awaiting')
  local finished = row[3] == 'succeeded' or row[3] == 'failed' or row[3] == 'canceled'
  if row[1] and (not finished or row[4]) then
    redis.call('HSET', key, 'lease', ARGV[4])
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(out, id)
    table.insert(out, row[2])
    table.insert(out, row[1])
    table.insert(out, due[i + 1])
  end
end
return out
