-- Extend a lease, only for the worker that holds it.
-- KEYS: job, leases
-- ARGV: token, lease_expiry_ms, job_id
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then
  return 0
end
local id = ARGV[3]
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], id)
return 1
