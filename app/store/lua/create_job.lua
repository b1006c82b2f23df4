-- Create a job, either due for any worker or already leased to the caller (the API runs it
-- inline when the client waits). Fails if the id exists.
-- KEYS: job, due, leases, tenant_jobs
-- ARGV: body, status, tenant, created_ms, lease_token ('' = due now), lease_expiry_ms, job_id
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('exists')
end
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'status', ARGV[2], 'tenant', ARGV[3], 'version', 1)
local id = ARGV[7]
redis.call('ZADD', KEYS[4], ARGV[4], id)
if ARGV[5] == '' then
  redis.call('ZADD', KEYS[2], ARGV[4], id)
else
  redis.call('HSET', KEYS[1], 'lease', ARGV[5])
  redis.call('ZADD', KEYS[3], ARGV[6], id)
end
return 1
